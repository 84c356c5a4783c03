"""Helpers the tests share: grade or run a submission quietly, and derive
submissions from a task's scripts by exact replacement (a test fails loudly if
the script it edits has changed, instead of silently grading the unedited
script).  Test modules import them with ``from helpers import ...``."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any

from whipnb import Result, grade_source
from whipnb.core.runner import Run, run_submission
from whipnb.tasks import get_task


def edit(source: str, *replacements: tuple[str, str]) -> str:
    """Apply each (old, new) replacement; ``old`` must occur in ``source``."""
    for old, new in replacements:
        assert old in source, f"expected to find {old!r} in the script"
        source = source.replace(old, new)
    return source


def grade_quietly(task_id: str, source: str) -> Result:
    """Grade ``source`` for ``task_id`` with its prints and tracebacks kept off the log;
    with each check's diagnosis (cause and fix), which tests assert on too."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return grade_source(task_id, source, diagnosis=True)


def run_quietly(
    source: str,
    probes: Mapping[str, AbstractContextManager[Any]] | None = None,
    *,
    task: str | None = None,
) -> Run:
    """Run ``source`` under instrumentation without grading it: with ``probes``, or with
    the probes of ``task``, or with the standard instrumentation only."""
    if task is not None:
        probes = get_task(task).probes()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return run_submission(source, probes=dict(probes or {}))


def check(result: Result, check_id: str):
    """The check with this id (a test names the check it asserts on)."""
    return next(c for c in result.checks if c.id == check_id)
