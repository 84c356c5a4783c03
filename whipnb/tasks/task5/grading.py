"""Task 5: a frozen backbone whose parameters are still handed to the optimizer.

The bug is an invariant violation, not a numerical one: optimizers skip
parameters whose gradient is None (weight decay included), so the buggy script
trains its head exactly as the fix does.  The grader therefore checks the
invariant itself, from behaviour: at every ``optimizer.step()`` the task's
probe records which parameters the optimizer held and which of them had a
gradient to apply; after the run those are set against the trained model's
parameters.  It
also requires real training (a loss that falls over steps that moved weights)
and re-evaluates the model on 4,000 readings the grader draws itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from whipnb.core.instrument import Probe
from whipnb.core.result import Check
from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.common import Evaluation, LossTrend, loss_trend
from whipnb.tasks.task5 import ACCURACY_TARGET
from whipnb.tasks.task5.data import make_data, make_samples, pretrained_weights
from whipnb.tasks.task5.probe import Audit, TrainabilityProbe, audit
from whipnb.tasks.template import Checks, Graded, Grader, Verdict

HELD_OUT_SEED = 5_107
HELD_OUT_SIZE = 4_000
#: Held-out accuracy of the best fixes measured here (frozen or fine-tuned, about 0.95).
ACCURACY_CEILING = 0.955
CHANCE = 0.25
#: Real training: at least this many optimizer steps that moved the weights ...
MIN_MOVING_STEPS = 20
#: ... and a last tenth of the step losses at most this share of the first tenth.
LOSS_DROP = 0.8


@dataclass(frozen=True)
class Facts:
    """What the rows of task 5 depend on."""

    found: Audit
    trend: LossTrend
    moving: int  #: optimizer steps that moved the weights
    learned: bool
    change: float | None  #: how far the backbone moved from its pretrained weights


class Task5Grader(Grader):
    """What the optimizer held against what could train, real training, held-out accuracy."""

    chance = CHANCE
    ceiling = ACCURACY_CEILING

    def make_held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)

    def task_probes(self) -> dict[str, Probe]:
        return {"trainability": TrainabilityProbe()}

    def validation_inputs(self) -> torch.Tensor:
        return make_data()[2]

    def trained_model(self, run: Run) -> torch.nn.Module | None:
        return _trained_model(run, run.probes["trainability"])

    def gather(self, graded: Graded) -> Facts:
        run = graded.run
        backbone = _backbone(graded.model)
        trend = loss_trend(run.evidence.losses)
        moving = run.evidence.moving_steps
        learned = (
            moving >= MIN_MOVING_STEPS
            and trend.finite
            and len(trend.windows) >= 2
            and trend.windows[-1] <= LOSS_DROP * trend.windows[0]
        )
        found = audit(graded.model, run.probes["trainability"], backbone, _optimizers(run))
        return Facts(found, trend, moving, learned, _backbone_change(backbone))

    def checks(self, graded: Graded) -> list[Check]:
        facts = graded.facts
        return [
            _frozen_check(facts.found),
            _orphan_check(facts.found, graded.model is not None),
            _training_check(facts.moving, facts.learned, facts.trend),
            _accuracy_check(graded.evaluation),
        ]

    def metrics(self, graded: Graded) -> dict[str, Any]:
        evaluation, facts = graded.evaluation, graded.facts
        return {
            "heldout_accuracy": evaluation.accuracy,
            "heldout_loss": evaluation.loss,
            "optimizer_params": facts.found.held_count,
            "frozen_params_in_optimizer": facts.found.idle.count,
            "trainable_params_outside_optimizer": facts.found.orphans.count,
            "backbone_change": facts.change,
            "optimizer_steps": len(graded.run.evidence.steps),
            "moving_steps": facts.moving,
        }

    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        facts = graded.facts
        key, quality = self._row(graded, checks.passed("reports"))
        return Verdict(key, quality, _message(key, facts.found, facts.change))

    def _row(self, graded: Graded, honest: bool) -> tuple[str, float]:
        """The rubric row met (by key), and the quality within it."""
        evaluation, found, learned = graded.evaluation, graded.facts.found, graded.facts.learned
        accuracy = evaluation.accuracy
        accuracy_quality = self.metric_quality(graded)
        if not learned or found.backbone_idle:
            return "none_fixed", 0.5 * learned + 0.5 * accuracy_quality
        if not found.consistent:
            return "partial", 0.8 * found.consistency + 0.2 * accuracy_quality
        if accuracy is not None and accuracy > ACCURACY_TARGET:
            quality = (
                0.6 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                + 0.3 * ramp(evaluation.loss, 0.45, 0.15)
                + 0.1 * honest
            )
            return "fixed", quality
        return "fixed_short", ramp(accuracy, CHANCE, ACCURACY_TARGET)


def _trained_model(run: Run, probe: TrainabilityProbe) -> torch.nn.Module | None:
    """The module holding most of what the optimizers stepped; the largest one on a tie.

    The largest wins ties so that the whole network is graded, not its head,
    when a learner keeps the head in a variable of its own.
    """
    modules = [value for value in run.namespace.values() if isinstance(value, torch.nn.Module)]

    def rank(module: torch.nn.Module) -> tuple[int, int]:
        params = list(module.parameters())
        return sum(id(p) in probe.held for p in params), sum(p.numel() for p in params)

    return max(modules, key=rank, default=None)


def _backbone(model: torch.nn.Module | None) -> list[torch.Tensor]:
    """The model's pretrained parameters: its ``backbone``, else those shaped like them."""
    if model is None:
        return []
    backbone = getattr(model, "backbone", None)
    if isinstance(backbone, torch.nn.Module):
        return list(backbone.parameters())
    shapes = {tuple(value.shape) for value in pretrained_weights().values()}
    return [param for param in model.parameters() if tuple(param.shape) in shapes]


