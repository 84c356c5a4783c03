"""The grader's read-out validation and verdict without a kernel: hostile bundles and
records become a reason (never an exception), and claims the measured model does not
support are voided.  Fast: no kernel, no measuring process."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace

import pytest

from whipnb.headless.measure import Measured
from whipnb.headless.readout import ExportRecord, ReadoutError, parse_bundle, read_record
from whipnb.headless.verdict import decide
from whipnb.notebook.export import RECORD_FILE, RECORD_FORMAT, plain_bundle, plain_json
from whipnb.tasks import get_task

TASK = get_task("task1")
FIXED = TASK.row("fixed").condition
NONE_FIXED = TASK.row("none_fixed").condition


def bundle(**changes) -> dict:
    """A well-formed task-1 bundle: the untouched script's row at its minimum."""
    base = {
        "task": "task1",
        "score": 0.15,
        "band": "Minimal",
        "status": "graded",
        "checks": [{"id": "runs", "title": "runs", "passed": True, "detail": "ok"}],
        "metrics": {"heldout_accuracy": 0.164, "heldout_loss": 6.63},
        "message": "Both bugs are still there.",
        "duration_s": 1.0,
        "version": "1",
        "rubric_row": NONE_FIXED,
        "targets": {},
        "losses": [6.7, 6.6, "nan", None],
        "tampering": [],
    }
    return {**base, **changes}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"score": 50.0}, "the score 50.0 is outside [0, 1]"),
        ({"score": "1.0"}, "the score '1.0' is not a number"),
        ({"score": float("nan")}, "is not a number"),
        ({"score": True}, "is not a number"),
        ({"task": "task2"}, "the result names task 'task2'"),
        ({"rubric_row": "Everything perfect"}, "is not one of the task's"),
        ({"score": 0.9}, "outside its row"),
        ({"status": "timeout"}, "is not one a kernel reports"),
        ({"message": "x" * 30_000}, "characters long"),
        ({"checks": [{"id": "a", "title": "b", "passed": "yes", "detail": ""}]}, "'passed'"),
        ({"metrics": {"heldout_accuracy": [1.0]}}, "is not a number, flag or short text"),
        ({"losses": ["lots"]}, "a loss is not a number"),
    ],
)
def test_a_hostile_bundle_is_a_reason_not_an_exception(changes, reason):
    with pytest.raises(ReadoutError, match=None) as raised:
        parse_bundle(bundle(**changes), TASK)
    assert reason in str(raised.value)


def test_a_genuine_bundle_parses_with_jupyter_non_finite_losses():
    result = parse_bundle(bundle(), TASK)
    assert result.score == 0.15 and result.rubric_row == NONE_FIXED
    assert result.losses[:2] == [6.7, 6.6] and all(x != x for x in result.losses[2:])


def test_main_s_bundle_null_metrics_and_diagnosis_read_out_as_the_record_has_them():
    """The read-out cell shows ``Result.to_bundle`` (NaN as null, named in
    ``nonfinite_metrics``; each check's diagnosis); the record is written by hand.
    Both must parse to the same result, or an honest run with a NaN loss is void."""
    kernel = parse_bundle(bundle(), TASK)
    kernel.metrics["heldout_loss"] = float("nan")
    kernel.metrics["learning_rate"] = float("inf")
    kernel.checks[0] = replace(kernel.checks[0], diagnosis="call zero_grad() first")
    shown = kernel.to_bundle()
    assert shown["metrics"]["heldout_loss"] is None and shown["nonfinite_metrics"] == {
        "heldout_loss": "nan",
        "learning_rate": "inf",
    }
    read_out = parse_bundle(shown, TASK)
    recorded = parse_bundle(json.loads(plain_json(plain_bundle(kernel))), TASK)
    assert read_out.checks[0].diagnosis == "call zero_grad() first" == recorded.checks[0].diagnosis
    assert (
        math.isnan(read_out.metrics["heldout_loss"]) and read_out.metrics["learning_rate"] > 1e308
    )
    claim = ExportRecord(recorded, 0, (4000, 2), "")
    result = decide(TASK, read_out, claim, UNTRAINED)
    assert result.tampering == [] and result.checks[0].diagnosis == "call zero_grad() first"


@pytest.mark.parametrize(
    "nonfinite",
    [{"heldout_loss": "lots"}, {"heldout_accuracy": "nan"}, ["heldout_loss"], {"absent": "inf"}],
)
def test_nonfinite_metrics_only_restore_nulls(nonfinite):
    with pytest.raises(ReadoutError, match="non-finite metrics|not a null to restore"):
        parse_bundle(
            bundle(
                metrics={"heldout_accuracy": 0.2, "heldout_loss": None}, nonfinite_metrics=nonfinite
            ),
            TASK,
        )


