"""The Python API every front end calls: grade a code string for a task by its id.

The magic, the headless grading kernel, the calibration and agents all end in
:func:`grade_source`; it looks the task up in the registry and hands it to the
grading core, so a submission scores the same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from whipnb.core.grading import grade
from whipnb.core.result import Result
from whipnb.core.runner import Executor, Run, exec_executor
from whipnb.tasks import get_task


def grade_source(
    task_id: str,
    source: str,
    *,
    namespace: dict[str, Any] | None = None,
    executor: Executor = exec_executor,
    on_assessed: Callable[[Run], None] | None = None,
    diagnosis: bool = False,
) -> Result:
    """Run ``source`` as a submission for ``task_id`` and grade what it did.

    Each check's ``detail`` states the symptom and its evidence; with
    ``diagnosis=True`` its ``diagnosis`` also names the cause and the fix (for
    instructors and agents; a learner reaches it through the hints' last step).
    The score is the same either way.

    Raises :class:`~whipnb.tasks.UnknownTaskError` for an unknown task; any
    error in the submission itself is part of the grade, never raised.
    """
    result = grade(
        get_task(task_id), source, namespace=namespace, executor=executor, on_assessed=on_assessed
    )
    return result if diagnosis else result.without_diagnosis()
