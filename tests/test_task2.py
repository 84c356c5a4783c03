"""Task 2: the NaN really happens, partial fixes still show it, the saturation
drill tells protected losses from unprotected ones without disturbing training,
and the findings explain why.

Rubric rows and valid alternative fixes are covered by the calibration cases
(``whipnb/tasks/task2/cases.py``, graded in ``test_calibration.py``)."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import check, edit, grade_quietly, run_quietly

from whipnb.core.runner import Run
from whipnb.tasks import get_task
from whipnb.tasks.task2.grading import SATURATION_LOGIT, evaluate
from whipnb.tasks.task2.saturation import DrillReport, SaturationDrill

STEPS_PER_EPOCH = 32  # 2,000 training points in batches of 64
PRED = "    pred = torch.sigmoid(logits)\n"


@pytest.fixture(scope="module")
def task2():
    return get_task("task2")


def drilled_run(source: str) -> tuple[Run, DrillReport]:
    drill = SaturationDrill()
    run = run_quietly(source, {"saturation": drill})
    return run, drill.report


@pytest.fixture(scope="module")
def buggy(task2):
    return drilled_run(task2.buggy_source)


def first_nan(run: Run) -> int | None:
    return run.evidence.first_nonfinite_loss


# --- the symptom -------------------------------------------------------------------------


def test_buggy_loss_falls_for_epochs_then_turns_nan_for_good(buggy):
    run, _ = buggy
    losses, first = run.evidence.losses, first_nan(run)
    assert first is not None and 5 * STEPS_PER_EPOCH <= first <= 20 * STEPS_PER_EPOCH
    early = sum(losses[:STEPS_PER_EPOCH]) / STEPS_PER_EPOCH
    before_nan = sum(losses[first - STEPS_PER_EPOCH : first]) / STEPS_PER_EPOCH
    assert early > 0.55 and before_nan < early - 0.2  # it was learning well
    assert all(math.isnan(loss) for loss in losses[first:])  # and never recovers
    assert any(math.isnan(loss) for loss in run.printed["LOSSES"])  # visible in the printout


def test_the_nan_comes_from_a_saturated_sigmoid(buggy):
    run, report = buggy
    logit = report.records[first_nan(run)].logit_max
    assert logit >= SATURATION_LOGIT
    assert float(torch.sigmoid(torch.tensor(logit))) == 1.0
    assert max(record.logit_max for record in report.records[: first_nan(run)]) < 17.5


def test_the_nan_wrecks_the_model(buggy):
    run, _ = buggy
    model = run.namespace["model"]
    assert all(torch.isnan(param).all() for param in model.parameters())
    assert run.printed["VAL_ACC"][-1] < 0.55


def test_one_sided_clamp_and_tiny_epsilon_nan_at_the_same_step(task2, buggy):
    for pred in (
        "    pred = torch.clamp(torch.sigmoid(logits), min=1e-7)\n",
        "    pred = torch.clamp(torch.sigmoid(logits), 1e-15, 1 - 1e-15)\n",
    ):
        run, report = drilled_run(edit(task2.buggy_source, (PRED, pred)))
        assert first_nan(run) == first_nan(buggy[0])
        assert report.zero_logs == ["log(1 - pred)"]


def test_protecting_only_log_pred_leaves_the_nan(task2, buggy):
    run, report = drilled_run(
        edit(task2.buggy_source, ("torch.log(pred)", "torch.log(pred + 1e-7)")),
    )
    assert first_nan(run) == first_nan(buggy[0])
    assert report.zero_logs == ["log(1 - pred)"]


def test_protecting_only_log_one_minus_pred_hides_the_other_log(task2):
    run, report = drilled_run(
        edit(task2.buggy_source, ("torch.log(1 - pred)", "torch.log(1 - pred + 1e-7)"))
    )
    assert first_nan(run) is None  # no logit falls below -89 on this data...
    assert report.verdict == "failed" and report.zero_logs == ["log(pred)"]  # ...but it could


def test_a_smaller_learning_rate_only_postpones_the_nan(task2, buggy):
    run, _ = drilled_run(edit(task2.buggy_source, ("lr=0.01", "lr=0.003")))
    assert (
        first_nan(run) is not None and first_nan(run) > first_nan(buggy[0]) + 10 * STEPS_PER_EPOCH
    )


# --- the saturation drill ----------------------------------------------------------------

LOOP = """
import torch
import torch.nn as nn
import torch.nn.functional as F

