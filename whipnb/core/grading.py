"""The one grading core: run a submission under instrumentation, let its task assess
the run with the grader guarded, and turn the verdict into a :class:`Result`.

Every front end ends here (through :func:`whipnb.api.grade_source`); nothing else
decides a score.  The core knows tasks only through :class:`GradedTask`, so it
sits below the task layer and never imports it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from whipnb.core.instrument import Probe
from whipnb.core.integrity import IntegrityGuard
from whipnb.core.result import Check, Result
from whipnb.core.rubric import Assessment, Row
from whipnb.core.runner import Executor, Run, exec_executor, run_submission
from whipnb.version import __version__


class GradedTask(Protocol):
    """What the core needs of a task (``whipnb.tasks.Task`` provides it)."""

    id: str
    rows: tuple[Row, ...]
    targets: Mapping[str, str]

    @property
    def crash_row(self) -> Row: ...

    def probes(self) -> Mapping[str, Probe]: ...

    def assess(self, run: Run) -> Assessment: ...

    def guarded(self) -> Sequence[tuple[str, Any]]: ...


def grade(
    task: GradedTask,
    source: str,
    *,
    namespace: dict[str, Any] | None = None,
    executor: Executor = exec_executor,
) -> Result:
    """Run ``source`` as a submission for ``task`` and grade what it did.

    Any error in the submission itself is part of the grade, never raised.
    """
    started = time.perf_counter()
    guarded = _task_objects(task)
    run = run_submission(source, namespace, executor, task.probes(), guarded)
    assessment, tampering = _assess_guarded(task, run, guarded)
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
        rubric_key=assessment.row.key,
        targets=dict(task.targets),
        losses=run.evidence.losses,
        tampering=tampering,
    )


def _task_objects(task: GradedTask) -> list[tuple[str, Any]]:
    """The task, its rubric rows and whatever else it grades with (its grader):
    replacing any of them would change the score."""
    rows = [(f"the {task.id} rubric row {row.key!r}", row) for row in task.rows]
    return [(f"the {task.id} task", task), *rows, *task.guarded()]


def _assess_guarded(
    task: GradedTask, run: Run, guarded: list[tuple[str, Any]]
) -> tuple[Assessment, list[str]]:
    """Assess the run with the grader verified around it; returns the tampering found.

    Assessment calls the learner's model, which is learner code too: a second
    snapshot catches changes it makes, and any error it raises is graded, never
    propagated, so neither the magic nor a batch can be broken by a submission.
    """
    guard = IntegrityGuard(guarded)  # the state without probes, which assessment must not change
    try:
        assessment = task.assess(run)
    except Exception as error:
        detail = f"{type(error).__name__}: {error}"
        failed = Check("assessable", "The grader can assess the run", False, detail)
        assessment = Assessment(task.crash_row, 0.0, [failed], {}, f"Could not assess: {detail}")
    tampered_during_assessment = guard.restore()
    tampering = run.tampering + tampered_during_assessment
    probes = run.probes.values()
    if tampered_during_assessment or any(probe.voids_assessment for probe in probes):
        assessment = _void(task.crash_row, assessment, tampering)
    elif any(probe.caps_quality for probe in probes):
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