def _write_record(folder, text: str) -> None:
    (folder / RECORD_FILE).write_text(text, encoding="utf-8")


def test_records_that_are_links_deep_or_foreign_are_refused(tmp_path):
    record = {
        "format": RECORD_FORMAT,
        "task": "task1",
        "bundle": bundle(),
        "threads": 0,
        "input_shape": [4000, 2],
        "export_error": "",
    }
    _write_record(tmp_path, json.dumps(record))
    assert read_record(tmp_path, TASK).input_shape == (4000, 2)
    _write_record(tmp_path, "[" * 100_000 + "]" * 100_000)
    with pytest.raises(ReadoutError, match="not valid JSON|not a JSON object"):
        read_record(tmp_path, TASK)
    _write_record(tmp_path, json.dumps({**record, "task": "task2"}))
    with pytest.raises(ReadoutError, match="not for task1"):
        read_record(tmp_path, TASK)
    (tmp_path / RECORD_FILE).unlink()
    os.symlink("/etc/passwd", tmp_path / RECORD_FILE)
    with pytest.raises(ReadoutError, match="not a regular file"):
        read_record(tmp_path, TASK)


def test_the_record_is_serialised_without_json_and_reads_back():
    result = parse_bundle(bundle(), TASK)
    again = parse_bundle(json.loads(plain_json(plain_bundle(result))), TASK)
    assert again.score == result.score and again.metrics == result.metrics


def _claim(**changes) -> ExportRecord:
    return ExportRecord(parse_bundle(bundle(**changes), TASK), 0, (4000, 2), "")


#: The untouched script's model, measured outside: never trained, below chance.
UNTRAINED = Measured({"accuracy": 0.164, "loss": 6.63}, {"accuracy": 0.158, "loss": 6.69}, 4000)


def test_an_honest_claim_is_recorded_as_is_with_the_outside_metrics():
    result = decide(TASK, parse_bundle(bundle(), TASK), _claim(), UNTRAINED)
    assert result.score == 0.15 and result.tampering == []
    assert result.metrics["outside_accuracy"] == 0.158


def test_a_top_row_claim_the_measured_model_misses_is_void():
    forged = bundle(score=1.0, rubric_row=FIXED)
    result = decide(
        TASK, parse_bundle(forged, TASK), _claim(score=1.0, rubric_row=FIXED), UNTRAINED
    )
    assert result.score == 0.0
    assert "which the model measured outside the kernel does not reach" in result.message


def test_metrics_other_than_the_graphs_are_void():
    doctored = {"heldout_accuracy": 0.95, "heldout_loss": 6.63}
    claim = _claim(metrics=doctored)
    result = decide(TASK, claim.result, claim, UNTRAINED)
    assert result.score == 0.0
    assert (
        "reports heldout_accuracy 0.9500, but the exported model measures 0.1640" in result.message
    )


TASK5 = get_task("task5")


def _task5_claim(losses: list[float]) -> ExportRecord:
    """A task-5 "Bug fixed, held-out accuracy target not met" claim at its row's bottom."""
    row = TASK5.row("fixed_short")
    claim = bundle(
        task="task5",
        score=row.score(0.0),
        rubric_row=row.condition,
        metrics={"heldout_accuracy": 0.80, "heldout_loss": 3.0},
        losses=losses,
    )
    return ExportRecord(parse_bundle(claim, TASK5), 0, (4000, 32), "")


def test_task5_losses_that_miss_a_trained_head_are_a_finding_not_a_void():
    """A head measured at 0.80 on both sets (no untrained head reaches 0.70) was trained:
    training losses near 0.05 against a raw held-out loss of 3.0 come from readings
    transformed outside the model; the row stands, the finding says so."""
    claim = _task5_claim([1.0, 0.5] + [0.05] * 20)
    trained = Measured({"accuracy": 0.80, "loss": 3.0}, {"accuracy": 0.79, "loss": 3.1}, 4000)
    result = decide(TASK5, claim.result, claim, trained)
    assert result.rubric_key == "fixed_short" and result.score == TASK5.row("fixed_short").low
    assert result.tampering == []
    raw_inputs = next(c for c in result.checks if c.id == "raw_inputs")
    assert not raw_inputs.passed and "only fits the inputs it was trained on" in raw_inputs.detail


def test_task5_losses_that_miss_an_untrained_head_still_void():
    """The same losses beside a head no better than a random one (0.40): another run's."""
    claim = _task5_claim([1.0, 0.5] + [0.05] * 20)
    untrained = Measured({"accuracy": 0.40, "loss": 3.0}, {"accuracy": 0.41, "loss": 3.1}, 4000)
    result = decide(TASK5, claim.result, claim, untrained)
    assert result.rubric_key == "crash" and result.score == 0.0
    assert "those losses are not this model's" in result.message
