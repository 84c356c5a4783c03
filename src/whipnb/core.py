"""The one grading core.  The magic, the CLI and the Python API all call
:func:`grade_source`; nothing else decides a score."""

from __future__ import annotations

import time
from typing import Any

from whipnb.result import Result
from whipnb.runner import Executor, exec_executor, run_submission
from whipnb.tasks import get_task
from whipnb.version import __version__


def grade_source(
    task_id: str,
    source: str,
    *,
    namespace: dict[str, Any] | None = None,
    executor: Executor = exec_executor,
) -> Result:
    """Run ``source`` as a submission for ``task_id`` and grade what it did.

    Raises :class:`~whipnb.tasks.UnknownTaskError` for an unknown task; any
    error in the submission itself is part of the grade, never raised.
    """
    task = get_task(task_id)
    started = time.perf_counter()
    run = run_submission(source, namespace, executor, task.probes())
    assessment = task.assess(run)
    return Result(
        task=task.id,
        score=assessment.score,
        status=assessment.status,
        checks=assessment.checks,
        metrics=assessment.metrics,
        message=assessment.message,
        duration_s=round(time.perf_counter() - started, 3),
        version=__version__,
        rubric_row=assessment.row.condition,
        targets=dict(task.targets),
        losses=run.evidence.losses,
    )


def failure_result(task_id: str, status: str, message: str, duration_s: float = 0.0) -> Result:
    """A record for a submission that could not be graded normally (contract 4)."""
    return Result(
        task=task_id,
        score=0.0,
        status=status,
        checks=[],
        metrics={},
        message=message,
        duration_s=round(duration_s, 3),
        version=__version__,
    )
