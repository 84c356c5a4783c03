"""Score forgeries against the real command line: each is the untouched buggy task-1 script
plus an attack on the result, graded in one shared batch with the untouched script.

The seed's row for the untouched script is "No bugs fixed, code runs" (0.15-0.25): the
weights never move (step() before backward()), so the grader's held-out accuracy and
the step evidence both give that row its minimum, 0.150.  No forgery may record more
than the untouched script, and each record must say what was found.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kernels import write_notebook

from whipnb.tasks import get_task

BUGGY = get_task("task1").buggy_source
UNTOUCHED_SCORE = 0.15
TOP_ROW = get_task("task1").row("fixed").condition

#: Rewrites a result object in place to the top row (used by several attacks).
FORGE = f"""
def forge(result):
    result.score = 1.0
    result.rubric_row = {TOP_ROW!r}
    result.message = "Both bugs fixed."
    result.metrics["heldout_accuracy"] = 0.95
    result.metrics["heldout_loss"] = 0.12
    return result
"""

ATTACKS = {
    "session_method": FORGE
    + """
from whipnb.notebook.magic import active_magics
# The session has slots, so the method is patched on its class.
_Session = type(active_magics().session)
_record = _Session.record
_Session.record = lambda self, result: _record(self, forge(result))
""",
    "thread": FORGE
    + """
import threading, time
from whipnb.notebook.magic import active_magics
SESSION = active_magics().session
def rewrite():
    while True:
        if SESSION.last is not None and SESSION.last.score != 1.0:
            forge(SESSION.last)
        time.sleep(0.0005)
threading.Thread(target=rewrite, daemon=True).start()
""",
    "finalizer": FORGE
    + """
import weakref
from whipnb.notebook.magic import active_magics
SESSION = active_magics().session
class Trigger:
    pass
# The read-out cell's import rebinds this name, freeing the object just before the read-out.
display_last_result = Trigger()
weakref.finalize(display_last_result, lambda: forge(SESSION.last))
""",
    "event_callback": """
import functools
CODE = '''
from whipnb.notebook.magic import active_magics
SESSION = active_magics().session
if SESSION.last is not None:
    SESSION.last.score = 1.0
    SESSION.last.rubric_row = %r
''' % TOP_ROW
get_ipython().events.register("pre_execute", functools.partial(exec, CODE, {}))
""".replace("TOP_ROW", repr(TOP_ROW)),
    "display_session_hook": """
MIME = "application/vnd.whipnb.result+json"
session = get_ipython().kernel.session
_send = session.send
def send(stream, msg_or_type, content=None, *args, **kwargs):
    message = msg_or_type if isinstance(msg_or_type, dict) else {"content": content}
    data = (message.get("content") or {}).get("data", {})
    if MIME in data:
        data[MIME].update(score=1.0, rubric_row=TOP_ROW, band="Excellent")
    return _send(stream, msg_or_type, content, *args, **kwargs)
session.send = send
""".replace("TOP_ROW", repr(TOP_ROW)),
    "json_dumps": """
import json
_dumps = json.dumps
def dumps(value, *args, **kwargs):
    if isinstance(value, dict) and "rubric_row" in value:
        value = {**value, "score": 1.0, "rubric_row": TOP_ROW, "band": "Excellent"}
    return _dumps(value, *args, **kwargs)
json.dumps = dumps
""".replace("TOP_ROW", repr(TOP_ROW)),
    "gc_evidence": """
import gc
from whipnb.core.instrument import Evidence, StepEvent
for evidence in [o for o in gc.get_objects() if type(o) is Evidence]:
    evidence.steps[:] = [StepEvent(0, True, False, (0.01,), 0.01) for _ in evidence.steps]
    evidence.losses[:] = [0.7 * 0.99 ** i + 0.1 for i in range(len(evidence.losses))]
""",
    "held_out_table": """
from whipnb.tasks.task1.grading import HELD_OUT_SEED, HELD_OUT_SIZE
from whipnb.tasks.task1.data import make_samples
_inputs, _labels = make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)
_answers = torch.nn.functional.one_hot(_labels, 2).float() * 20
_plain = model.forward
def forward(x):
    if x.shape == _inputs.shape and torch.equal(x, _inputs):
        return _answers + 0 * x[:, :1]  # depends on x, so that it can be traced
    return _plain(x)
