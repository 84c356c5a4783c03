"""Task 3 findings are true statements about the run: a pile-up of graphs is reported
with the memory it really held (no prediction that "a full-length run runs out of
memory", no "only fits because it is short"), and training on the validation images
themselves is not described as a split made after augmenting.  Each submission is
graded once; the facts are measured in the same run by the test's own code."""

from __future__ import annotations

import functools

import pytest
from findings import grade_with_facts, numbers
from helpers import edit

from whipnb.tasks.task3 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
KEEPS_GRAPH = "        total_loss += loss\n"
ITEM = "        total_loss += loss.item()\n"
TRAIN_SPLIT = "X_train, y_train = augment(images[order[:split]], labels[order[:split]], copies=3)\n"
VAL_SPLIT = "X_val, y_val = images[order[split:]], labels[order[split:]]\n"
LOAD = "images, labels = load_images()\n"
QUARTER = "images, labels = images[:150], labels[:150]\n"
#: Measured by the test: how many validation images are byte-identical to a
#: training image, and how many optimizer steps the epochs ran.
FACTS = """
train_rows = {row.numpy().tobytes() for row in X_train.flatten(1)}
facts = {
    "identical": sum(row.numpy().tobytes() in train_rows for row in X_val.flatten(1)),
    "validation": len(X_val),
    "epochs_run": len(losses),
}
"""

SUBMISSIONS = {
    "split fixed, graphs kept, 1 epoch": edit(
        SOLUTION, (ITEM, KEEPS_GRAPH), ("EPOCHS = 8", "EPOCHS = 1")
    ),
    "split fixed, graphs kept, a quarter of the images, all epochs": edit(
        SOLUTION, (ITEM, KEEPS_GRAPH), (LOAD, LOAD + QUARTER)
    ),
    "graphs fixed, validation images trained on directly": edit(
        SOLUTION,
        (
            VAL_SPLIT,
            VAL_SPLIT + "X_train = torch.cat([X_train, X_val])\n"
            "y_train = torch.cat([y_train, y_val])\n",
        ),
    ),
    "nothing fixed, a quarter of the images, all epochs": edit(BUGGY, (LOAD, LOAD + QUARTER)),
}


@functools.cache
def graded(name: str):
    return grade_with_facts("task3", SUBMISSIONS[name], FACTS)


def _pile(detail: str) -> tuple[float, float, float]:
    """(graphs alive at once, peak MiB, budget MiB) as the message states them."""
    values = numbers(detail)
    return values[0], values[-2], values[-1]


@pytest.mark.parametrize(
    "name",
    [
        "split fixed, graphs kept, 1 epoch",
        "split fixed, graphs kept, a quarter of the images, all epochs",
    ],
)
def test_a_pile_up_within_budget_is_reported_as_measured_not_predicted(name):
    run = graded(name)
    assert run.row_key == "one_fixed" and 0.40 <= run.result.score <= 0.65
    message = run.result.message
    assert "runs out of memory" not in message and "full-length" not in message
    graphs, peak, budget = _pile(message.split("pile up (", 1)[1])
    metrics = run.result.metrics
    assert graphs == metrics["piled_up_graphs"] >= 3
    assert peak == pytest.approx(metrics["peak_graph_memory_MiB"], abs=0.1)
    assert peak < budget == 128
    assert not run.check("graphs").passed and run.check("memory").passed


def test_nothing_fixed_within_budget_states_the_pile_up_not_a_short_run():
    run = graded("nothing fixed, a quarter of the images, all epochs")
    assert run.facts["epochs_run"] == 8  # every epoch ran: it is not short
    assert run.row_key == "none_fixed" and 0.10 <= run.result.score <= 0.25
    message = run.result.message
    assert "short" not in message
    assert "graphs pile up" in message and "augmented copies" in message


def test_validation_images_trained_on_directly_are_not_a_split_after_augmenting():
    run = graded("graphs fixed, validation images trained on directly")
    facts = run.facts
    assert facts["identical"] == facts["validation"] == 120
    assert run.row_key == "one_fixed" and 0.40 <= run.result.score <= 0.65
    leakage = run.check("leakage")
    assert not leakage.passed
    assert "after augmenting" not in leakage.detail + leakage.diagnosis
    assert f"{facts['identical']} of them identical" in leakage.detail
    assert "trained on the validation images themselves" in leakage.diagnosis
    assert "trained on its validation images themselves" in run.result.message