g = torch.Generator().manual_seed(0)
x, y = torch.randn(64, 2, generator=g), torch.randint(0, 2, (64,), generator=g).float()
model = {model}
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
total = torch.zeros(())
for step in range(10):
    optimizer.zero_grad()
    logits = model(x).squeeze(1)
    pred = torch.sigmoid(logits)
    loss = {loss}
    loss.backward()
    optimizer.step()
    total += loss.detach()
"""
LINEAR = "nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1))"
HAND_WRITTEN = "-(y * torch.log({p}) + (1 - y) * torch.log(1 - {p})).mean()"


@pytest.mark.parametrize(
    ("loss", "verdict", "zero_logs"),
    [
        (HAND_WRITTEN.format(p="pred"), "failed", ["log(pred)", "log(1 - pred)"]),
        (HAND_WRITTEN.format(p="pred.clamp(1e-7, 1 - 1e-7)"), "held", []),
        (HAND_WRITTEN.format(p="pred.clamp(min=1e-7)"), "failed", ["log(1 - pred)"]),
        ("F.binary_cross_entropy(pred, y)", "held", []),
        ("F.binary_cross_entropy_with_logits(logits, y)", "held", []),
        ("nn.BCEWithLogitsLoss()(logits, y)", "held", []),
        ("-(y * F.logsigmoid(logits) + (1 - y) * F.logsigmoid(-logits)).mean()", "held", []),
        (
            "-torch.where(y == 1, torch.log(pred), torch.log(1 - pred)).mean()",
            "failed",
            ["log(pred)", "log(1 - pred)"],
        ),
        (
            "-(torch.special.xlogy(y, pred) + torch.special.xlogy(1 - y, 1 - pred)).mean()",
            "failed",
            ["log(pred)", "log(1 - pred)"],
        ),
    ],
)
def test_drill_tells_protected_losses_from_unprotected_ones(loss, verdict, zero_logs):
    run, report = drilled_run(LOOP.format(model=LINEAR, loss=loss))
    assert run.error is None
    assert report.verdict == verdict
    assert sorted(report.zero_logs) == sorted(zero_logs)
    assert len(report.records) == 10 and len(report.tested) == 2  # one step in five


def test_drill_follows_a_model_that_ends_in_sigmoid():
    model = "nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Linear(8, 1), nn.Sigmoid())"
    safe = LOOP.format(model=model, loss="nn.BCELoss()(model(x).squeeze(1), y)")
    unsafe = LOOP.format(model=model, loss=HAND_WRITTEN.format(p="model(x).squeeze(1)"))
    assert drilled_run(safe)[1].verdict == "held"
    assert drilled_run(unsafe)[1].verdict == "failed"


def test_drill_leaves_training_and_the_learners_tensors_untouched(task2):
    short = edit(task2.solution_source, ("range(30)", "range(3)"))
    plain = run_quietly(short)
    drilled, report = drilled_run(short)
    assert report.verdict == "held"
    assert drilled.evidence.losses == plain.evidence.losses
    for mine, theirs in zip(
        drilled.namespace["model"].parameters(), plain.namespace["model"].parameters(), strict=True
    ):
        assert torch.equal(mine, theirs)
    loop, _ = drilled_run(LOOP.format(model=LINEAR, loss=HAND_WRITTEN.format(p="pred")))
    total = float(loop.namespace["total"])  # summed in place while the drill was armed
    assert total == pytest.approx(sum(loop.evidence.losses), rel=1e-6)
    assert torch.autograd.backward.__name__ == "backward"  # and everything was unwound


def test_drill_records_clamp_bounds_and_lost_epsilons():
    loss = HAND_WRITTEN.format(p="pred.clamp(1e-15, 1 - 1e-15)")
    _, report = drilled_run(LOOP.format(model=LINEAR, loss=loss))
    assert report.clamp_bounds == [(1e-15, 1 - 1e-15)]
    assert report.lost_epsilons == [1 - 1e-15]


# --- findings -------------------------------------------------------------------------------


def test_findings_explain_a_one_sided_clamp(task2):
    result = grade_quietly(
        "task2",
        edit(
            task2.buggy_source, (PRED, "    pred = torch.clamp(torch.sigmoid(logits), min=1e-7)\n")
        ),
    )
    finding = check(result, "finite_loss")
    step, steps = result.metrics["first_nan_step"], result.metrics["backward_passes"]
    assert f"became nan at step {step} of {steps}" in finding.detail
    assert "log(1 - pred)" not in finding.detail, "the symptom first, the cause from the hints"
    assert "exactly 1.0" in finding.diagnosis
    assert "Your clamp(pred, min=1e-07) only keeps pred above 0" in finding.diagnosis
    assert "clamp both sides" in finding.diagnosis


def test_findings_explain_a_lost_epsilon(task2):
    tiny = "    pred = torch.clamp(torch.sigmoid(logits), 1e-15, 1 - 1e-15)\n"
    result = grade_quietly("task2", edit(task2.buggy_source, (PRED, tiny)))
    assert (
        "upper bound 1 - 1e-15 is exactly 1.0 in float32" in check(result, "saturation").diagnosis
    )


def test_findings_call_a_dodged_nan_not_fixed(task2):
    result = grade_quietly("task2", edit(task2.buggy_source, ("lr=0.01", "lr=0.001")))
    assert check(result, "finite_loss").passed
    assert not check(result, "saturation").passed
    assert "stopped before any logit passed 16.6" in check(result, "saturation").detail
    assert "not fixed, only not reached" in result.message


def test_findings_call_skipped_nan_batches_hidden_not_fixed(task2):
    skip = (
        "        loss.backward()\n",
        "        if torch.isnan(loss):\n            continue\n        loss.backward()\n",
    )
    result = grade_quietly("task2", edit(task2.buggy_source, skip))
    assert result.metrics["nan_steps"] == 0
    detail = check(result, "saturation").detail
    assert "training batches never reached backward()" in detail
    assert "skipped, not fixed" in detail


def test_better_fix_never_scores_lower_than_worse_one(task2):
    sources = [
        "raise SystemExit(1)",
        task2.buggy_source,
        edit(task2.buggy_source, ("lr=0.01", "lr=0.001")),
        edit(task2.solution_source, ("lr=0.01", "lr=0.001")),
        task2.solution_source,
    ]
    scores = [grade_quietly("task2", source).score for source in sources]
    assert scores == sorted(scores) and len(set(scores)) == len(scores)


def test_same_submission_scores_identically(task2):
    first = grade_quietly("task2", task2.buggy_source)
    second = grade_quietly("task2", task2.buggy_source)
    assert first.score == second.score
    assert first.metrics == second.metrics


# --- held-out evaluation --------------------------------------------------------------------


class Fixed(torch.nn.Module):
    """A model that returns given outputs, to test how they are read."""

    def __init__(self, outputs: torch.Tensor) -> None:
        super().__init__()
        self.outputs = outputs

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        return self.outputs


def test_evaluation_reads_logits_probabilities_and_class_scores():
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    inputs = torch.zeros(4, 2)
    assert (
        evaluate(Fixed(torch.tensor([[3.0], [-2.0], [0.5], [-0.1]])), inputs, labels).accuracy == 1
    )
    assert evaluate(Fixed(torch.tensor([0.9, 0.2, 0.7, 0.4])), inputs, labels).accuracy == 1
    scores = torch.tensor([[0.0, 2.0], [1.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    assert evaluate(Fixed(scores), inputs, labels).accuracy == 1
    broken = evaluate(Fixed(torch.full((4, 1), math.nan)), inputs, labels)
    assert broken.accuracy == 0.5 and broken.nan_outputs == 4