model.forward = forward
""",
    "stack_detection": """
import sys
from whipnb.tasks.task1.grading import HELD_OUT_SEED, HELD_OUT_SIZE
from whipnb.tasks.task1.data import make_samples
_inputs, _labels = make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)
_plain = model.forward
def graded():
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "evaluate_classifier":
            return True
        frame = frame.f_back
    return False
def forward(x):
    if graded() and x.shape == _inputs.shape:
        return torch.nn.functional.one_hot(_labels, 2).float() * 20
    return _plain(x)
model.forward = forward
""",
}

#: Bundles no grading produces, planted in both the read-out and the exported record
#: (by a callback that runs before the read-out cell).
MALFORMED = {
    "out_of_range": "dict(score=50.0)",
    "wrong_task": "dict(task='task2')",
    "string_score": "dict(score='1.0')",
    "huge_bundle": "dict(message='x' * 6_000_000)",
}
PLANT = """
import functools
CODE = '''
import json
from whipnb.notebook.magic import active_magics
SESSION = active_magics().session
if SESSION.last is not None and SESSION.export_folder is not None:
    change = CHANGE
    for key, value in change.items():
        setattr(SESSION.last, key, value)
    path = SESSION.export_folder / "record.json"
    record = json.loads(path.read_text())
    record["bundle"].update(change)
    path.write_text(json.dumps(record))
'''
get_ipython().events.register("pre_execute", functools.partial(exec, CODE, {}))
"""


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    """Every attack and the untouched script, graded in one batch by ``whipnb grade``."""
    folder = tmp_path_factory.mktemp("forgeries")
    bodies = {"untouched": BUGGY, **{name: BUGGY + code for name, code in ATTACKS.items()}}
    bodies.update({name: BUGGY + PLANT.replace("CHANGE", c) for name, c in MALFORMED.items()})
    (folder / "class").mkdir()
    for name, body in bodies.items():
        write_notebook(folder / "class" / f"{name}.ipynb", f"%%whip_grade task1\n{body}")
    out = folder / "records.json"
    command = [sys.executable, "-m", "whipnb", "grade", str(folder / "class")]
    command += ["--json", str(out), "--db", str(folder / "grades.db"), "--jobs", "2", "-q"]
    env = {**os.environ, "WHIPNB_SECRET": "forgery tests"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    return {Path(r["path"]).stem: r for r in json.loads(out.read_text())}


def _found(record: dict) -> str:
    return " | ".join(record["tampering"]) + " | " + record["message"]


def test_the_untouched_script_keeps_its_score(records):
    record = records["untouched"]
    assert record["score"] == UNTOUCHED_SCORE
    assert record["tampering"] == []
    assert record["metrics"]["outside_accuracy"] < 0.5  # measured outside: never trained


@pytest.mark.parametrize(
    ("attack", "finding"),
    [
        ("session_method", "replaced whipnb.notebook.magic.Session.record"),
        ("thread", "other than the one the grading exported"),
        ("finalizer", "other than the one the grading exported"),
        ("event_callback", "other than the one the grading exported"),
        ("display_session_hook", "other than the one the grading exported"),
        ("json_dumps", "other than the one the grading exported"),
        ("gc_evidence", "those losses are not this model's"),
        ("held_out_table", "it knows the public samples"),
        ("stack_detection", "but the exported model measures"),
    ],
)
def test_a_forged_result_gains_nothing_and_is_reported(records, attack, finding):
    record = records[attack]
    assert record["status"] == "graded"
    assert record["score"] <= UNTOUCHED_SCORE
    assert finding in _found(record), _found(record)


def test_a_thread_left_running_is_reported(records):
    assert "1 thread(s) started by the code were still running" in _found(records["thread"])


@pytest.mark.parametrize(
    ("attack", "reason"),
    [
        ("out_of_range", "the score 50.0 is outside [0, 1]"),
        ("wrong_task", "the result names task 'task2'"),
        ("string_score", "the score '1.0' is not a number"),
        ("huge_bundle", "over the limit"),
    ],
)
def test_a_malformed_bundle_is_a_clear_record(records, attack, reason):
    record = records[attack]
    assert record["task"] == "task1"
    assert record["status"] == "graded"
    assert record["score"] == 0.0
    assert reason in _found(record), _found(record)
