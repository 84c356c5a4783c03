"""``whipnb grade``: grade notebooks headlessly in fresh kernels, N at a time.

Thin: it parses options, hands the submissions to :class:`~whipnb.headless.batch.Batch`
and prints what came back.  The headless layer is imported only when a batch runs,
so ``whipnb grade --help`` starts at once.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from types import FrameType
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from whipnb.cli.arguments import add_db, non_negative_int, pattern, positive
from whipnb.core.result import STATUSES, as_record
from whipnb.gradebook.exports import atomic_output
from whipnb.headless.limits import DEFAULT_MEMORY_MB, available_cpus

if TYPE_CHECKING:
    from whipnb.headless.batch import Outcome

CSV_FIELDS = ("path", "learner", "task", "score", "band", "status", "message", "duration_s")
#: Exit status of an interrupted batch (what finished is kept).
INTERRUPTED = 130
#: Width of tables written to a log or a pipe (a terminal uses its own width).
LOG_WIDTH = 140


def register(commands: Any) -> None:
    grade = commands.add_parser(
        "grade",
        help="grade notebooks headlessly in fresh kernels",
        description="Grade notebooks in fresh kernels, N at a time, each under a time and a "
        "memory limit. Every result is committed to the gradebook at once; a re-run skips "
        "submissions already graded with the same content and whipnb version.",
    )
    grade.add_argument("paths", nargs="+", help="notebooks, or folders searched for *.ipynb")
    grade.add_argument(
        "--jobs",
        type=positive(int),
        default=available_cpus(),
        help="kernels run at once (default: the number of CPUs)",
    )
    grade.add_argument(
        "--timeout",
        type=positive(float),
        default=None,
        help="seconds per submission, from the start of its graded cell (default: the task's)",
    )
    grade.add_argument(
        "--memory-mb",
        type=positive(int),
        default=DEFAULT_MEMORY_MB,
        help=f"memory per submission, the kernel's whole process tree (default: "
        f"{DEFAULT_MEMORY_MB})",
    )
    grade.add_argument(
        "--kernels-ahead",
        type=non_negative_int,
        default=None,
        metavar="N",
        help="kernels booted ahead of need, with whipnb and torch already imported "
        "(default: as many as --jobs, up to twice that while CPUs are spare; 0: each kernel "
        "starts when its submission comes up)",
    )
    add_db(grade)
    grade.add_argument(
        "--force", action="store_true", help="grade again what the gradebook already holds"
    )
    grade.add_argument("--json", metavar="FILE", help="write the JSON records here")
    grade.add_argument("--csv", metavar="FILE", help="write a CSV summary here")
    grade.add_argument(
        "--diagnosis",
        action="store_true",
        help="give each check its diagnosis (the cause and the fix, which learners reach "
        "through the hints' last step) in the --json records",
    )
    grade.add_argument(
        "--learner-pattern",
        type=pattern,
        metavar="REGEX",
        help="learner id from the path below the folder given: the group 'learner' (or the "
        "first group) of this regular expression (default: the learner's folder, else the "
        "file name without its task, else the folder given; see docs/GRADING-AT-SCALE.md)",
    )
    grade.add_argument(
        "--learner-metadata",
        metavar="KEY",
        help="learner id from the notebook's metadata, a dotted key such as whipnb.learner "
        "(the default rule when absent)",
    )
    grade.add_argument(
        "--quiet", "-q", action="store_true", help="no progress and no per-notebook table"
    )
    grade.add_argument(
        "--sandbox",
        choices=("bwrap", "none"),
        default="bwrap",
        help="what each kernel runs in: bwrap, Debian's bubblewrap (read-only system, "
        "private folder, no network, own processes and uid; the default), or none "
        "(the grader's own user and files: only for code you trust; see docs/SECURITY.md)",
    )
    grade.add_argument(
        "--secret",
        metavar="TEXT",
        help="the instructor's secret the held-out data measured outside the kernels is "
        "drawn from (default: $WHIPNB_SECRET, else a random one for this run); never shown "
        "to a kernel",
    )
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run kernels on a Dask distributed cluster (tcp://host:8786); needs whipnb[dask]",
    )
    grade.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    console = Console()
    if not console.is_terminal:
        console.width = LOG_WIDTH
    from whipnb.gradebook.store import Gradebook, duplicate_groups
    from whipnb.headless.batch import Batch, BatchInterrupted
    from whipnb.headless.limits import Limits
    from whipnb.headless.measure import grading_secret
    from whipnb.headless.sandbox import BWRAP, unavailable
    from whipnb.headless.submissions import (
        LearnerNaming,
        MissingPaths,
        find_notebooks,
        load_submission,
    )

    if args.sandbox == BWRAP and (problem := unavailable()) is not None:
        console.print(
            f"whipnb grade: cannot sandbox the kernels: {problem}. Learner code would run "
            "with your user's rights and files; to grade anyway (trusted code only), "
            "pass --sandbox none",
            soft_wrap=True,
            markup=False,
        )
        return 2
    try:
        found = find_notebooks(args.paths)
    except MissingPaths as error:
        console.print(f"{error}; nothing was graded", soft_wrap=True, markup=False)
        return 2
    if not found:
        console.print(
            "no notebooks found in: " + " ".join(args.paths), soft_wrap=True, markup=False
        )
        return 2
    naming = LearnerNaming(args.learner_pattern, args.learner_metadata).for_batch(found)
    submissions = [load_submission(path, root, naming) for path, root in found]
    duplicates = duplicate_groups(submissions)
    shared_cpus = args.jobs > 1 or args.scheduler is not None
    limits = Limits(
        args.timeout,
        args.memory_mb,
        threads=1 if shared_cpus else None,
        secret=grading_secret(args.secret),
    )
    started = time.monotonic()
    with (
        Gradebook(args.db) as gradebook,
        _executor(args.scheduler) as executor,
        GradingDisplay(console, len(submissions), args.quiet) as display,
        _terminate_as_interrupt(),
    ):
        batch = Batch(
            gradebook,
            limits,
            args.jobs,
            force=args.force,
            executor=executor,
            kernels_ahead=args.kernels_ahead,
            sandbox=args.sandbox,
        )
        try:
            outcomes = batch.run(submissions, display)
        except BatchInterrupted as stopped:
            display.close()
            console.print(
                f"interrupted: {stopped.finished} of {stopped.total} submissions have a record"
                f" in {args.db}; run the same command again to grade the rest",
                soft_wrap=True,
                markup=False,
            )
            return INTERRUPTED
    records = [
        with_duplicates(_record(outcome, args.diagnosis), duplicates) for outcome in outcomes
    ]
    if not args.quiet:
        console.print(score_table(records))
    console.print(summary_table(outcomes, time.monotonic() - started, args.db))
    for line in duplicate_lines(duplicates):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    if args.json:
        write_json(args.json, records)
    if args.csv:
        write_csv(args.csv, records)
    return 0


def _record(outcome: Outcome, diagnosis: bool) -> dict[str, Any]:
    """An outcome's record; with ``diagnosis``, its checks carry their cause and fix."""
    record = outcome.record()
    if diagnosis:
        record["checks"] = as_record(record["path"], outcome.result, diagnosis=True)["checks"]
    return record


