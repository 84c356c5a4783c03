"""Task 5: the bug really happens (and changes no number), each common mistake shows
its own symptom, and the findings name it with its numbers.

Rubric rows and valid alternative fixes are covered by the calibration cases
(``whipnb/tasks/task5/cases.py``, graded in ``test_calibration.py``)."""

from __future__ import annotations

import pytest
import torch
from helpers import check, edit, grade_quietly, run_quietly

from whipnb.tasks import get_task
from whipnb.tasks.task5 import data

FREEZE = "for param in model.backbone.parameters():\n    param.requires_grad = False\n"
ALL_PARAMS = "optimizer = torch.optim.Adam(model.parameters(), lr=0.001)"
FILTERED = (
    "optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.001)"
)
UNFREEZE = "for param in model.backbone.parameters():\n    param.requires_grad = True\n"
STEPS = 40 * 13  # 40 epochs of 200 readings in batches of 16


@pytest.fixture(scope="module")
def task5():
    return get_task("task5")


def backbone_unchanged(model: torch.nn.Module) -> list[bool]:
    """For each backbone tensor: still exactly its pretrained value?"""
    pretrained = data.pretrained_weights()
    return [
        torch.equal(value, pretrained[name]) for name, value in model.backbone.state_dict().items()
    ]


# --- the bug as shipped ----------------------------------------------------------------


def test_buggy_script_prints_the_mismatch(task5):
    run = run_quietly(task5.buggy_source, task="task5")
    assert "Parameters that require grad: 132 | held by the optimizer: 4,324" in run.stdout


def test_buggy_optimizer_holds_a_backbone_that_can_never_train(task5):
    run = run_quietly(task5.buggy_source, task="task5")
    probe, model = run.probes["trainability"], run.namespace["model"]
    optimizer = run.namespace["optimizer"]
    backbone = list(model.backbone.parameters())
    assert probe.steps == STEPS
    assert all(id(param) in probe.held for param in backbone)
    assert not any(id(param) in probe.graded_ids for param in backbone)
    assert all(backbone_unchanged(model))
    # Adam skipped them at every step: it never even created state for them.
    assert not any(param in optimizer.state for param in backbone)
    assert all(param in optimizer.state for param in model.head.parameters())


def test_the_bug_changes_no_number(task5):
    """Why the grader checks the invariant: buggy and fixed train identically."""
    buggy, fixed = (
        run_quietly(task5.buggy_source, task="task5"),
        run_quietly(task5.solution_source, task="task5"),
    )
    assert buggy.evidence.losses == fixed.evidence.losses
    losses = buggy.evidence.losses
    assert sum(losses[-13:]) < 0.2 * sum(losses[:13])  # and the loss falls for real


def test_weight_decay_skips_frozen_parameters_too(task5):
    source = edit(
        task5.buggy_source,
        (
            ALL_PARAMS,
            "optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.5)",
        ),
    )
    run = run_quietly(source, task="task5")
    assert all(backbone_unchanged(run.namespace["model"]))


def test_buggy_findings_give_the_numbers(task5):
    result = grade_quietly("task5", task5.buggy_source)
    detail = check(result, "frozen").detail
    assert "holds 4,324 parameters, and 4,192 of them" in detail
    assert "backbone.0.weight" in detail and f"every one of its {STEPS} steps" in detail
    assert check(result, "training").passed and check(result, "accuracy").passed
    assert result.metrics["frozen_params_in_optimizer"] == 4192
    assert result.metrics["backbone_change"] == 0.0


# --- the common mistakes show their own symptoms ------------------------------------


def test_unfreezing_after_a_filtered_optimizer_computes_gradients_nobody_applies(task5):
    source = edit(task5.solution_source, (FILTERED, FILTERED + "\n" + UNFREEZE.rstrip("\n")))
    run = run_quietly(source, task="task5")
    model = run.namespace["model"]
    assert all(param.requires_grad for param in model.backbone.parameters())
    assert all(param.grad is not None for param in model.backbone.parameters())
    assert all(backbone_unchanged(model))
    grads = [param.grad.double() for param in model.backbone.parameters()]
    norm = float(sum(grad.pow(2).sum() for grad in grads).sqrt())
    result = grade_quietly("task5", source)
    detail = check(result, "orphans").detail
    assert detail.startswith("4,192 parameters (backbone.0.weight")
    assert "no optimizer holds them" in detail
    assert f"norm {norm:.4g}" in detail
    assert check(result, "frozen").passed


def test_unfreezing_only_the_last_layer_leaves_the_first_frozen_in_the_optimizer(task5):
    last_layer = "for param in model.backbone[2].parameters():\n    param.requires_grad = True\n"
    source = edit(task5.buggy_source, (FREEZE, FREEZE + last_layer))
    run = run_quietly(source, task="task5")
    assert backbone_unchanged(run.namespace["model"]) == [True, True, False, False]
    detail = check(grade_quietly("task5", source), "frozen").detail
    assert "2,112 of them (backbone.0.weight, backbone.0.bias)" in detail


