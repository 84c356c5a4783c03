"""``whipnb similarity``: pairs of learners whose graded cells are near-identical."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from whipnb.cli.arguments import add_db, non_negative_int, positive
from whipnb.cli.gradebook_access import latest_gradings
from whipnb.cli.output import console
from whipnb.gradebook.similarity import DEFAULT_MAX_COMMON as MAX_COMMON
from whipnb.gradebook.similarity import DEFAULT_MIN_SHARED as MIN_SHARED
from whipnb.gradebook.similarity import DEFAULT_THRESHOLD as THRESHOLD
from whipnb.gradebook.similarity import similar_pairs


def register(commands: Any) -> None:
    similarity = commands.add_parser(
        "similarity",
        help="pairs of learners with near-identical graded cells",
        description="Compare the graded cells of every pair of learners, per task, as "
        "normalised tokens (names, strings and numbers anonymous) fingerprinted by "
        "winnowing, leaving out the code the course ships (the buggy script and the "
        "reference fix) and code more than --max-common learners share.",
    )
    add_db(similarity)
    similarity.add_argument(
        "--threshold",
        type=fraction,
        default=THRESHOLD,
        help=f"report pairs sharing at least this share of fingerprints (default {THRESHOLD})",
    )
    similarity.add_argument(
        "--min-shared",
        type=positive(int),
        default=MIN_SHARED,
        help=f"and at least this many fingerprints, about half a line each (default {MIN_SHARED})",
    )
    similarity.add_argument(
        "--max-common",
        type=non_negative_int,
        default=MAX_COMMON,
        help=f"ignore code shared by more than this many learners (default {MAX_COMMON})",
    )
    similarity.add_argument("--json", metavar="FILE", help="write the pairs as JSON here")
    similarity.set_defaults(run=run)


def fraction(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], not {text}")
    return value


def run(args: argparse.Namespace) -> int:
    gradings = latest_gradings(args.db)
    if gradings is None:
        return 2
    pairs = similar_pairs(gradings, args.threshold, args.min_shared, args.max_common)
    table = Table(title="whipnb similar submissions")
    for column in ("task", "learner", "learner", "similarity", "shared", "files"):
        table.add_column(column, overflow="fold")
    for pair in pairs:
        cells = (
            pair.task,
            *pair.learners,
            f"{100 * pair.similarity:.0f}%",
            str(pair.shared),
            "\n".join(pair.paths),
        )
        table.add_row(*map(Text, cells))
    console().print(table)
    print(f"{len(pairs)} similar pairs among {len(gradings)} submissions")
    if args.json:
        records = [asdict(pair) for pair in pairs]
        Path(args.json).write_text(json.dumps(records, indent=2) + "\n", encoding="utf-8")
    return 0
