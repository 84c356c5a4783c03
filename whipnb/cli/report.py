"""``whipnb report``: an HTML report of the gradebook."""

from __future__ import annotations

import argparse
from typing import Any

from whipnb.cli.arguments import add_db
from whipnb.cli.gradebook_access import latest_gradings
from whipnb.cli.similarity import THRESHOLD, fraction


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="an HTML report of the gradebook",
        description="Per task the score distribution, mean and median, the pass rate of every "
        "check (every submission counts) and the submissions not graded; each learner's "
        "scores and missed checks; near-identical submissions; any tampering found.",
    )
    add_db(report)
    report.add_argument(
        "--output", "-o", default="whipnb-report.html", help="the HTML file to write"
    )
    report.add_argument(
        "--similarity-threshold",
        type=fraction,
        default=THRESHOLD,
        help=f"list pairs sharing at least this share of fingerprints (default {THRESHOLD}; "
        "see whipnb similarity)",
    )
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from whipnb.gradebook.report import write_report  # matplotlib: imported only for a report

    gradings = latest_gradings(args.db)
    if gradings is None:
        return 2
    write_report(args.output, gradings, args.db, args.similarity_threshold)
    print(f"report of {len(gradings)} gradings written to {args.output}")
    return 0