def _backbone_change(backbone: list[torch.Tensor]) -> float | None:
    """How far the backbone moved from its pretrained weights (relative L2 distance)."""
    pretrained = list(pretrained_weights().values())
    if [p.shape for p in backbone] != [p.shape for p in pretrained]:
        return None
    moved = sum(
        float((p.detach() - p0).double().pow(2).sum())
        for p, p0 in zip(backbone, pretrained, strict=True)
    )
    size = sum(float(p0.double().pow(2).sum()) for p0 in pretrained)
    return round(math.sqrt(moved / size), 6)


def _accuracy_check(evaluation: Evaluation) -> Check:
    title = f"Accuracy on fresh data above {ACCURACY_TARGET:.2f}"
    if evaluation.accuracy is None:
        return Check("accuracy", title, False, evaluation.error)
    detail = (
        f"held-out accuracy {evaluation.accuracy:.4f} on {HELD_OUT_SIZE:,} readings "
        "the grader drew itself"
    )
    return Check("accuracy", title, evaluation.accuracy > ACCURACY_TARGET, detail)


def _frozen_check(found: Audit) -> Check:
    title = "The optimizer holds only parameters that can train"
    idle = found.idle
    if not found.steps:
        return Check("frozen", title, False, "optimizer.step() was never called")
    if not idle:
        detail = f"all {found.held_count:,} parameters the optimizer holds had gradients to apply"
        return Check("frozen", title, True, detail)
    cut_off = idle.count - found.idle_frozen_count
    if cut_off:
        frozen = f"{found.idle_frozen_count:,} frozen, " if found.idle_frozen_count else ""
        why = (
            f"got no gradient at any of its {found.steps:,} steps ({frozen}{cut_off:,} "
            "requiring grad but cut off from the loss, e.g. by torch.no_grad())"
        )
    else:
        why = f"were frozen (requires_grad=False) at every one of its {found.steps:,} steps"
    detail = (
        f"the optimizer holds {found.held_count:,} parameters, and {idle.count:,} of them "
        f"({idle.listed()}) {why}: without a gradient the optimizer silently skips them, "
        "so they can never train"
    )
    return Check("frozen", title, False, detail)


