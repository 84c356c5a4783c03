"""Task 5 findings are true statements about the run: judged by what trained, not by
``requires_grad`` flags, and naming the optimizer that really holds a parameter.

Each submission is graded once (module cache); the facts each assertion compares
with are measured in the same run's namespace by the test's own code."""

from __future__ import annotations

import functools

import pytest
from findings import grade_with_facts, numbers
from helpers import edit

from whipnb.tasks.task5 import TASK

BUGGY = TASK.buggy_source
FREEZE = "for param in model.backbone.parameters():\n    param.requires_grad = False\n"
ALL_PARAMS = "optimizer = torch.optim.Adam(model.parameters(), lr=0.001)"
HEAD_ONLY = "optimizer = torch.optim.Adam(model.head.parameters(), lr=0.001)"
FILTERED = (
    "optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.001)"
)
FORWARD = "        return self.head(self.backbone(x))\n"
NO_GRAD_FORWARD = (
    "        with torch.no_grad():\n"
    "            features = self.backbone(x)\n"
    "        return self.head(features)\n"
)
ZERO = "        optimizer.zero_grad()\n"
STEP = "        optimizer.step()\n"
#: Measured by the test in the run's namespace: the backbone's size, whether it is
#: still exactly pretrained, whether any backbone tensor holds a gradient, its norm.
FACTS = """
from whipnb.tasks.task5.data import make_samples, pretrained_weights
x, y = make_samples(4000, 99)
model.eval()
with torch.no_grad():
    accuracy = (model(x).argmax(1) == y).float().mean().item()
backbone = list(model.backbone.parameters())
pretrained = pretrained_weights()
grads = [p.grad for p in backbone if p.grad is not None]
facts = {
    "backbone_numel": sum(p.numel() for p in backbone),
    "head_numel": sum(p.numel() for p in model.head.parameters()),
    "backbone_unchanged": all(
        torch.equal(v, pretrained[k]) for k, v in model.backbone.state_dict().items()
    ),
    "backbone_requires_grad": all(p.requires_grad for p in backbone),
    "accuracy": accuracy,
    "epoch_losses": losses,
    "backbone_grad_norm": (
        float(sum(g.double().pow(2).sum() for g in grads).sqrt()) if grads else None
    ),
}
"""

SUBMISSIONS = {
    # valid: the backbone never trains (no_grad / detach) and the optimizer holds the head
    "no_grad backbone, head optimizer": edit(
        BUGGY, (FREEZE, ""), (FORWARD, NO_GRAD_FORWARD), (ALL_PARAMS, HEAD_ONLY)
    ),
    "detached features, head optimizer": edit(
        BUGGY,
        (FREEZE, ""),
        (FORWARD, "        return self.head(self.backbone(x).detach())\n"),
        (ALL_PARAMS, HEAD_ONLY),
    ),
    "no_grad backbone, optimizer filtered by requires_grad (holds the backbone)": edit(
        BUGGY, (FREEZE, ""), (FORWARD, NO_GRAD_FORWARD), (ALL_PARAMS, FILTERED)
    ),
    "second optimizer over the backbone, zeroed, never stepped": edit(
        BUGGY,
        (FREEZE, ""),
        (
            ALL_PARAMS,
            HEAD_ONLY + "\nbackbone_optimizer = torch.optim.Adam(model.backbone.parameters())",
        ),
        (ZERO, ZERO + "        backbone_optimizer.zero_grad()\n"),
    ),
    "second optimizer over the backbone, never zeroed nor stepped": edit(
        BUGGY,
        (FREEZE, ""),
        (ALL_PARAMS, HEAD_ONLY + "\nextra = torch.optim.SGD(model.backbone.parameters(), lr=0.1)"),
    ),
    "unfrozen after a head optimizer, gradients cleared after every step": edit(
        BUGGY,
        (FREEZE, ""),
        (ALL_PARAMS, HEAD_ONLY),
        (STEP, STEP + "        model.zero_grad()\n"),
    ),
}


@functools.cache
def graded(name: str):
    return grade_with_facts("task5", SUBMISSIONS[name], FACTS)