def test_forgotten_biases_stay_frozen_in_the_optimizer(task5):
    weights_only = (
        "for layer in model.backbone:\n"
        "    if isinstance(layer, nn.Linear):\n"
        "        layer.weight.requires_grad = True\n"
    )
    result = grade_quietly("task5", edit(task5.buggy_source, (FREEZE, FREEZE + weights_only)))
    assert "96 of them (backbone.0.bias, backbone.2.bias)" in check(result, "frozen").detail


def test_unfreezing_only_after_training_is_judged_by_the_steps(task5):
    source = edit(task5.buggy_source, ("\nmodel.eval()\n", "\n" + UNFREEZE + "model.eval()\n"))
    run = run_quietly(source, task="task5")
    assert all(param.requires_grad for param in run.namespace["model"].parameters())
    result = grade_quietly("task5", source)
    assert result.score <= 0.25
    assert f"at every one of its {STEPS} steps" in check(result, "frozen").detail


def test_a_no_grad_backbone_in_the_optimizer_is_reported_as_cut_off(task5):
    source = edit(
        task5.buggy_source,
        (FREEZE, ""),
        (
            "        return self.head(self.backbone(x))\n",
            "        with torch.no_grad():\n"
            "            features = self.backbone(x)\n"
            "        return self.head(features)\n",
        ),
    )
    result = grade_quietly("task5", source)
    assert "4,192 requiring grad but cut off from the loss" in check(result, "frozen").detail
    assert result.score <= 0.25


# --- both solutions, and what the grader measures --------------------------------------


def test_freezing_keeps_the_backbone_and_fine_tuning_moves_it(task5):
    frozen = grade_quietly("task5", task5.solution_source)
    tuned = grade_quietly("task5", edit(task5.buggy_source, (FREEZE, FREEZE + UNFREEZE)))
    assert frozen.metrics["backbone_change"] == 0.0
    assert 0.05 < tuned.metrics["backbone_change"] < 1.0
    assert frozen.score >= 0.85 and tuned.score >= 0.85
    assert frozen.passed_all and tuned.passed_all


def test_transfer_pays_off(task5):
    """The README's claim: without the pretrained weights 200 readings are too few."""
    scratch = edit(
        task5.buggy_source,
        ("load_pretrained_backbone, make_data", "make_backbone, make_data"),
        ("self.backbone = load_pretrained_backbone()", "self.backbone = make_backbone()"),
        (FREEZE, ""),
    )
    from_scratch = grade_quietly("task5", scratch).metrics["heldout_accuracy"]
    transferred = grade_quietly("task5", task5.solution_source).metrics["heldout_accuracy"]
    assert from_scratch < 0.90 < transferred


def test_better_fix_never_scores_lower_than_worse_one(task5):
    scores = [
        grade_quietly("task5", source).score
        for source in (
            "raise SystemExit(1)",
            task5.buggy_source,
            edit(task5.solution_source, (FILTERED, FILTERED + "\n" + UNFREEZE.rstrip("\n"))),
            task5.solution_source,
        )
    ]
    assert scores == sorted(scores) and len(set(scores)) == 4


def test_same_submission_scores_identically(task5):
    first = grade_quietly("task5", task5.buggy_source)
    second = grade_quietly("task5", task5.buggy_source)
    assert first.score == second.score and first.metrics == second.metrics


# --- the pretrained backbone --------------------------------------------------------------


def test_pretraining_is_deterministic_and_leaves_the_callers_rng_alone():
    threads = torch.get_num_threads()
    try:
        data._pretrain.cache_clear()
        torch.set_num_threads(2)
        torch.manual_seed(3)
        state = torch.get_rng_state()
        first = data.pretrained_weights()
        assert torch.equal(state, torch.get_rng_state())
        data._pretrain.cache_clear()
        torch.set_num_threads(1)
        second = data.load_pretrained_backbone().state_dict()
        assert torch.equal(state, torch.get_rng_state())
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(first[name], second[name]) for name in first)


def test_pretraining_is_invisible_to_the_probes(task5):
    """A cold cache (a fresh kernel) and a warm one give the same evidence, to the digit."""
    data._pretrain.cache_clear()
    cold = run_quietly(task5.buggy_source, task="task5")
    warm = run_quietly(task5.buggy_source, task="task5")
    assert len(cold.evidence.optimizers) == 1 and cold.probes["trainability"].steps == STEPS
    assert cold.evidence.losses == warm.evidence.losses
    assert len(cold.evidence.steps) == len(warm.evidence.steps) == STEPS


def test_a_linear_model_cannot_solve_the_new_task_from_raw_readings():
    """The fault types are not linearly separable in the readings: the features matter."""
    readings, labels = data.make_samples(2_000, 11)
    torch.manual_seed(0)
    linear = torch.nn.Linear(data.INPUTS, data.NUM_CLASSES)
    optimizer = torch.optim.Adam(linear.parameters(), lr=0.01)
    for _ in range(300):
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(linear(readings), labels)
        loss.backward()
        optimizer.step()
    held_out, truth = data.make_samples(2_000, 12)
    with torch.no_grad():
        accuracy = (linear(held_out).argmax(dim=1) == truth).float().mean().item()
    assert accuracy < 0.7
