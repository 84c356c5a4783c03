"""Task 1 findings are true statements about the run: why steps found no gradient,
no learning rate claimed when no optimizer exists, a model trained on inputs
transformed outside it measured as it was trained, and a perfect loss of 0.0 taken
as a value.  Each submission is graded once; facts are measured in the same run."""

from __future__ import annotations

import functools

import pytest
from findings import grade_with_facts, numbers
from helpers import edit

from whipnb.tasks.common import Evaluation, loss_trend
from whipnb.tasks.task1 import TASK
from whipnb.tasks.task1.grading import trains_stably

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
STEP_FIRST = "        optimizer.step()\n        loss.backward()\n"
DATA = "X_train, y_train, X_val, y_val = make_data()\n"
ZERO_BETWEEN = "        loss.backward()\n        optimizer.zero_grad()\n        optimizer.step()\n"
FIXED_ORDER = "        loss.backward()\n        optimizer.step()\n"
#: The model measured by the test itself, on the grader's held-out distribution: raw
#: points, and points transformed by the script's own ``prepare`` (if it has one).
FACTS = """
from whipnb.tasks.task1.data import make_samples
points, labels = make_samples(4000, 99)
with torch.no_grad():
    raw = (model(points).argmax(1) == labels).float().mean().item()
    prepared = (
        (model(prepare(points)).argmax(1) == labels).float().mean().item()
        if "prepare" in globals() else None
    )
facts = {
    "raw_accuracy": raw,
    "prepared_accuracy": prepared,
    "grad_after_backward": [p.grad is not None and bool(p.grad.abs().sum() > 0)
                            for p in model.parameters()],
    "epoch_losses": losses,
    "val_acc": val_acc,
}
"""


def prepared(transform: str) -> str:
    """The fixed loop (lr=0.1) trained and validated on ``prepare(X)``."""
    return edit(
        BUGGY,
        ("lr=10.0", "lr=0.1"),
        (STEP_FIRST, FIXED_ORDER),
        (DATA, DATA + transform + "X_train, X_val = prepare(X_train), prepare(X_val)\n"),
    )


SUBMISSIONS = {
    "zero_grad between backward and step, lr=0.1": edit(
        BUGGY, ("lr=10.0", "lr=0.1"), (STEP_FIRST, ZERO_BETWEEN)
    ),
    "zero_grad between backward and step, lr=10": edit(BUGGY, (STEP_FIRST, ZERO_BETWEEN)),
    "the buggy script": BUGGY,
    "standardised outside the model": prepared(
        "mean, std = X_train.mean(0), X_train.std(0)\n"
        "def prepare(x):\n    return (x - mean) / std\n"
    ),
    "min-max scaled outside the model": prepared(
        "low, high = X_train.min(0).values, X_train.max(0).values\n"
        "def prepare(x):\n    return (x - low) / (high - low)\n"
    ),
    "divided by 10 outside the model": prepared("def prepare(x):\n    return x / 10\n"),
    "manual SGD updates, no optimizer": edit(
        BUGGY,
        ("optimizer = torch.optim.SGD(model.parameters(), lr=10.0)\n", ""),
        ("        optimizer.zero_grad()\n", "        model.zero_grad()\n"),
        (
            STEP_FIRST,
            "        loss.backward()\n        with torch.no_grad():\n"
            "            for p in model.parameters():\n                p -= 0.1 * p.grad\n",
        ),
    ),
    "no optimizer and no update": edit(
        BUGGY,
        ("optimizer = torch.optim.SGD(model.parameters(), lr=10.0)\n", ""),
        ("        optimizer.zero_grad()\n", ""),
        ("        optimizer.step()\n", ""),
    ),
}


@functools.cache
def graded(name: str):
    return grade_with_facts("task1", SUBMISSIONS[name], FACTS)


@pytest.mark.parametrize(
    ("name", "row", "low", "high"),
    [
        ("zero_grad between backward and step, lr=0.1", "one_fixed", 0.40, 0.70),
        ("zero_grad between backward and step, lr=10", "none_fixed", 0.15, 0.25),
    ],
)
def test_a_gradient_cleared_before_step_is_not_blamed_on_the_order_of_backward(
    name, row, low, high
):
    run = graded(name)
    assert run.row_key == row and low <= run.result.score <= high
    gradients = run.check("gradients")
    assert not gradients.passed
    assert "step() runs before loss.backward()" not in gradients.diagnosis
    assert "cleared (zero_grad) before step()" in gradients.diagnosis
    # 20 epochs of 2,000 points in batches of 32: 63 steps each, none with a gradient
    assert gradients.detail.startswith("1260 of 1260 steps found no gradient")


