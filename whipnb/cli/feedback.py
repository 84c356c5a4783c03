"""``whipnb feedback``: one self-contained HTML file per learner and task to hand back."""

from __future__ import annotations

import argparse
from typing import Any

from whipnb.cli.arguments import add_db
from whipnb.cli.gradebook_access import latest_gradings


def register(commands: Any) -> None:
    feedback = commands.add_parser(
        "feedback",
        help="write feedback files to hand back, one per learner and task",
        description="Write OUTPUT/<learner>/<task>.html for the grading of each learner and "
        "task the exports use: score, band, findings, targets, loss curve and hints, in one "
        "file that opens in any browser without a network.",
    )
    add_db(feedback)
    feedback.add_argument(
        "--output", "-o", default="feedback", help="the folder to write (default: feedback)"
    )
    feedback.add_argument("--learner", action="append", help="only this learner (repeatable)")
    feedback.add_argument("--task", action="append", help="only this task (repeatable)")
    feedback.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    gradings = latest_gradings(args.db)
    if gradings is None:
        return 2
    from whipnb.gradebook.feedback import write_feedback  # matplotlib: only when writing

    chosen = [
        g
        for g in gradings
        if (not args.learner or g.learner in args.learner)
        and (not args.task or g.result.task in args.task)
    ]
    if not chosen:
        print("no grading matches; no feedback written")
        return 1
    written = write_feedback(args.output, chosen)
    learners = len({g.learner for g in chosen})
    print(f"{len(written)} feedback files for {learners} learners written under {args.output}")
    return 0
