"""``whipnb report``: an HTML report of the gradebook."""

from __future__ import annotations

import argparse
from typing import Any

from whipnb.cli.arguments import add_db
from whipnb.cli.gradebook_access import latest_gradings


def register(commands: Any) -> None:
    report = commands.add_parser(
        "report",
        help="an HTML report of the gradebook",
        description="Score distributions, the pass rate of every check, the submissions "
        "not graded and any tampering found, per task.",
    )
    add_db(report)
    report.add_argument(
        "--output", "-o", default="whipnb-report.html", help="the HTML file to write"
    )
    report.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from whipnb.gradebook.report import write_report  # matplotlib: imported only for a report

    gradings = latest_gradings(args.db)
    if gradings is None:
        return 2
    write_report(args.output, gradings, args.db)
    print(f"report of {len(gradings)} gradings written to {args.output}")
    return 0
