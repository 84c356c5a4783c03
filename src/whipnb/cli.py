"""``whipnb``: the command line, a thin front end over the headless grader.

``whipnb grade PATH... [--jobs N] [--timeout S] [--json FILE] [--csv FILE]``
grades notebooks (files or folders of them) in fresh kernels and prints a
table; ``whipnb tasks`` lists the tasks.  Exit status 0 whenever every
notebook got a record, whatever the scores (contract 3).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from whipnb.headless import as_record, grade_notebook
from whipnb.tasks import all_tasks

CSV_FIELDS = ("path", "task", "score", "band", "status", "message", "duration_s")


def find_notebooks(paths: Sequence[str]) -> list[Path]:
    """Notebooks named on the command line, folders searched recursively, in a stable order."""
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            found.extend(
                p for p in sorted(path.rglob("*.ipynb")) if ".ipynb_checkpoints" not in p.parts
            )
        else:
            found.append(path)
    return found


def grade_all(
    notebooks: Sequence[Path], jobs: int, timeout: float | None, console: Console
) -> list[dict[str, Any]]:
    """Grade every notebook, ``jobs`` kernels at a time; records come back in input order."""
    records: dict[int, dict[str, Any]] = {}
    with _progress(console, len(notebooks)) as advance, ThreadPoolExecutor(max(1, jobs)) as pool:
        futures = {
            pool.submit(grade_notebook, path, timeout): index
            for index, path in enumerate(notebooks)
        }
        for future in as_completed(futures):
            index = futures[future]
            records[index] = as_record(notebooks[index], future.result())
            advance()
    return [records[index] for index in range(len(notebooks))]


class _progress:
    """A progress bar on a terminal, nothing otherwise (logs stay clean)."""

    def __init__(self, console: Console, total: int) -> None:
        self.bar = (
            Progress(
                "grading",
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=console,
                transient=True,
            )
            if console.is_terminal
            else None
        )
        self.total = total

    def __enter__(self):
        if self.bar is None:
            return lambda: None
        self.bar.start()
        task = self.bar.add_task("grading", total=self.total)
        return lambda: self.bar.advance(task)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def score_table(records: Sequence[dict[str, Any]]) -> Table:
    table = Table(title="whipnb grades")
    for column in ("notebook", "task", "score", "band", "status", "message"):
        table.add_column(column, overflow="fold")
    for record in records:
        table.add_row(
            record["path"],
            record["task"],
            f"{record['score']:.3f}",
            record["band"],
            record["status"],
            record["message"],
        )
    return table


def write_json(path: str, records: Sequence[dict[str, Any]]) -> None:
    Path(path).write_text(json.dumps(list(records), indent=2) + "\n", encoding="utf-8")


def write_csv(path: str, records: Sequence[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


def command_grade(args: argparse.Namespace) -> int:
    console = Console(stderr=False)
    notebooks = find_notebooks(args.paths)
    if not notebooks:
        console.print("no notebooks found in: " + " ".join(args.paths))
        return 2
    records = grade_all(notebooks, args.jobs, args.timeout, console)
    console.print(score_table(records))
    if args.json:
        write_json(args.json, records)
    if args.csv:
        write_csv(args.csv, records)
    return 0


def command_tasks(args: argparse.Namespace) -> int:
    table = Table(title="whipnb tasks")
    for column in ("task", "title", "difficulty", "timeout (s)"):
        table.add_column(column)
    for task in all_tasks().values():
        table.add_row(task.id, task.title, task.difficulty, f"{task.timeout_s:g}")
    Console().print(table)
    return 0


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="whipnb", description=__doc__.split("\n\n")[0])
    commands = main.add_subparsers(dest="command", required=True)
    grade = commands.add_parser("grade", help="grade notebooks headlessly in fresh kernels")
    grade.add_argument("paths", nargs="+", help="notebooks, or folders searched for *.ipynb")
    grade.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        help="kernels run at once (default: the number of CPUs)",
    )
    grade.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds per submission (default: the task's own)",
    )
    grade.add_argument("--json", metavar="FILE", help="write the JSON records here")
    grade.add_argument("--csv", metavar="FILE", help="write a CSV summary here")
    grade.set_defaults(run=command_grade)
    tasks = commands.add_parser("tasks", help="list the tasks")
    tasks.set_defaults(run=command_tasks)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
