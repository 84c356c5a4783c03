"""The one grading core.  The magic, the CLI and the Python API all call
:func:`grade_source`; nothing else decides a score."""

from __future__ import annotations

import time
from typing import Any

from whipnb.integrity import IntegrityGuard
from whipnb.result import Check, Result
from whipnb.rubric import Assessment, Row
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
    guard = IntegrityGuard()  # the state without probes, which assessment must not change
    assessment = task.assess(run)
    tampered_during_assessment = guard.restore()
    tampering = run.tampering + tampered_during_assessment
    if tampered_during_assessment or any(
        getattr(probe, "voids_assessment", False) for probe in run.probes.values()
    ):
        assessment = _void(task.crash_row, assessment, tampering)
    elif any(getattr(probe, "caps_quality", False) for probe in run.probes.values()):
        assessment.quality = 0.0
        assessment.message += " Trained on validation data: no credit above this row's minimum."
    if tampering:
        assessment.checks.append(
            Check("integrity", "The code leaves the grader alone", False, "; ".join(tampering))
        )
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
        tampering=tampering,
    )


def _void(crash_row: Row, assessment: Assessment, findings: list[str]) -> Assessment:
    """Code that changed the grader while being assessed, or trained on the grader's
    held-out data, leaves nothing honest to measure: the crash row, at its bottom."""
    message = "This run cannot be graded honestly: " + "; ".join(findings)
    return Assessment(crash_row, 0.0, assessment.checks, assessment.metrics, message)


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