class GradingDisplay:
    """Progress while grading: on a terminal a bar with counts and ETA, in a log one
    line per submission, with ``--quiet`` nothing."""

    def __init__(self, console: Console, total: int, quiet: bool) -> None:
        self.console = console
        self.total = total
        self.quiet = quiet
        self.counts: Counter[str] = Counter()
        self.done = 0
        self.bar: Progress | None = None
        if console.is_terminal and not quiet:
            self.bar = Progress(
                TextColumn("grading"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[counts]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            self.task = self.bar.add_task("grading", total=total, counts="")

    def __enter__(self) -> GradingDisplay:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def __call__(self, outcome: Outcome) -> None:
        self.done += 1
        self.counts["reused" if outcome.reused else outcome.result.status] += 1
        if self.bar is not None:
            counts = " · ".join(f"{key} {value}" for key, value in sorted(self.counts.items()))
            self.bar.update(self.task, advance=1, counts=counts)
        elif not self.quiet:
            line = log_line(outcome, self.done, self.total)
            self.console.print(line, highlight=False, markup=False, soft_wrap=True)


def log_line(outcome: Outcome, done: int, total: int) -> str:
    result = outcome.result
    width = len(str(total))
    reused = " (from the gradebook)" if outcome.reused else ""
    return (
        f"[{done:>{width}}/{total}] {result.status:<11} {result.score:.3f}  "
        f"{outcome.submission.learner}  {result.task}  {outcome.submission.path}{reused}"
    )


def score_table(records: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="whipnb grades")
    for column in ("notebook", "learner", "task", "score", "band", "status", "message"):
        table.add_column(column, overflow="fold")
    for record in records:
        # Text, not markup: a learner's exception message may contain "[/...]".
        table.add_row(
            *map(
                Text,
                (
                    record["path"],
                    record["learner"],
                    record["task"],
                    f"{record['score']:.3f}",
                    record["band"],
                    record["status"],
                    record["message"],
                ),
            )
        )
    return table


def with_duplicates(
    record: dict[str, Any], duplicates: dict[tuple[str, str], list[str]]
) -> dict[str, Any]:
    """The record, plus ``duplicates``: the other files of the same learner and task."""
    paths = duplicates.get((record["learner"], record["task"]), [])
    return record | {"duplicates": [path for path in paths if path != record["path"]]}


def duplicate_lines(duplicates: dict[tuple[str, str], list[str]]) -> list[str]:
    """What to tell the instructor about files that map to one learner and task."""
    lines = [
        f"duplicate: {len(paths)} files for learner {learner!r}, {task}: "
        + ", ".join(paths)
        + " (all graded and kept; exports use the newest file, see `whipnb gradebook list`)"
        for (learner, task), paths in sorted(duplicates.items())
    ]
    if lines:
        lines.append("use --learner-pattern or --learner-metadata if these are different learners")
    return lines


def summary_table(outcomes: Sequence[Outcome], elapsed: float, db: str) -> Table:
    """Per task: how many submissions (n), each status, and the mean score of all of
    them (a submission that was not graded counts with its score, usually 0)."""
    reused = sum(outcome.reused for outcome in outcomes)
    table = Table(
        title="whipnb summary",
        caption=Text(
            f"{len(outcomes) - reused} graded now, {reused} taken from the gradebook"
            f" ({db}), {elapsed:.0f} s"
        ),
    )
    table.add_column("task")
    for column in ("n", *STATUSES, "mean"):
        table.add_column(column, justify="right", no_wrap=True)
    by_task: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_task.setdefault(outcome.result.task, []).append(outcome)
    for task, own in sorted(by_task.items()):
        statuses = Counter(outcome.result.status for outcome in own)
        mean = f"{sum(o.result.score for o in own) / len(own):.3f}"
        counts = (str(statuses[status]) for status in STATUSES)
        table.add_row(Text(task), str(len(own)), *counts, mean)
    return table


def write_json(path: str, records: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as handle:
        handle.write(json.dumps(list(records), indent=2) + "\n")


def write_csv(path: str, records: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


@contextlib.contextmanager
def _executor(scheduler: str | None) -> Iterator[Executor | None]:
    """Dask's executor when a scheduler address is given; otherwise local threads."""
    if scheduler is None:
        yield None
        return
    from whipnb.headless.batch import distributed_executor

    with distributed_executor(scheduler) as executor:
        yield executor


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """``kill PID`` stops a batch the way Ctrl-C does: kernels killed, results kept."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
