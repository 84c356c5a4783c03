"""A valid fix is never voided by the outside measurement: models trained on inputs
transformed outside them, graded by ``whipnb grade`` (kernel, export, measurement in
a fresh process, verdict).

Task 1 (issue 12): a model trained on standardised or rescaled points misses the
targets on raw points, yet both bugs are fixed; the seed's row for that is "Both bugs
fixed, targets not yet met" (0.70-0.85) at worst, and the finding says it needs its
preprocessing.  Its training losses (on the transformed points) do not fit its loss on
raw points, so the graph is exported with the measured transform in front of it.
Task 5: heads trained on transformed readings are measured on raw readings in the
kernel and outside alike; their rows are the seed's for the accuracy they reach.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import edit
from kernels import write_notebook

from whipnb.tasks import get_task

T1, T5, T6 = get_task("task1"), get_task("task5"), get_task("task6")
DATA = "X_train, y_train, X_val, y_val = make_data()\n"
STANDARDISE = (
    "mean, std = X_train.mean(0), X_train.std(0)\ndef prepare(x):\n    return (x - mean) / std\n"
)
MIN_MAX = (
    "low, high = X_train.min(0).values, X_train.max(0).values\n"
    "def prepare(x):\n    return (x - low) / (high - low)\n"
)


RESIZE = '    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)\n'


def prepared(source: str, transform: str, *fixes: tuple[str, str]) -> str:
    """``source`` trained and validated on ``prepare(X)``."""
    line = DATA + transform + "X_train, X_val = prepare(X_train), prepare(X_val)\n"
    return edit(source, *fixes, (DATA, line))


#: Task 1's two fixes, as the seed's solution makes them.
T1_FIXES = (
    ("lr=10.0", "lr=0.1"),
    (
        "        optimizer.step()\n        loss.backward()\n",
        "        loss.backward()\n        optimizer.step()\n",
    ),
)
SUBMISSIONS = {
    "task1_standardised": ("task1", prepared(T1.buggy_source, STANDARDISE, *T1_FIXES)),
    "task1_divided": (
        "task1",
        prepared(T1.buggy_source, "def prepare(x):\n    return x / 10\n", *T1_FIXES),
    ),
    # task 6: view/reshape of HWC images to (N, 3, 32, 32) scrambles the pixels; the
    # kernel measures the model as trained (scrambled), and so must the graph
    "task6_scrambled": (
        "task6",
        edit(
            T6.solution_source,
            (
                "    images = images.permute(0, 3, 1, 2)\n",
                "    images = images.reshape(-1, 3, 32, 32)\n",
            ),
            (RESIZE, "    return images\n"),
            ("7 * 7 * 32", "8 * 8 * 32"),
        ),
    ),
    "task1_buggy": ("task1", T1.buggy_source),
    "task5_standardised": ("task5", prepared(T5.solution_source, STANDARDISE)),
    "task5_min_max": ("task5", prepared(T5.solution_source, MIN_MAX)),
}


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("preprocessing")
    (folder / "class").mkdir()
    for name, (task, body) in SUBMISSIONS.items():
        write_notebook(folder / "class" / f"{name}.ipynb", f"%%whip_grade {task}\n{body}")
    out = folder / "records.json"
    command = [sys.executable, "-m", "whipnb", "grade", str(folder / "class"), "--diagnosis"]
    command += ["--json", str(out), "--db", str(folder / "grades.db"), "--jobs", "2", "-q"]
    env = {**os.environ, "WHIPNB_SECRET": "preprocessing tests"}
    finished = subprocess.run(command, capture_output=True, text=True, env=env, timeout=900)
    assert finished.returncode == 0, finished.stdout[-2000:] + finished.stderr[-2000:]
    return {Path(r["path"]).stem: r for r in json.loads(out.read_text())}


def _check(record: dict, check_id: str) -> dict:
    return next(c for c in record["checks"] if c["id"] == check_id)


@pytest.mark.parametrize("name", ["task1_standardised", "task1_divided"])
def test_task1_trained_on_transformed_points_is_both_fixed_headless(records, name):
    record = records[name]
    assert record["status"] == "graded" and record["tampering"] == [], record["message"]
    # the seed's "Both bugs fixed, targets not yet met" (0.70-0.85): the records name no
    # row, the message is that row's (task 1's grading.py), the score its range
    assert 0.70 <= record["score"] <= 0.85
    assert record["message"].startswith("Both bugs fixed, but the model was trained on points")
    assert "needs its preprocessing" in record["message"]
    assert not _check(record, "raw_inputs")["passed"]
    assert "integrity" not in {c["id"] for c in record["checks"]}
    # the graph measured outside is the model as trained: on a secret draw of raw points
    # (transformed in the graph) it does as well as the kernel's as-trained number
    as_trained = record["metrics"]["heldout_accuracy_as_trained"]
    assert as_trained > 0.90 and record["metrics"]["heldout_accuracy"] < 0.90
    assert record["metrics"]["outside_accuracy"] == pytest.approx(as_trained, abs=0.03)


@pytest.mark.parametrize(
    ("name", "message", "low", "high"),
    [
        # standardising readings that are already near zero mean and unit spread changes
        # little: the head still reaches the target (seed: "Bug properly fixed")
        ("task5_standardised", "Fixed: the optimizer holds exactly", 0.85, 1.0),
        # min-max scaling moves them to [0, 1]: on raw readings the target is missed
        # (seed: "Bug fixed, held-out accuracy target not met")
        (
            "task5_min_max",
            "The optimizer and requires_grad now agree, but the accuracy",
            0.70,
            0.85,
        ),
    ],
)
def test_task5_trained_on_transformed_readings_keeps_its_row_headless(
    records, name, message, low, high
):
    record = records[name]
    assert record["status"] == "graded" and record["tampering"] == [], record["message"]
    assert record["message"].startswith(message) and low <= record["score"] <= high
    assert "integrity" not in {c["id"] for c in record["checks"]}


def test_task6_scrambling_reshape_is_measured_as_trained_not_voided(records):
    """Seed: "3 bugs fixed" (0.65-0.80); the graph measured outside gives the kernel's
    own numbers, so nothing reads as tampering."""
    record = records["task6_scrambled"]
    assert record["status"] == "graded" and record["tampering"] == [], record["message"]
    assert 0.65 <= record["score"] <= 0.80
    assert record["message"] == "3 of 4 bugs fixed. Still to fix: channel order."
    assert "integrity" not in {c["id"] for c in record["checks"]}


def test_the_diagnosis_reaches_the_record_through_the_read_out(records):
    """``--diagnosis``: each check's cause and fix, from the kernel's result through the
    validated read-out and record to the JSON (the untouched script: 0.15, the seed's
    "No bugs fixed, code runs" at its bottom, as ``whipnb grade`` gives it)."""
    record = records["task1_buggy"]
    assert record["score"] == pytest.approx(0.15, abs=5e-4)
    assert record["message"] == "Both bugs are still there: the model does not learn."
    gradients = _check(record, "gradients")
    assert "step() runs before loss.backward()" in gradients["diagnosis"]
    assert "step() runs before" not in gradients["detail"]
