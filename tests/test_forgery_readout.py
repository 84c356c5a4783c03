"""The grader's read-out validation and verdict without a kernel: hostile bundles and
records become a reason (never an exception), and claims the measured model does not
support are voided.  Fast: no kernel, no measuring process."""

from __future__ import annotations

import json
import os

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
