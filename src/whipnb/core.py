"""The one grading core.  The magic, the CLI and the Python API all call
:func:`grade_source`; nothing else decides a score."""

from __future__ import annotations

import time
from typing import Any

from whipnb.integrity import IntegrityGuard
from whipnb.result import Check, Result
from whipnb.rubric import Assessment, Row
from whipnb.runner import Executor, Run, exec_executor, run_submission
from whipnb.tasks import Task, get_task
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
    assessment, tampering = _assess_guarded(task, run)
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


def _assess_guarded(task: Task, run: Run) -> tuple[Assessment, list[str]]:
    """Assess the run with the grader verified around it; returns the tampering found.

    Assessment calls the learner's model, which is learner code too: a second
    snapshot catches changes it makes, and any error it raises is graded, never
    propagated, so neither the magic nor a batch can be broken by a submission.
    """
    guard = IntegrityGuard()  # the state without probes, which assessment must not change
    try:
        assessment = task.assess(run)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        failed = Check("assessable", "The grader can assess the run", False, detail)
        assessment = Assessment(task.crash_row, 0.0, [failed], {}, f"Could not assess: {detail}")
    tampered_during_assessment = guard.restore()
    tampering = run.tampering + tampered_during_assessment
    probes = run.probes.values()
    if tampered_during_assessment or any(getattr(p, "voids_assessment", False) for p in probes):
        assessment = _void(task.crash_row, assessment, tampering)
    elif any(getattr(probe, "caps_quality", False) for probe in probes):
        assessment.quality = 0.0
        assessment.message += " Trained on validation data: no credit above this row's minimum."
    if tampering:
        assessment.checks.append(
            Check("integrity", "The code leaves the grader alone", False, "; ".join(tampering))
        )
    return assessment, tampering


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
