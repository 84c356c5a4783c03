"""``whipnb``: the command line, for instructors and course pipelines.

``whipnb grade PATH... [--jobs N] [--timeout S] [--json FILE] [--csv FILE]``
grades notebooks (files, or folders searched recursively) in fresh kernels, N
at a time, each under a time and a memory limit, records every result in the
gradebook the moment it is known and prints a table.  Exit status 0 whenever
every notebook got a record, whatever the scores (contract 3); 2 when there is
nothing to grade; 130 when interrupted (what finished is kept: run the same
command again to grade the rest).

``whipnb export`` writes CSV (long and wide), JSON records and Gradescope
results from the gradebook; ``whipnb report`` an HTML report;
``whipnb tasks`` lists the tasks.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from pathlib import Path
from types import FrameType
from typing import Any

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

import whipnb.lean_imports  # noqa: F401 - before anything imports nbformat
from whipnb import exports
from whipnb.batch import Batch, BatchInterrupted, Outcome
from whipnb.gradebook import DEFAULT_DB, Gradebook, Grading
from whipnb.kernels import available_cpus
from whipnb.result import GRADED, STATUSES
from whipnb.submissions import LearnerNaming, find_notebooks, load_submission
from whipnb.tasks import all_tasks
from whipnb.watchdog import DEFAULT_MEMORY_MB, Limits

CSV_FIELDS = ("path", "learner", "task", "score", "band", "status", "message", "duration_s")
INTERRUPTED = 130


# --- whipnb grade -------------------------------------------------------------------


#: Width of tables written to a log or a pipe (a terminal uses its own width).
LOG_WIDTH = 140


def command_grade(args: argparse.Namespace) -> int:
    console = Console()
    if not console.is_terminal:
        console.width = LOG_WIDTH
    found = find_notebooks(args.paths)
    if not found:
        console.print(
            "no notebooks found in: " + " ".join(args.paths), soft_wrap=True, markup=False
        )
        return 2
    naming = LearnerNaming(args.learner_pattern, args.learner_metadata)
    submissions = [load_submission(path, root, naming) for path, root in found]
    shared_cpus = args.jobs > 1 or args.scheduler is not None
    limits = Limits(args.timeout, args.memory_mb, threads=1 if shared_cpus else None)
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
    records = [outcome.record() for outcome in outcomes]
    if not args.quiet:
        console.print(score_table(records))
    console.print(summary_table(outcomes, time.monotonic() - started, args.db))
    if args.json:
        write_json(args.json, records)
    if args.csv:
        write_csv(args.csv, records)
    return 0


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


def summary_table(outcomes: Sequence[Outcome], elapsed: float, db: str) -> Table:
    """Per task: how many submissions (n), each status, and the mean score of the graded."""
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
        scores = [o.result.score for o in own if o.result.status == GRADED]
        mean = f"{sum(scores) / len(scores):.3f}" if scores else "-"
        counts = (str(statuses[status]) for status in STATUSES)
        table.add_row(Text(task), str(len(own)), *counts, mean)
    return table


def write_json(path: str, records: Sequence[dict[str, Any]]) -> None:
    Path(path).write_text(json.dumps(list(records), indent=2) + "\n", encoding="utf-8")


def write_csv(path: str, records: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


@contextlib.contextmanager
def _executor(scheduler: str | None) -> Iterator[Executor | None]:
    """Dask's executor when a scheduler address is given; otherwise local threads."""
    if scheduler is None:
        yield None
        return
    from whipnb.batch import distributed_executor

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


# --- whipnb export / report / tasks -------------------------------------------------


def command_export(args: argparse.Namespace) -> int:
    wanted = (args.csv_long, args.csv_wide, args.json, args.gradescope)
    if not any(wanted):
        print("nothing to export: give --csv-long, --csv-wide, --json or --gradescope")
        return 2
    gradings = _latest(args.db)
    if gradings is None:
        return 2
    if args.csv_long:
        exports.write_long_csv(args.csv_long, gradings)
    if args.csv_wide:
        exports.write_wide_csv(args.csv_wide, gradings)
    if args.json:
        exports.write_json(args.json, gradings)
    if args.gradescope:
        written = exports.write_gradescope(
            args.gradescope,
            gradings,
            points=args.points,
            visibility=args.visibility,
            test_visibility=args.test_visibility,
            stdout_visibility=args.stdout_visibility,
        )
        print(f"{len(written)} Gradescope results written under {args.gradescope}")
    print(f"exported {len(gradings)} gradings (the newest per learner and task) from {args.db}")
    return 0


def command_report(args: argparse.Namespace) -> int:
    from whipnb.report import write_report  # matplotlib: imported only for a report

    gradings = _latest(args.db)
    if gradings is None:
        return 2
    write_report(args.output, gradings, args.db)
    print(f"report of {len(gradings)} gradings written to {args.output}")
    return 0


