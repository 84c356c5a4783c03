"""``whipnb gradebook list`` and ``whipnb gradebook remove``: look at the gradebook's
records and delete the ones that should not be there (a mistyped path from an old
version, a test run, a learner who left)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text

from whipnb.cli.arguments import add_db
from whipnb.cli.output import console

if TYPE_CHECKING:
    from whipnb.gradebook.store import Grading


def register(commands: Any) -> None:
    gradebook = commands.add_parser(
        "gradebook",
        help="list or remove gradebook records",
        description="List the gradebook's records, or remove some. A record is one grading "
        "of one file; the exports use one per learner and task (the column 'used').",
    )
    actions = gradebook.add_subparsers(dest="action", required=True)
    listing = actions.add_parser(
        "list", help="list records", description="List records, oldest first."
    )
    remove = actions.add_parser(
        "remove",
        help="remove records",
        description="Remove the records that match every filter given (at least one). "
        "Asks before removing, unless --yes.",
    )
    for command in (listing, remove):
        add_db(command)
        command.add_argument("--learner", action="append", help="only this learner (repeatable)")
        command.add_argument("--task", action="append", help="only this task (repeatable)")
        command.add_argument(
            "--id", type=int, action="append", dest="ids", help="only this record (repeatable)"
        )
    listing.add_argument("--used", action="store_true", help="only the records the exports use")
    remove.add_argument("--yes", "-y", action="store_true", help="remove without asking")
    listing.set_defaults(run=run_list)
    remove.set_defaults(run=run_remove)


def run_list(args: argparse.Namespace) -> int:
    selected = _select(args)
    if selected is None:
        return 2
    gradings, used = selected
    if args.used:
        gradings = [g for g in gradings if g.id in used]
    console().print(records_table(gradings, used))
    return 0


def run_remove(args: argparse.Namespace) -> int:
    if not (args.learner or args.task or args.ids):
        print("say what to remove: --learner, --task or --id (see `whipnb gradebook list`)")
        return 2
    selected = _select(args)
    if selected is None:
        return 2
    gradings, used = selected
    if not gradings:
        print("no record matches; nothing removed")
        return 1
    console().print(records_table(gradings, used))
    if not args.yes and not _confirmed(f"remove these {len(gradings)} records from {args.db}?"):
        print("nothing removed")
        return 1
    from whipnb.gradebook.store import Gradebook

    with Gradebook(args.db) as gradebook:
        removed = gradebook.remove(g.id for g in gradings)
    print(f"removed {removed} records from {args.db}")
    return 0


def records_table(gradings: Sequence[Grading], used: set[int]) -> Table:
    table = Table(title="whipnb gradebook")
    for column in ("id", "learner", "task", "score", "status", "graded at", "used", "file"):
        table.add_column(column, overflow="fold")
    for g in gradings:
        cells = (
            str(g.id),
            g.learner,
            g.result.task,
            f"{g.result.score:.3f}",
            g.result.status,
            g.finished_at,
            "yes" if g.id in used else "",
            g.path,
        )
        table.add_row(*map(Text, cells))  # Text: ids and paths may hold "[...]"
    return table


def _select(args: argparse.Namespace) -> tuple[list[Grading], set[int]] | None:
    """The records matching the filters, and the ids of those the exports use."""
    if not Path(args.db).is_file():
        print(f"no gradebook at {args.db}: run `whipnb grade` first, or give --db")
        return None
    from whipnb.gradebook.store import Gradebook, choose

    with Gradebook(args.db) as gradebook:
        every = list(gradebook.gradings())
    used = {g.id for g in choose(every)}
    matching = [
        g
        for g in every
        if (not args.learner or g.learner in args.learner)
        and (not args.task or g.result.task in args.task)
        and (not args.ids or g.id in args.ids)
    ]
    return matching, used


def _confirmed(question: str) -> bool:
    """A yes from the terminal; without one (a pipe, a script) the answer is no."""
    if not sys.stdin.isatty():
        print(f"{question} not asked: input is not a terminal; give --yes to remove")
        return False
    return input(f"{question} [y/N] ").strip().lower() in {"y", "yes"}
