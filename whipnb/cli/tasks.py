"""``whipnb tasks``: the exercises this installation knows."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text


def register(commands: Any) -> None:
    tasks = commands.add_parser("tasks", help="list the tasks", description="List the tasks.")
    tasks.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from whipnb.tasks import all_tasks, task_problems

    table = Table(title="whipnb tasks")
    for column in ("task", "title", "difficulty", "timeout (s)"):
        table.add_column(column)
    for task in all_tasks().values():
        table.add_row(task.id, task.title, task.difficulty, f"{task.timeout_s:g}")
    console = Console()
    console.print(table)
    for name, problem in task_problems().items():
        console.print(Text.assemble((f"task {name!r} left out: ", "red"), problem))
    return 0