@pytest.mark.parametrize(
    "name", ["no_grad backbone, head optimizer", "detached features, head optimizer"]
)
def test_a_backbone_cut_off_from_the_loss_with_the_head_optimized_is_fixed(name):
    run = graded(name)
    facts = run.facts
    assert facts["backbone_unchanged"] and facts["backbone_requires_grad"]
    assert facts["backbone_grad_norm"] is None  # it never received a gradient
    assert run.row_key == "fixed"
    assert 0.85 <= run.result.score <= 1.0  # seed: "Bug properly fixed"
    orphans = run.check("orphans")
    assert orphans.passed
    assert f"{facts['head_numel']:,} parameters that received a gradient" in orphans.detail
    assert f"{facts['backbone_numel']:,} more require grad but never received" in orphans.detail
    assert "stays frozen (unchanged from pretraining)" in run.result.message


def test_a_cut_off_backbone_still_in_the_optimizer_is_the_bug_untouched():
    run = graded("no_grad backbone, optimizer filtered by requires_grad (holds the backbone)")
    facts = run.facts
    assert run.row_key == "none_fixed"
    assert 0.10 <= run.result.score <= 0.25  # seed: "No fix (backbone still frozen + in optimizer)"
    frozen = run.check("frozen")
    assert not frozen.passed
    total = facts["head_numel"] + facts["backbone_numel"]
    assert f"holds {total:,} parameters, and {facts['backbone_numel']:,} of them" in frozen.detail
    # the flags say trainable: the finding must say they were cut off, not frozen
    assert f"{facts['backbone_numel']:,} requiring grad but cut off" in frozen.detail
    assert "frozen," not in frozen.detail
    assert "never gets a gradient" in run.result.message


@pytest.mark.parametrize(
    ("name", "holder"),
    [
        ("second optimizer over the backbone, zeroed, never stepped", "backbone_optimizer"),
        ("second optimizer over the backbone, never zeroed nor stepped", "extra"),
    ],
)
def test_an_optimizer_that_is_never_stepped_is_named_as_the_holder(name, holder):
    run = graded(name)
    facts = run.facts
    assert facts["backbone_unchanged"] and facts["backbone_grad_norm"] > 0
    assert run.row_key == "partial"
    assert 0.40 <= run.result.score <= 0.70  # seed: "Partial fix (some improvement)"
    orphans = run.check("orphans")
    assert not orphans.passed
    assert f"{facts['backbone_numel']:,} parameters" in orphans.detail
    assert f"only '{holder}', whose step() never runs, holds them" in orphans.detail
    assert "no optimizer holds them" not in orphans.detail
    assert "never cleared" not in orphans.detail  # the zeroed one is cleared every step
    norm = numbers(orphans.detail.split("norm ")[1])[0]
    assert norm == pytest.approx(facts["backbone_grad_norm"], rel=1e-3)
    assert holder in run.result.message


def test_orphans_are_found_from_gradients_seen_at_the_steps_not_left_at_the_end():
    run = graded("unfrozen after a head optimizer, gradients cleared after every step")
    facts = run.facts
    assert facts["backbone_grad_norm"] is None  # nothing left at the end of the run
    assert run.row_key == "partial"
    assert 0.40 <= run.result.score <= 0.70
    orphans = run.check("orphans")
    assert not orphans.passed
    assert f"{facts['backbone_numel']:,} parameters" in orphans.detail
    assert "no optimizer holds them" in orphans.detail
    assert "norm" not in orphans.detail  # no gradient was left to measure


@pytest.mark.parametrize("name", sorted(SUBMISSIONS))
def test_every_check_states_what_the_run_measured(name):
    """The accuracy finding carries the held-out accuracy (checked against the test's
    own draw); the training finding's curve runs from the first epochs' loss to the
    last; the frozen finding's count is what the optimizers held."""
    run = graded(name)
    facts = run.facts
    accuracy = run.check("accuracy")
    measured = numbers(accuracy.detail)[0]
    assert measured == pytest.approx(facts["accuracy"], abs=0.03)
    assert accuracy.passed == (measured > 0.90)
    training = run.check("training")
    steps, *curve = numbers(training.detail)
    assert steps == 40 * 13  # every step moved the head
    assert curve[-1] == pytest.approx(facts["epoch_losses"][-1], rel=0.1)
    assert training.passed == (curve[-1] <= 0.8 * curve[0])
    held = run.result.metrics["optimizer_params"]
    frozen = run.check("frozen")
    if frozen.passed:
        assert f"all {held:,} parameters the optimizer holds" in frozen.detail
    else:
        assert f"the optimizer holds {held:,} parameters" in frozen.detail
    assert run.check("runs").passed
