"""The ``whipnb`` command line: one module per sub-command, thin front ends over the
headless grader and the gradebook."""

from whipnb.cli.main import main

__all__ = ["main"]
