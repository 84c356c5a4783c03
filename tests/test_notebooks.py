"""The shipped notebooks are generated from the task sources and stay in sync."""

from __future__ import annotations

from pathlib import Path

import nbformat

from whipnb.authoring.notebooks import rendered_notebooks
from whipnb.headless.pipeline import find_graded_cell
from whipnb.tasks import all_tasks

ROOT = Path(__file__).resolve().parent.parent


def test_committed_notebooks_match_the_task_sources():
    stale = [
        str(path.relative_to(ROOT))
        for path, text in rendered_notebooks(ROOT).items()
        if not path.exists() or path.read_text(encoding="utf-8") != text
    ]
    assert not stale, f"regenerate with `make notebooks`: {stale}"


def test_each_notebook_has_exactly_one_graded_cell_with_the_right_script():
    for task in all_tasks().values():
        for folder, source in (
            ("notebooks", task.buggy_source),
            ("solutions", task.solution_source),
        ):
            notebook = nbformat.read(ROOT / folder / f"{task.id}.ipynb", as_version=4)
            cell = find_graded_cell(notebook)
            assert cell.task == task.id
            assert cell.body.strip() == source.strip()


def test_every_shipped_script_is_a_calibration_case_graded_in_its_row():
    """nbval only runs the shipped notebooks (any score passes there); the score of each
    is asserted by the calibration test, which grades these very sources: the solution
    in the task's top row, the buggy script in the row of its unfixed bugs."""
    from whipnb.authoring.calibration import task_cases

    for task in all_tasks().values():
        rows = {case.source: case.row for case in task_cases(task)}
        top = max(task.rows, key=lambda row: row.high)
        assert rows.get(task.solution_source) == top.key, task.id
        assert task.buggy_source in rows, task.id
        assert task.row(rows[task.buggy_source]).high < top.low, task.id
