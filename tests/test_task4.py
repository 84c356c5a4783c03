"""Task 4: each bug really happens, each half-fix shows the other bug, and the
findings name the problem.

Rubric rows, common mistakes and valid alternative fixes are covered by the
calibration cases (``whipnb/tasks/task4/cases.py``, graded in
``test_calibration.py``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from helpers import check, edit, grade_quietly, run_quietly

from whipnb.tasks import get_task
from whipnb.tasks.task4.data import NUM_LABELS, make_data, make_samples
from whipnb.tasks.task4.probe import BINARY, OTHER, SOFTMAX, graph_nodes, loss_kind

CE = "criterion = nn.CrossEntropyLoss()"
BCE_LOGITS = "criterion = nn.BCEWithLogitsLoss()"
ARGMAX = "    return F.one_hot(scores.argmax(dim=1), NUM_LABELS).float()"
THRESHOLD = "    return (torch.sigmoid(scores) > 0.5).float()"
TRUE_TAGS_PER_SAMPLE = float(make_data()[3].sum(1).mean())


@pytest.fixture(scope="module")
def task4():
    return get_task("task4")


def predicted_tags_per_sample(run) -> float:
    return float(run.namespace["val_pred"].sum(1).mean())


# --- the data is multi-label for real ------------------------------------------------


def test_samples_often_carry_several_tags_or_none():
    _, tags = make_samples(4000, 1)
    counts = tags.sum(1)
    assert tags.dtype == torch.float32 and tags.shape == (4000, NUM_LABELS)
    assert 0.52 < float((counts >= 2).float().mean()) < 0.60  # about 56%
    assert 0.25 < float((counts == 0).float().mean()) < 0.33  # about 29%
    assert int(counts.max()) >= 5


# --- symptoms -------------------------------------------------------------------------


def test_buggy_script_runs_and_predicts_exactly_one_tag_per_sample(task4):
    run = run_quietly(task4.buggy_source, task="task4")
    assert run.error is None  # CrossEntropyLoss accepts float multi-hot targets (torch >= 1.10)
    assert set(run.probes["loss_kind"].kinds) == {SOFTMAX}
    assert (run.namespace["val_pred"].sum(1) == 1).all()
    assert run.printed["VAL_F1"][-1] < 0.6
    assert run.printed["LOSSES"][-1] > 1.5  # a softmax loss cannot fit several tags


def test_fixing_only_the_evaluation_shows_the_loss_bug(task4):
    run = run_quietly(edit(task4.buggy_source, (ARGMAX, THRESHOLD)), task="task4")
    assert set(run.probes["loss_kind"].kinds) == {SOFTMAX}
    assert predicted_tags_per_sample(run) > 1.5 * TRUE_TAGS_PER_SAMPLE
    assert run.printed["VAL_F1"][-1] < 0.7
    assert run.printed["LOSSES"][-1] > 1.5


def test_fixing_only_the_loss_shows_the_evaluation_bug(task4):
    run = run_quietly(edit(task4.buggy_source, (CE, BCE_LOGITS)), task="task4")
    assert set(run.probes["loss_kind"].kinds) == {BINARY}
    assert run.printed["LOSSES"][-1] < 0.15
    assert (run.namespace["val_pred"].sum(1) == 1).all()
    assert run.printed["VAL_F1"][-1] < 0.6
    inputs, tags = make_samples(4000, 1)
    with torch.no_grad():
        right_rule = (run.namespace["model"](inputs) > 0).float()
    assert 2 * float((right_rule * tags).sum()) / float(right_rule.sum() + tags.sum()) > 0.9


def test_softmax_probabilities_cannot_pass_one_half_for_two_tags(task4):
    run = run_quietly(task4.solution_source, task="task4")
    inputs, _ = make_samples(4000, 1)
    with torch.no_grad():
        probabilities = run.namespace["model"](inputs).softmax(dim=1)
    assert int((probabilities > 0.5).sum(1).max()) <= 1


def test_solution_predicts_about_as_many_tags_as_there_are(task4):
    run = run_quietly(task4.solution_source, task="task4")
    assert run.printed["VAL_F1"][-1] > 0.9
    assert abs(predicted_tags_per_sample(run) - TRUE_TAGS_PER_SAMPLE) < 0.15


def test_bce_loss_on_raw_logits_raises(task4):
    run = run_quietly(
        edit(task4.solution_source, (BCE_LOGITS, "criterion = nn.BCELoss()")), task="task4"
    )
    assert isinstance(run.error, RuntimeError)
    assert "between 0 and 1" in str(run.error)


# --- the loss probe ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("loss", "kind"),
    [
        (lambda z, y: nn.CrossEntropyLoss()(z, y), SOFTMAX),
        (lambda z, y: F.nll_loss(F.log_softmax(z, dim=1), y.argmax(dim=1)), SOFTMAX),
        (lambda z, y: nn.BCELoss()(z.softmax(dim=1), y), SOFTMAX),
        (lambda z, y: nn.BCEWithLogitsLoss()(z, y), BINARY),
        (lambda z, y: nn.BCELoss()(torch.sigmoid(z), y), BINARY),
        (lambda z, y: nn.MultiLabelSoftMarginLoss()(z, y), BINARY),
        (lambda z, y: -(y * torch.log(torch.sigmoid(z))).mean(), BINARY),
        (lambda z, y: nn.MSELoss()(z, y), OTHER),
    ],
    ids=["ce", "nll", "bce-softmax", "bce-logits", "bce", "soft-margin", "by-hand", "mse"],
)
def test_loss_kind_reads_the_graph(loss, kind):
    logits = torch.randn(4, NUM_LABELS, requires_grad=True)
    tags = (torch.rand(4, NUM_LABELS) < 0.3).float()
    assert loss_kind(graph_nodes(loss(logits, tags))) == kind


# --- findings -----------------------------------------------------------------------------


def test_buggy_findings_name_the_softmax_and_the_single_tag(task4):
    result = grade_quietly("task4", task4.buggy_source)
    assert 0.10 <= result.score <= 0.30
    assert "softmax" in check(result, "loss").detail
    assert "never more than one tag per sample" in check(result, "predict").detail
    assert result.metrics["predicted_tags_per_sample"] == 1.0
    assert result.metrics["heldout_f1"] < 0.75


def test_evaluation_fix_alone_is_still_the_wrong_loss(task4):
    result = grade_quietly("task4", edit(task4.buggy_source, (ARGMAX, THRESHOLD)))
    assert 0.10 <= result.score <= 0.30
    assert check(result, "predict").passed
    assert "tags per sample" in check(result, "loss").detail
    assert result.metrics["model_tags_per_sample"] > 1.5 * result.metrics["true_tags_per_sample"]


def test_crash_findings_explain_the_common_mistakes(task4):
    raw = grade_quietly(
        "task4", edit(task4.solution_source, (BCE_LOGITS, "criterion = nn.BCELoss()"))
    )
    assert raw.score <= 0.10
    assert "BCEWithLogitsLoss" in check(raw, "loss").detail
    long_targets = edit(task4.solution_source, ("Y_train[batch])", "Y_train[batch].long())"))
    integers = grade_quietly("task4", long_targets)
    assert integers.score <= 0.10
    assert "must be float" in check(integers, "loss").detail


def test_reference_solution_passes_every_check(task4):
    result = grade_quietly("task4", task4.solution_source)
    assert 0.85 <= result.score <= 1.0
    assert result.passed_all, [c for c in result.checks if not c.passed]
    assert result.metrics["heldout_f1"] > 0.9
    assert result.metrics["predict_agreement"] == 1.0


def test_better_fix_never_scores_lower_than_worse_one(task4):
    scores = [
        grade_quietly("task4", source).score
        for source in (
            "raise SystemExit(1)",
            task4.buggy_source,
            edit(task4.buggy_source, (ARGMAX, THRESHOLD)),
            edit(task4.buggy_source, (CE, BCE_LOGITS)),
            task4.solution_source,
        )
    ]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_printed_numbers_alone_earn_nothing():
    result = grade_quietly("task4", 'print("LOSSES:[0.5, 0.3, 0.1]")\nprint("VAL_F1: 0.95")\n')
    assert result.score <= 0.10 + 1e-9
    assert not check(result, "f1").passed


def test_same_submission_scores_identically(task4):
    first = grade_quietly("task4", task4.solution_source)
    second = grade_quietly("task4", task4.solution_source)
    assert first.score == second.score and first.metrics == second.metrics