def _latest(db: str) -> list[Grading] | None:
    """The newest grading of each learner and task, or None (said why) without a gradebook."""
    if not Path(db).is_file():
        print(f"no gradebook at {db}: run `whipnb grade` first, or give --db")
        return None
    with Gradebook(db) as gradebook:
        return gradebook.latest()


def command_tasks(args: argparse.Namespace) -> int:
    table = Table(title="whipnb tasks")
    for column in ("task", "title", "difficulty", "timeout (s)"):
        table.add_column(column)
    for task in all_tasks().values():
        table.add_row(task.id, task.title, task.difficulty, f"{task.timeout_s:g}")
    Console().print(table)
    return 0


# --- arguments ----------------------------------------------------------------------


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, not {text}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _pattern(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as error:
        raise argparse.ArgumentTypeError(f"not a regular expression: {error}") from None


def _add_db(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--db", default=DEFAULT_DB, help=f"the gradebook, an SQLite file (default: {DEFAULT_DB})"
    )


def _grade_parser(commands: Any) -> None:
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
        type=_positive(int),
        default=available_cpus(),
        help="kernels run at once (default: the number of CPUs)",
    )
    grade.add_argument(
        "--timeout",
        type=_positive(float),
        default=None,
        help="seconds per submission, from the start of its graded cell (default: the task's)",
    )
    grade.add_argument(
        "--memory-mb",
        type=_positive(int),
        default=DEFAULT_MEMORY_MB,
        help=f"memory per submission, the kernel's whole process tree (default: "
        f"{DEFAULT_MEMORY_MB})",
    )
    grade.add_argument(
        "--kernels-ahead",
        type=_non_negative_int,
        default=None,
        metavar="N",
        help="kernels booted ahead of need, with whipnb and torch already imported "
        "(default: as many as --jobs, up to twice that while CPUs are spare; 0: each kernel "
        "starts when its submission comes up)",
    )
    _add_db(grade)
    grade.add_argument(
        "--force", action="store_true", help="grade again what the gradebook already holds"
    )
    grade.add_argument("--json", metavar="FILE", help="write the JSON records here")
    grade.add_argument("--csv", metavar="FILE", help="write a CSV summary here")
    grade.add_argument(
        "--learner-pattern",
        type=_pattern,
        metavar="REGEX",
        help="learner id from the path below the folder given: the group 'learner' (or the "
        "first group) of this regular expression (default: the file name without its task)",
    )
    grade.add_argument(
        "--learner-metadata",
        metavar="KEY",
        help="learner id from the notebook's metadata, a dotted key such as whipnb.learner "
        "(the file name when absent)",
    )
    grade.add_argument(
        "--quiet", "-q", action="store_true", help="no progress and no per-notebook table"
    )
    grade.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="run kernels on a Dask distributed cluster (tcp://host:8786); needs whipnb[dask]",
    )
    grade.set_defaults(run=command_grade)


def _export_parser(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export the gradebook: CSV, JSON, Gradescope",
        description="Export the newest grading of each learner and task.",
    )
    _add_db(export)
    export.add_argument("--csv-long", metavar="FILE", help="one row per learner and task")
    export.add_argument(
        "--csv-wide", metavar="FILE", help="one row per learner, a column per task, a total"
    )
    export.add_argument("--json", metavar="FILE", help="the JSON records of every grading")
    export.add_argument(
        "--gradescope", metavar="DIR", help="write DIR/<learner>/results.json (Gradescope format)"
    )
    export.add_argument(
        "--points", type=_positive(float), default=1.0, help="Gradescope points per task"
    )
    for option, default, what in (
        ("--visibility", "visible", "the results and the per-task tests"),
        ("--test-visibility", "visible", "the per-check tests"),
        ("--stdout-visibility", "hidden", "the autograder's output"),
    ):
        export.add_argument(
            option,
            choices=exports.VISIBILITIES,
            default=default,
            help=f"Gradescope visibility of {what} (default: {default})",
        )
    export.set_defaults(run=command_export)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="whipnb", description=__doc__.split("\n\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    _grade_parser(commands)
    _export_parser(commands)
    report = commands.add_parser(
        "report",
        help="an HTML report of the gradebook",
        description="Score distributions, the pass rate of every check, the submissions "
        "not graded and any tampering found, per task.",
    )
    _add_db(report)
    report.add_argument(
        "--output", "-o", default="whipnb-report.html", help="the HTML file to write"
    )
    report.set_defaults(run=command_report)
    tasks = commands.add_parser("tasks", help="list the tasks", description="List the tasks.")
    tasks.set_defaults(run=command_tasks)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # before or after a batch: nothing half-done to report
        print("interrupted")
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