def _orphan_check(found: Audit, model_found: bool) -> Check:
    title = "Every parameter that requires grad is in the optimizer"
    orphans = found.orphans
    if not model_found:
        return Check("orphans", title, False, "no model (torch.nn.Module) was found")
    if not orphans:
        trained = found.trained_count
        detail = f"all {trained:,} parameters that received a gradient are stepped"
        if found.cut_off_count:
            detail += (
                f"; {found.cut_off_count:,} more require grad but never received a gradient "
                "(cut off from the loss), so they cannot train and rightly stay out"
            )
        return Check("orphans", title, True, detail)
    holders = found.unstepped_holders
    held = (
        f"only {_names(holders)}, whose step() never runs, holds them"
        if holders
        else "no optimizer holds them"
    )
    detail = f"{orphans.count:,} parameters ({orphans.listed()}) receive gradients, but {held}"
    if found.orphan_grad_norm is not None:
        detail += f" (their gradient at the end of the run has norm {found.orphan_grad_norm:.4g})"
    return Check("orphans", title, False, detail + ": nothing ever applies it, so they never move")


def _names(names: list[str]) -> str:
    return " and ".join(f"{name!r}" for name in names)


def _optimizers(run: Run) -> dict[str, torch.optim.Optimizer]:
    """The optimizers the script left in its namespace, by name."""
    return {
        name: value
        for name, value in run.namespace.items()
        if isinstance(value, torch.optim.Optimizer) and not name.startswith("_")
    }


def _training_check(moving: int, learned: bool, trend: LossTrend) -> Check:
    title = "The loss decreases over real training steps"
    if not trend.windows:
        return Check("training", title, False, "no loss was ever backpropagated")
    every = max(1, len(trend.windows) // 5)
    shown = " -> ".join(f"{value:.3g}" for value in trend.windows[::every])
    curve = f"loss over training: {shown} -> {trend.windows[-1]:.3g}"
    if moving < MIN_MOVING_STEPS:
        return Check("training", title, False, f"only {moving} optimizer steps moved the weights")
    return Check("training", title, learned, f"{moving:,} steps moved the weights; {curve}")


def _message(row: str, found: Audit, change: float | None) -> str:
    if row == "none_fixed" and found.backbone_idle:
        return (
            "Not fixed: the backbone never gets a gradient but is still handed to the "
            f"optimizer, which holds {found.idle.count:,} parameters that can never train. "
            "The loss looks "
            "healthy because optimizers skip parameters without a gradient: decide what "
            "should train, and give the optimizer exactly that."
        )
    if row == "none_fixed":
        return "The model does not really train: the loss must fall over optimizer steps."
    if row == "partial":
        return _partial_message(found)
    if row == "fixed":
        return "Fixed: " + _what_trains(found, change)
    return (
        "The optimizer and requires_grad now agree, but the accuracy target is missed: "
        + _what_trains(found, change)
    )


def _partial_message(found: Audit) -> str:
    problems = []
    if found.idle:
        problems.append(
            f"the optimizer still holds {found.idle.count:,} parameters that never get a "
            f"gradient ({found.idle.listed()})"
        )
    if found.orphans:
        held = (
            f"only {_names(found.unstepped_holders)}, never stepped, holds them"
            if found.unstepped_holders
            else "no optimizer holds them"
        )
        problems.append(
            f"{found.orphans.count:,} parameters receive gradients but {held} "
            f"({found.orphans.listed()})"
        )
    return "Partly fixed: " + "; ".join(problems) + "."


def _what_trains(found: Audit, change: float | None) -> str:
    if change is None:
        backbone = "the backbone could not be compared with its pretrained weights"
    elif change == 0:
        backbone = "the backbone stays frozen (unchanged from pretraining)"
    elif change < 1:
        backbone = f"the backbone is fine-tuned (moved {change:.1%} from its pretrained weights)"
    else:
        backbone = (
            f"the backbone ended {change:.0%} of their size away from its pretrained weights, "
            "so its pretrained features were lost or never loaded"
        )
    return (
        f"the optimizer holds exactly the {found.trained_count:,} parameters that train; "
        f"{backbone}."
    )