def test_step_before_backward_is_named_when_it_is_the_order():
    run = graded("the buggy script")
    assert run.row_key == "none_fixed" and 0.15 <= run.result.score <= 0.25
    gradients = run.check("gradients")
    assert "step() runs before loss.backward() has computed one" in gradients.diagnosis
    # the finding itself is the symptom only: the fix waits for the hints' last step
    assert (
        gradients.detail
        == "1260 of 1260 steps found no gradient: the weights never moved in 1260 steps"
    )
    assert "far too high" in run.check("learning_rate").diagnosis
    assert "too high" not in run.check("learning_rate").detail


@pytest.mark.parametrize(
    "name",
    [
        "standardised outside the model",
        "min-max scaled outside the model",
        "divided by 10 outside the model",
    ],
)
def test_a_model_trained_on_transformed_inputs_is_both_fixed_and_needs_its_preprocessing(name):
    run = graded(name)
    facts = run.facts
    assert facts["prepared_accuracy"] > 0.90  # it learned, on its own inputs
    assert facts["raw_accuracy"] < 0.90  # but not on raw points
    assert run.row_key in ("fixed_short", "fixed")
    assert 0.70 <= run.result.score <= 1.0  # at worst "both bugs fixed, targets not met"
    assert run.check("gradients").passed and run.check("learning_rate").passed
    assert "unstable or stalled" not in run.result.message
    assert "needs its preprocessing" in run.result.message
    raw_inputs = run.check("raw_inputs")
    assert not raw_inputs.passed and "transformed outside it" in raw_inputs.detail
    raw, as_trained = numbers(run.check("accuracy").detail)[:2]
    # the grader's raw points and a different draw of the test's: within sampling error
    assert raw == pytest.approx(facts["raw_accuracy"], abs=0.03)
    assert as_trained == pytest.approx(facts["prepared_accuracy"], abs=0.03)


def test_weights_updated_without_an_optimizer_are_a_fix_and_no_rate_is_claimed():
    run = graded("manual SGD updates, no optimizer")
    assert run.facts["raw_accuracy"] > 0.90
    assert run.row_key == "fixed" and 0.85 <= run.result.score <= 1.0
    assert "without an optimizer" in run.check("gradients").detail
    assert "lr=" not in run.check("learning_rate").detail


def test_no_learning_rate_is_judged_when_no_optimizer_ever_stepped():
    run = graded("no optimizer and no update")
    assert run.row_key == "none_fixed" and 0.15 <= run.result.score <= 0.25
    rate = run.check("learning_rate")
    assert not rate.passed
    assert rate.detail == "optimizer.step() never ran, so no learning rate was used"
    assert "far too high" not in rate.detail


def test_a_perfect_held_out_loss_of_zero_counts_as_a_loss_below_the_bound():
    """``loss or math.inf`` read 0.0 as missing.  No linear model reaches 0.0 on the
    grader's overlapping classes, so the rule is checked on its own."""
    trend = loss_trend([1.0 - i / 100 for i in range(100)])
    steady = trend.finite and trend.decreasing
    assert trains_stably(trend, steady, Evaluation(accuracy=1.0, loss=0.0))
    assert not trains_stably(trend, steady, Evaluation(accuracy=None, loss=None))


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_every_check_states_what_the_run_measured(name):
    """For each submission: the accuracy and loss findings carry the held-out numbers
    (checked against the test's own draw), the steady-loss finding agrees with the
    epoch losses the script recorded, and the reporting check with what it printed."""
    run = graded(name)
    facts = run.facts
    accuracy = run.check("accuracy")
    measured = numbers(accuracy.detail)[0]
    assert measured == pytest.approx(facts["raw_accuracy"], abs=0.03)
    assert accuracy.passed == (measured > 0.90)
    final_loss = run.check("final_loss")
    assert final_loss.passed == (numbers(final_loss.detail)[0] < 0.3)
    epochs = facts["epoch_losses"]
    steady = run.check("steady")
    shown = numbers(steady.detail)
    assert shown[0] == pytest.approx(epochs[0], rel=0.5)  # first tenth of the steps
    assert shown[-1] == pytest.approx(epochs[-1], rel=0.1)  # last tenth
    if steady.passed:
        assert epochs[-1] < epochs[0]
    printed_agrees = abs(facts["val_acc"] - run.result.metrics["heldout_accuracy"]) <= 0.1
    if not facts.get("prepared_accuracy"):
        assert run.check("reports").passed == printed_agrees
    assert run.check("runs").passed
