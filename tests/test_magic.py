"""``%%whip_grade`` in a real kernel driven by nbclient, as a learner's front end would."""

from __future__ import annotations

from helpers import grade_quietly
from kernels import execute, outputs_with

from whipnb.core.result import RESULT_MIME
from whipnb.tasks import get_task

WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


def test_graded_cell_prints_live_then_shows_bundle_and_panel():
    task = get_task("task1")
    notebook = execute(
        "%load_ext whipnb",
        f"%%whip_grade task1\n{task.solution_source}",
        "print(type(model).__name__, round(val_acc, 2) > 0.8)",
    )
    graded = notebook.cells[1]
    streams = "".join(o.get("text", "") for o in graded.outputs if o.output_type == "stream")
    assert "LOSSES:[" in streams and "VAL_ACC:" in streams
    (display,) = outputs_with(graded, RESULT_MIME)
    bundle = display["data"][RESULT_MIME]
    assert bundle["task"] == "task1" and bundle["status"] == "graded"
    assert 0.85 <= bundle["score"] <= 1.0
    # determinism: the notebook scores the same digits as the Python API
    assert bundle["score"] == grade_quietly("task1", task.solution_source).score
    for key in ("band", "checks", "metrics", "message", "duration_s", "version"):
        assert key in bundle
    assert WIDGET_MIME in display["data"], "the live panel is merged into the same output"
    assert "Excellent" in display["data"]["text/html"]
    # the body ran in the notebook's namespace: its variables are still there
    assert notebook.cells[2].outputs[0]["text"].strip() == "Linear True"


def test_learner_exception_shows_traceback_and_is_graded_as_crash():
    notebook = execute(
        "%load_ext whipnb",
        "%%whip_grade task1\nimport torch\nx = torch.ones(3) @ torch.ones(4)\n",
        "print('kernel still fine')",
    )
    graded = notebook.cells[1]
    errors = [o for o in graded.outputs if o.output_type == "error"]
    assert errors and errors[0]["ename"] == "RuntimeError"
    (display,) = outputs_with(graded, RESULT_MIME)
    bundle = display["data"][RESULT_MIME]
    assert bundle["status"] == "graded" and bundle["score"] <= 0.10
    runs = next(c for c in bundle["checks"] if c["id"] == "runs")
    assert not runs["passed"] and "RuntimeError" in runs["detail"]
    assert notebook.cells[2].outputs[0]["text"].strip() == "kernel still fine"


def test_unknown_task_is_reported_not_raised():
    notebook = execute("%load_ext whipnb", "%%whip_grade task99\nprint('never graded')\n")
    (display,) = outputs_with(notebook.cells[1], RESULT_MIME)
    bundle = display["data"][RESULT_MIME]
    assert bundle["status"] == "invalid" and "unknown task 'task99'" in bundle["message"]
    assert not [o for o in notebook.cells[1].outputs if o.output_type == "error"]
