"""Shared helpers: grade a submission quietly, and derive submissions from a
task's scripts by exact replacement (a test fails loudly if the script it
edits has changed, instead of silently grading the unedited script)."""

from __future__ import annotations

import contextlib
import io

import pytest

from whipnb import Result, grade_source
from whipnb.tasks import get_task


def edit(source: str, *replacements: tuple[str, str]) -> str:
    """Apply each (old, new) replacement; ``old`` must occur in ``source``."""
    for old, new in replacements:
        assert old in source, f"expected to find {old!r} in the script"
        source = source.replace(old, new)
    return source


def grade_quietly(task_id: str, source: str) -> Result:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return grade_source(task_id, source)


def check(result: Result, check_id: str):
    return next(c for c in result.checks if c.id == check_id)


@pytest.fixture(scope="session")
def task1():
    return get_task("task1")
