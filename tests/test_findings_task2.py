"""Task 2 findings are true statements about the run: no "the loss still turns NaN"
when every loss was finite (a torch.where-guarded log hides the NaN in the gradient:
named), and no float32 sigmoid-rounding claim for a float64 loss or a clamped logit.
Each submission is graded once; the facts are measured in the same run."""

from __future__ import annotations

import functools
import math

import pytest
from findings import grade_with_facts
from helpers import edit

from whipnb.tasks.task2 import TASK

BUGGY = TASK.buggy_source
SIGMOID = "    pred = torch.sigmoid(logits)\n"
LOSS = "    return -(targets * torch.log(pred) + (1 - targets) * torch.log(1 - pred)).mean()\n"
#: Measured by the test on the trained model: its NaN weights, the losses it printed
#: being finite, and the largest value the script's own sigmoid gives on the training
#: logits (in the script's own precision and clamping).
FACTS = """
params = list(model.parameters())
with torch.no_grad():
    logits = model(X_train).squeeze(1)
    pred = (SIGMOID_OF)(logits) if finite_model else None
facts = {
    "nan_weights": sum(int((~torch.isfinite(p)).sum()) for p in params),
    "losses_finite": all(math.isfinite(v) for v in losses),
    "max_pred": None if pred is None else float(pred.max()),
}
"""


def facts_for(sigmoid: str) -> str:
    return (
        "import math\n"
        "finite_model = all(bool(torch.isfinite(p).all()) for p in model.parameters())\n"
        + FACTS.replace("SIGMOID_OF", sigmoid)
    )


SUBMISSIONS = {
    "log guarded by torch.where": (
        edit(
            BUGGY,
            (
                LOSS,
                "    pos = torch.where(pred > 0, torch.log(pred), torch.zeros_like(pred))\n"
                "    neg = torch.where(pred < 1, torch.log(1 - pred), torch.zeros_like(pred))\n"
                "    return -(targets * pos + (1 - targets) * neg).mean()\n",
            ),
        ),
        "torch.sigmoid",
    ),
    "sigmoid in float64": (
        edit(
            BUGGY,
            (SIGMOID, "    pred = torch.sigmoid(logits.double())\n"),
            (LOSS, LOSS.replace(".mean()\n", ".mean().float()\n")),
        ),
        "lambda z: torch.sigmoid(z.double())",
    ),
    "logits clamped to [-15, 15]": (
        edit(BUGGY, (SIGMOID, "    pred = torch.sigmoid(logits.clamp(-15, 15))\n")),
        "lambda z: torch.sigmoid(z.clamp(-15, 15))",
    ),
    "the buggy script": (BUGGY, "torch.sigmoid"),
}


@functools.cache
def graded(name: str):
    source, sigmoid = SUBMISSIONS[name]
    return grade_with_facts("task2", source, facts_for(sigmoid))


def test_a_nan_hidden_by_torch_where_is_named_and_no_loss_is_called_nan():
    run = graded("log guarded by torch.where")
    facts = run.facts
    assert facts["losses_finite"] and facts["nan_weights"] > 0
    assert run.row_key == "still_nan" and 0.10 <= run.result.score <= 0.25
    assert "still turns NaN" not in run.result.message
    assert "No loss was NaN" in run.result.message
    weights = run.check("weights")
    assert weights.detail.startswith(f"{facts['nan_weights']} of ")
    assert "torch.where" in weights.detail and "nan_to_num" not in weights.detail
    assert run.check("finite_loss").passed


@pytest.mark.parametrize("name", ["sigmoid in float64", "logits clamped to [-15, 15]"])
def test_no_float32_rounding_claim_where_the_sigmoid_never_reached_one(name):
    run = graded(name)
    facts = run.facts
    assert facts["max_pred"] < 1.0  # the script's own sigmoid never returned 1.0
    finite = run.check("finite_loss")
    assert finite.passed
    assert "rounds" not in finite.detail and "exactly 1.0" not in finite.detail
    if name == "logits clamped to [-15, 15]":
        assert run.row_key == "fixed" and 0.85 <= run.result.score <= 1.0
    else:  # float64 only moves the edge to 36.7: the drill still breaks it
        assert run.row_key == "unprotected"
        assert not run.check("saturation").passed


def test_the_float32_cause_is_named_when_it_is_the_cause():
    run = graded("the buggy script")
    facts = run.facts
    assert not facts["losses_finite"]
    assert run.row_key == "still_nan" and 0.10 <= run.result.score <= 0.25
    finding = run.check("finite_loss")
    # the symptom and its evidence in the finding, the cause in its diagnosis
    assert "largest logit had reached" in finding.detail and "float32" not in finding.detail
    assert "In float32 sigmoid(" in finding.diagnosis and "is exactly 1.0" in finding.diagnosis
    logit = float(finding.detail.split("largest logit had reached ")[1])
    assert logit >= 16.64 and math.isfinite(logit)
