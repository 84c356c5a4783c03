"""``%%whip_grade`` in a real kernel driven by nbclient, as a learner's front end would."""

from __future__ import annotations

import json

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
    assert WIDGET_MIME not in display["data"], "a widget output's model dies on reopening"
    assert "Excellent" in display["data"]["text/html"]
    (widget,) = outputs_with(graded, WIDGET_MIME)
    assert graded.outputs.index(widget) == graded.outputs.index(display) + 1
    assert set(widget["data"]) == {WIDGET_MIME, "text/plain"} and widget["data"]["text/plain"] == ""
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


CRASH = "raise RuntimeError('not yet')"
SECOND_SHELL = """
from whipnb.notebook.magic import WhipMagics, active_magics
first = active_magics()
second = WhipMagics(get_ipython())  # a second registration, as in another shell
second.whip_grade("task1", CRASH)
"""
REPLACE_SESSION = """
magics = get_ipython().magics_manager.magics["cell"]["whip_grade"].__self__
try:
    magics.session.record = lambda result: []
except AttributeError as error:
    print("refused:", error)
magics.session = None
"""
REPORT = """
import json
print(json.dumps({
    "first": len(first.session.attempts["task1"]),
    "second": len(second.session.attempts["task1"]),
    "tasks": sorted(first.session.attempts),
    "same": active_magics().session is first.session,
    "tampering": first.session.last.tampering,
}))
"""


def test_session_state_lives_on_the_magics_instance():
    """Attempts, the last result and revealed hints belong to each registered
    ``WhipMagics``: a second instance (a second shell) starts empty, a mistyped task
    is no attempt, learner code cannot swap the session, and the headless read-out
    finds the last result through the registered instance."""
    notebook = execute(
        "%load_ext whipnb",
        f"CRASH = {CRASH!r}\n{SECOND_SHELL}",
        f"%%whip_grade task1\n{CRASH}",
        "%%whip_grade tsak1\nprint('a typo')",
        f"%%whip_grade task1\n{REPLACE_SESSION}",
        REPORT,
        "from whipnb.notebook.magic import display_last_result\ndisplay_last_result()",
        "import whipnb.notebook.magic as m, whipnb.notebook.panel as p\n"
        "print(hasattr(m, 'SESSION'), hasattr(p, 'REVEALED_HINTS'))",
    )
    refused = "".join(o.get("text", "") for o in notebook.cells[4].outputs)
    assert "refused:" in refused, "the session's methods cannot be hidden by attributes"
    report = json.loads(notebook.cells[5].outputs[0]["text"])
    assert report["first"] == 2 and report["second"] == 1, "instances never share attempts"
    assert report["tasks"] == ["task1"], "a mistyped task name is not an attempt"
    assert report["same"], "the swapped session was put back"
    assert "replaced the %%whip_grade magic's session" in report["tampering"]
    (read_out,) = outputs_with(notebook.cells[6], RESULT_MIME)
    bundle = read_out["data"][RESULT_MIME]
    assert bundle["task"] == "task1" and "replaced the %%whip_grade magic's session" in str(
        bundle["tampering"]
    )
    assert notebook.cells[7].outputs[0]["text"].split() == ["False", "False"]


def test_nan_loss_reaches_the_front_end_without_a_json_warning():
    """Task 2's buggy script trains into NaN: the bundle carries null, and jupyter_client
    never warns "Out of range float values are not JSON compliant"."""
    notebook = execute("%load_ext whipnb", f"%%whip_grade task2\n{get_task('task2').buggy_source}")
    graded = notebook.cells[1]
    stderr = "".join(o.get("text", "") for o in graded.outputs if o.get("name") == "stderr")
    assert "JSON compliant" not in stderr and "Out of range float" not in stderr
    (display,) = outputs_with(graded, RESULT_MIME)
    bundle = display["data"][RESULT_MIME]
    assert None in bundle["losses"] and bundle["metrics"]["nan_steps"] > 0
    json.dumps(bundle, allow_nan=False)


def test_out_of_memory_shows_a_short_message_not_torchs_internals():
    """Task 3's buggy script runs out of its GPU-like budget: the cell shows the error
    in a few lines (the script's own and the message), graded, the kernel fine."""
    notebook = execute("%load_ext whipnb", f"%%whip_grade task3\n{get_task('task3').buggy_source}")
    graded = notebook.cells[1]
    (error,) = [o for o in graded.outputs if o.output_type == "error"]
    assert error["ename"] == "MemoryBudgetExceeded"
    shown = "\n".join(error["traceback"])
    assert len(shown.splitlines()) <= 12, shown
    assert "site-packages" not in shown and "probes.py" not in shown
    assert shown.splitlines()[-1].startswith("MemoryBudgetExceeded: whipnb memory budget exceeded")
    (display,) = outputs_with(graded, RESULT_MIME)
    assert display["data"][RESULT_MIME]["status"] == "memory"
