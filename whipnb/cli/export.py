"""``whipnb export``: the gradebook as CSV, JSON and Gradescope results."""

from __future__ import annotations

import argparse
from typing import Any

from whipnb.cli.arguments import add_db, positive
from whipnb.cli.gradebook_access import latest_gradings
from whipnb.gradebook.exports import VISIBILITIES


def register(commands: Any) -> None:
    export = commands.add_parser(
        "export",
        help="export the gradebook: CSV, JSON, Gradescope",
        description="Export one grading per learner and task: the newest grading of each "
        "file, and when several files map to one learner and task, the newest file (the long "
        "CSV and the JSON say which and why). Per-check columns: 1 passed, 0 not.",
    )
    add_db(export)
    export.add_argument("--csv-long", metavar="FILE", help="one row per learner and task")
    export.add_argument(
        "--csv-wide", metavar="FILE", help="one row per learner, a column per task, a total"
    )
    export.add_argument("--json", metavar="FILE", help="the JSON records of every grading")
    export.add_argument(
        "--gradescope", metavar="DIR", help="write DIR/<learner>/results.json (Gradescope format)"
    )
    export.add_argument(
        "--points", type=positive(float), default=1.0, help="Gradescope points per task"
    )
    for option, default, what in (
        ("--visibility", "visible", "the results and the per-task tests"),
        ("--test-visibility", "visible", "the per-check tests"),
        ("--stdout-visibility", "hidden", "the autograder's output"),
    ):
        export.add_argument(
            option,
            choices=VISIBILITIES,
            default=default,
            help=f"Gradescope visibility of {what} (default: {default})",
        )
    export.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    wanted = (args.csv_long, args.csv_wide, args.json, args.gradescope)
    if not any(wanted):
        print("nothing to export: give --csv-long, --csv-wide, --json or --gradescope")
        return 2
    gradings = latest_gradings(args.db)
    if gradings is None:
        return 2
    from whipnb.gradebook import exports

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
    print(f"exported {len(gradings)} gradings (one per learner and task) from {args.db}")
    return 0
