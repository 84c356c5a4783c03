"""whipnb, the command line for instructors and course pipelines: grade notebooks in
fresh kernels, then export, report, hand back feedback and run inside Gradescope.

``whipnb grade PATH... [--jobs N] [--timeout S] [--json FILE] [--csv FILE]``
grades notebooks (files, or folders searched recursively) in fresh kernels, N
at a time, each under a time and a memory limit, records every result in the
gradebook the moment it is known and prints a table.  Exit status 0 whenever
every notebook got a record, whatever the scores (docs/CONTRACTS.md, 3); 2 when there is
nothing to grade or a path does not exist; 130 when interrupted (what finished
is kept: run the same command again to grade the rest).

``whipnb export`` writes CSV (long and wide), JSON records and Gradescope
results from the gradebook; ``whipnb report`` an HTML report; ``whipnb
feedback`` an HTML file per learner and task; ``whipnb similarity`` the pairs
of near-identical submissions; ``whipnb gradebook list|remove`` shows and
deletes records; ``whipnb gradescope-bundle`` writes a Gradescope autograder;
``whipnb tasks`` lists the tasks.

The argparse texts are plain text: the first paragraph above is the ``--help``
description, so it has no reStructuredText markup.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import whipnb.cli.lean_imports  # noqa: F401 - before anything imports nbformat
from whipnb.cli import (
    export,
    feedback,
    grade,
    gradescope,
    records,
    report,
    serve,
    similarity,
    tasks,
)
from whipnb.version import __version__

#: The sub-commands, in the order ``--help`` lists them; each module registers its
#: parser and runs it (imports that cost time happen inside ``run``).
COMMANDS = (grade, export, report, feedback, similarity, records, gradescope, tasks, serve)


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(prog="whipnb", description=__doc__.split("\n\n")[0])
    main.add_argument("--version", action="version", version=f"whipnb {__version__}")
    commands = main.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(commands)
    return main


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:  # before or after a batch: nothing half-done to report
        print("interrupted")
        return grade.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
