"""Task 4 findings are true statements about the run: a model that learns nothing
from its inputs is not "both bugs fixed, needs more training", and a BCELoss is
described by what it was really applied to.  Each submission is graded once; the
facts are measured in the same run by the test's own code."""

from __future__ import annotations

import functools

import pytest
from findings import grade_with_facts, numbers
from helpers import edit

from whipnb.tasks.task4 import TASK

SOLUTION = TASK.solution_source
MODEL = "model = nn.Linear(NUM_FEATURES, NUM_LABELS)\n"
BCE_LOGITS = "criterion = nn.BCEWithLogitsLoss()"
LOSS = "loss = criterion(model(X_train[batch]), Y_train[batch])"
BIAS_ONLY = (
    "class BiasOnly(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.bias = nn.Parameter(torch.zeros(NUM_LABELS))\n\n"
    "    def forward(self, x):\n"
    "        return self.bias.expand(len(x), -1)\n\n\n"
    "model = BiasOnly()\n"
)
#: Measured by the test: micro-F1 of the model read with sigmoid > 0.5 on a fresh
#: draw, the best input-blind rule on that draw, and how far the epoch loss fell.
FACTS = """
from whipnb.tasks.task4.data import make_samples
x, y = make_samples(4000, 99)
with torch.no_grad():
    p = (torch.sigmoid(model(x)) > 0.5).float()
tp = float((p * y).sum())
counts = sorted(y.sum(0).tolist(), reverse=True)
blind = max(2 * sum(counts[:k]) / (len(y) * k + float(y.sum())) for k in range(1, 9))
facts = {
    "f1": 2 * tp / float(p.sum() + y.sum()),
    "blind_f1": blind,
    "loss_ratio": losses[-1] / losses[0],
    "epoch_losses": losses,
}
"""

SUBMISSIONS = {
    "bias-only model, both bugs fixed": edit(SOLUTION, (MODEL, BIAS_ONLY)),
    "weights frozen at zero, only the bias trained": edit(
        SOLUTION,
        (
            MODEL,
            MODEL + "nn.init.zeros_(model.weight)\nmodel.weight.requires_grad_(False)\n",
        ),
        (
            "torch.optim.Adam(model.parameters(), lr=0.01)",
            "torch.optim.Adam([model.bias], lr=0.01)",
        ),
    ),
    "learning rate 1e-6": edit(SOLUTION, ("lr=0.01", "lr=1e-6")),
    "learning rate 1e-4": edit(SOLUTION, ("lr=0.01", "lr=0.0001")),
    "BCELoss on clamped logits": edit(
        SOLUTION,
        (BCE_LOGITS, "criterion = nn.BCELoss()"),
        (LOSS, "loss = criterion(model(X_train[batch]).clamp(1e-6, 1 - 1e-6), Y_train[batch])"),
    ),
    "BCELoss on sigmoid outputs": edit(
        SOLUTION,
        (BCE_LOGITS, "criterion = nn.BCELoss()"),
        (LOSS, "loss = criterion(torch.sigmoid(model(X_train[batch])), Y_train[batch])"),
    ),
    "BCELoss on raw logits kept in range by a tiny init": edit(
        SOLUTION,
        (MODEL, MODEL + "nn.init.zeros_(model.weight)\nnn.init.constant_(model.bias, 0.3)\n"),
        (BCE_LOGITS, "criterion = nn.BCELoss()"),
        ("lr=0.01", "lr=0.0005"),
    ),
}


@functools.cache
def graded(name: str):
    return grade_with_facts("task4", SUBMISSIONS[name], FACTS)


@pytest.mark.parametrize(
    "name",
    [
        "bias-only model, both bugs fixed",
        "weights frozen at zero, only the bias trained",
        "learning rate 1e-6",
    ],
)
def test_a_model_that_learns_nothing_from_its_inputs_is_gated_out_of_the_fixed_rows(name):
    run = graded(name)
    facts = run.facts
    # independent evidence that nothing was learned from the inputs
    assert facts["f1"] < facts["blind_f1"] + 0.05
    assert run.row_key == "not_learning"
    # added row between the seed's "Wrong loss still used" (0.10-0.30) and
    # "Loss fixed, eval partially correct" (0.50-0.75)
    assert 0.30 <= run.result.score <= 0.50
    assert "learns nothing from the inputs" in run.result.message
    assert "needs more" not in run.result.message
    f1, blind = numbers(run.result.message.split("micro-F1 ")[1])[:2]
    assert f1 == pytest.approx(facts["f1"], abs=0.03)
    assert blind == pytest.approx(facts["blind_f1"], abs=0.03)


def test_a_slow_learner_is_still_fixed_short_and_told_its_loss_was_still_falling():
    run = graded("learning rate 1e-4")
    assert run.facts["f1"] > run.facts["blind_f1"] + 0.05  # it learned something
    assert run.row_key == "fixed_short" and 0.75 <= run.result.score <= 0.85
    assert "the loss was still falling when training stopped" in run.result.message


@pytest.mark.parametrize(
    ("name", "applied_to"),
    [
        ("BCELoss on clamped logits", "on clamped outputs, not sigmoid probabilities (BCELoss)"),
        ("BCELoss on sigmoid outputs", "on sigmoid probabilities (BCELoss)"),
        (
            "BCELoss on raw logits kept in range by a tiny init",
            "on the model's outputs, with no sigmoid in the graph (BCELoss)",
        ),
    ],
)
def test_bce_loss_is_described_by_what_it_was_applied_to(name, applied_to):
    run = graded(name)
    loss = run.check("loss")
    assert loss.passed
    assert loss.detail.endswith(applied_to)
    shared, total = numbers(loss.detail)[:2]
    assert shared == total  # every loss backpropagated was that BCELoss
    if not run.result.checks[0].passed:  # raw logits left [0, 1]: BCELoss raised
        assert "between 0 and 1" in run.result.checks[0].detail
    else:
        assert total == 640  # 20 epochs x 32 batches of 64


def test_a_clamped_bce_that_misses_the_target_claims_no_cause_it_cannot_show():
    run = graded("BCELoss on clamped logits")
    assert run.facts["f1"] < 0.75
    assert run.row_key == "fixed_short" and 0.75 <= run.result.score <= 0.85
    assert "needs more" not in run.result.message


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_every_check_states_what_the_run_measured(name):
    """The F1 finding carries the held-out micro-F1 (checked against the test's own
    draw), the improvement finding the recorded step losses, the predict finding the
    rule's agreement with sigmoid > 0.5."""
    run = graded(name)
    if not run.check("runs").passed:
        return  # the crashing variant: nothing trained to measure
    facts = run.facts
    f1 = run.check("f1")
    measured = numbers(f1.detail.split("micro-F1 ", 1)[1])[0]
    assert measured == pytest.approx(facts["f1"], abs=0.03)
    assert f1.passed == (measured > 0.75)
    start, end = numbers(run.check("improves").detail)[:2]
    assert end == pytest.approx(facts["epoch_losses"][-1], rel=0.15)
    assert run.check("improves").passed == (end < 0.8 * start)
    predict = run.check("predict")
    assert predict.passed  # every variant keeps the solution's sigmoid > 0.5 rule
    assert "agrees with sigmoid > 0.5 on 100.0%" in predict.detail
