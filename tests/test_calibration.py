"""Every calibration case of every task lands in the rubric row it names: the grader
chose that row (by key), and the score is inside its range."""

from __future__ import annotations

import pytest

from whipnb.authoring.calibration import grade_case, task_cases
from whipnb.tasks import all_tasks

CASES = [(task, case) for task in all_tasks().values() for case in task_cases(task)]


@pytest.mark.parametrize(
    ("task", "case"), CASES, ids=[f"{task.id}: {case.name}" for task, case in CASES]
)
def test_case_lands_in_its_row(task, case):
    result = grade_case(task, case)
    row = task.row(case.row)
    assert result.rubric_key == case.row, f"{case.name}: graded in {result.rubric_key!r}"
    assert row.low <= result.score <= row.high, (
        f"{case.name}: {result.score} not in {row.condition} [{row.low}, {row.high}]\n"
        + "\n".join(f"{c.passed} {c.title}: {c.detail}" for c in result.checks)
    )
