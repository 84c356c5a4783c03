"""Task 1: a linear classifier whose loop steps before backward, with lr=10.0.

Evidence: the optimizer-step probes (did each step find fresh gradients, which
learning rate did it use), the recorded loss of every backward pass (spikes,
steady decrease), and the trained model re-evaluated on 4,000 points the
grader draws itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from whipnb.core.instrument import Evidence, Probe, StepEvent
from whipnb.core.result import Check
from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.common import Evaluation, LossTrend, evaluate_classifier, loss_trend
from whipnb.tasks.task1 import ACCURACY_TARGET, LOSS_TARGET
from whipnb.tasks.task1.data import make_data, make_samples
from whipnb.tasks.task1.inputs import InputStatsProbe, Stats, as_trained, preprocessing, raw_stats
from whipnb.tasks.template import Checks, Graded, Grader, Verdict

HELD_OUT_SEED = 7_211
HELD_OUT_SIZE = 4_000
#: Held-out accuracy of the best linear classifier on this data (about 0.955).
ACCURACY_CEILING = 0.955
#: Learning rates that cannot be tested while no step sees a gradient are
#: judged by value: anything in this range is a plausible fix.
PLAUSIBLE_LR = (1e-4, 0.5)


@dataclass(frozen=True)
class Facts:
    """What the rows of task 1 depend on."""

    trend: LossTrend
    gradients_ok: bool
    steady: bool
    lr_ok: bool
    loss_ok: bool
    accuracy_ok: bool
    #: the weights were updated without an optimizer (the loss fell steadily)
    by_hand: bool = False
    #: the model on the grader's raw points (``graded.evaluation`` is the model as
    #: trained: on the points transformed like its training inputs, when they were)
    raw_evaluation: Evaluation | None = None
    #: the statistics of the inputs the model was trained on, when transformed
    seen: Stats | None = None
    raw: Stats | None = None

    @property
    def preprocessed(self) -> bool:
        return self.seen is not None


class Task1Grader(Grader):
    """Gradients, learning rate and held-out accuracy of the trained linear classifier."""

    ceiling = ACCURACY_CEILING

    def make_held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)

    def validation_inputs(self) -> torch.Tensor:
        return make_data()[2]

    def task_probes(self) -> dict[str, Probe]:
        return {"inputs": InputStatsProbe()}

    def _trained_on(self, run: Run, model: torch.nn.Module | None) -> tuple[Stats | None, Stats]:
        """The statistics of the inputs the model was trained on, if transformed away from
        the raw points' (else None), and the raw training points' own."""
        raw = raw_stats(make_data()[0])
        seen = run.probes["inputs"].stats(model)
        return (seen if preprocessing(seen, raw) else None), raw

    def evaluate(self, run: Run, model: torch.nn.Module | None) -> Evaluation:
        """The model as it was trained: on the grader's points transformed like its
        training inputs when those were transformed outside it, else on raw points."""
        points, labels = self.held_out()
        seen, raw = self._trained_on(run, model)
        if seen is not None:
            points = as_trained(points, seen, raw)
        return evaluate_classifier(model, points, labels)

    def gather(self, graded: Graded) -> Facts:
        evaluation, evidence = graded.evaluation, graded.run.evidence
        seen, raw = self._trained_on(graded.run, graded.model)
        raw_evaluation = (
            evaluate_classifier(graded.model, *self.held_out()) if seen is not None else evaluation
        )
        trend = loss_trend(evidence.losses)
        lrs = evidence.learning_rates
        steady = trend.finite and trend.decreasing and _dropped(trend.windows)
        by_hand = updated_by_hand(evidence, steady)
        gradients_ok = by_hand or (bool(evidence.steps) and evidence.fresh_step_fraction >= 0.95)
        if gradients_ok:
            lr_ok = trains_stably(trend, steady, evaluation)
        else:
            lr_ok = bool(lrs) and all(PLAUSIBLE_LR[0] <= lr <= PLAUSIBLE_LR[1] for lr in lrs)
        loss_ok = raw_evaluation.loss is not None and raw_evaluation.loss < LOSS_TARGET
        accuracy_ok = (
            raw_evaluation.accuracy is not None and raw_evaluation.accuracy > ACCURACY_TARGET
        )
        return Facts(
            trend,
            gradients_ok,
            steady,
            lr_ok,
            loss_ok,
            accuracy_ok,
            by_hand,
            raw_evaluation,
            seen,
            raw,
        )

    def checks(self, graded: Graded) -> list[Check]:
        run, evaluation, facts = graded.run, graded.evaluation, graded.facts
        raw_evaluation = facts.raw_evaluation
        checks = [
            _gradient_check(run, facts.gradients_ok, facts.by_hand, facts.trend),
            _learning_rate_check(run, facts.gradients_ok, facts.lr_ok, facts.trend),
            Check(
                "steady", "The loss goes down steadily", facts.steady, _steady_detail(facts.trend)
            ),
            Check(
                "final_loss",
                f"Loss on fresh data below {LOSS_TARGET}",
                facts.loss_ok,
                _measured(raw_evaluation.loss, raw_evaluation.error, "held-out loss")
                + _as_trained(facts.preprocessed, evaluation.loss),
            ),
            Check(
                "accuracy",
                f"Accuracy on fresh data above {ACCURACY_TARGET:.2f}",
                facts.accuracy_ok,
                _measured(raw_evaluation.accuracy, raw_evaluation.error, "held-out accuracy")
                + _as_trained(facts.preprocessed, evaluation.accuracy),
            ),
        ]
        if facts.seen is not None and facts.raw is not None:
            works = facts.loss_ok and facts.accuracy_ok
            checks.insert(3, _preprocessing_check(facts.seen, facts.raw, works))
        return checks

    def metrics(self, graded: Graded) -> dict[str, Any]:
        evaluation, evidence = graded.evaluation, graded.run.evidence
        lrs = evidence.learning_rates
        raw_evaluation = graded.facts.raw_evaluation
        return {
            "heldout_accuracy": raw_evaluation.accuracy,
            "heldout_loss": raw_evaluation.loss,
            "heldout_accuracy_as_trained": evaluation.accuracy if graded.facts.seen else None,
            "optimizer_steps": len(evidence.steps),
            "fresh_gradient_steps": round(evidence.fresh_step_fraction, 4),
            "learning_rate": lrs[0] if lrs else None,
            "max_step_loss": graded.facts.trend.spike_value if evidence.losses else None,
        }

    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        evaluation, facts = graded.evaluation, graded.facts
        gradients_ok, lr_ok = facts.gradients_ok, facts.lr_ok
        accuracy_quality = self.metric_quality(graded)
        if gradients_ok and lr_ok and facts.loss_ok and facts.accuracy_ok:
            quality = (
                0.6 * ramp(evaluation.accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                + 0.3 * ramp(evaluation.loss, LOSS_TARGET, 0.12)
                + 0.1 * checks.passed("reports")
            )
            message = "Both bugs fixed: the model trains smoothly and meets the targets."
            return Verdict("fixed", quality, message)
        if gradients_ok and lr_ok:
            message = (
                "Both bugs fixed, but the model was trained on points transformed outside "
                "it, so on raw points it misses the targets: it needs its preprocessing (move "
                "it into the model)."
                if facts.preprocessed
                else "Both bugs look fixed, but the model does not meet the targets yet."
            )
            return Verdict("fixed_short", accuracy_quality, message)
        if gradients_ok or lr_ok:
            message = (
                "One bug left: the steps now see gradients, but training is unstable or stalled."
                if gradients_ok
                else "One bug left: the learning rate looks sane, but the weights never update."
            )
            return Verdict("one_fixed", accuracy_quality, message)
        quality = 0.5 * graded.run.evidence.fresh_step_fraction + 0.5 * accuracy_quality
        return Verdict(
            "none_fixed", quality, "Both bugs are still there: the model does not learn."
        )


def updated_by_hand(evidence: Evidence, steady: bool) -> bool:
    """No optimizer stepped, yet the loss fell steadily over many backward passes: the
    weights were updated without an optimizer (say ``p -= lr * p.grad``)."""
    return not evidence.steps and len(evidence.losses) >= 20 and steady


def trains_stably(trend: LossTrend, steady: bool, evaluation: Evaluation) -> bool:
    """Once steps see gradients: a steady fall, no spike, and a held-out loss below 0.5
    (a perfect 0.0 included: a loss of zero is a value, not a missing one)."""
    return steady and not trend.spiked and evaluation.loss is not None and evaluation.loss < 0.5


def _preprocessing_check(seen: Stats, raw: Stats, works: bool) -> Check:
    detail = (
        f"the model was trained on points transformed outside it ({seen.describe()}; the "
        f"raw points have {raw.describe()}), so it is measured both on the grader's raw "
        "points and on them transformed the same way"
    )
    if not works:
        detail += ": on raw points it misses the targets, it needs its preprocessing"
    return Check("raw_inputs", "The model works on raw points", works, detail)


def _as_trained(preprocessed: bool, value: float | None) -> str:
    if not preprocessed or value is None:
        return ""
    return f" on raw points; {value:.4f} on points transformed as in training"


def _dropped(windows: list[float]) -> bool:
    return len(windows) >= 2 and windows[-1] < 0.8 * windows[0]


def _gradient_check(run: Run, ok: bool, by_hand: bool, trend: LossTrend) -> Check:
    steps = run.evidence.steps
    title = "optimizer.step() uses fresh gradients"
    if by_hand:
        detail = (
            f"no optimizer.step() ran, but the weights were updated without an optimizer: the "
            f"loss fell steadily from {trend.windows[0]:.3g} to {trend.windows[-1]:.3g} over "
            f"{len(run.evidence.losses)} backward passes"
        )
        return Check("gradients", title, True, detail)
    if not steps:
        return Check("gradients", title, False, "optimizer.step() was never called")
    empty = [step for step in steps if not step.has_grad]
    stale = sum(step.has_grad and step.stale for step in steps)
    if ok:
        return Check("gradients", title, True, f"all {len(steps)} steps applied fresh gradients")
    if empty:
        moved = "never moved" if len(empty) == len(steps) else "did not move on those steps"
        detail = (
            f"{len(empty)} of {len(steps)} steps found no gradient: the weights {moved} in "
            f"{len(steps)} steps"
        )
        return Check("gradients", title, False, detail, _why_empty(empty, run) + ORDER_FIX)
    detail = f"{stale} of {len(steps)} steps applied gradients from an earlier batch"
    diagnosis = (
        "gradients add up from batch to batch until they are cleared: call "
        "optimizer.zero_grad() once per batch, before loss.backward()"
    )
    return Check("gradients", title, False, detail, diagnosis)


#: How the gradient finding's diagnosis ends: the fix, as the seed's third hint puts it.
ORDER_FIX = (
    ". The order that works: optimizer.zero_grad() -> forward -> loss -> loss.backward() "
    "-> optimizer.step()"
)


def _why_empty(empty: list[StepEvent], run: Run) -> str:
    """Why steps found no gradient, from the order of events: a forward pass after the
    latest backward means step() ran before this batch's backward(); a backward after
    the latest forward means something cleared its gradient before step()."""
    if not run.evidence.losses:
        return "backward() never ran, so no gradient was ever computed"
    before = sum(step.stale for step in empty)
    if before == len(empty):
        return "step() runs before loss.backward() has computed one"
    if before == 0:
        return (
            "backward() did run after the forward pass, but the gradient was cleared "
            "(zero_grad) before step() could apply it"
        )
    return (
        f"{before} of them ran before that batch's backward(), the others after a "
        "zero_grad() had cleared its gradient"
    )


def _learning_rate_check(run: Run, gradients_ok: bool, ok: bool, trend) -> Check:
    lrs = run.evidence.learning_rates
    title = "The learning rate trains stably"
    shown = ", ".join(f"{lr:g}" for lr in lrs) or "none"
    if not lrs and not gradients_ok:
        return Check(
            "learning_rate",
            title,
            False,
            "optimizer.step() never ran, so no learning rate was used",
        )
    if not lrs:
        return Check("learning_rate", title, ok, _unstepped_rate(ok, trend))
    if not gradients_ok:
        detail = f"lr={shown}: cannot be tried out yet, no step has applied a gradient"
        return Check("learning_rate", title, ok, detail, "" if ok else _rate_diagnosis(lrs))
    if not trend.finite:
        detail = f"lr={shown}: the loss became non-finite at step {trend.first_nonfinite}"
    elif trend.spiked:
        detail = (
            f"lr={shown}: the loss spiked to {trend.spike_value:.3g} at step {trend.spike_step} "
            f"after starting near {trend.windows[0]:.3g}"
        )
    elif not ok:
        detail = f"lr={shown}: training is unsteady or too slow to make progress"
    else:
        detail = f"lr={shown}: no spikes, the loss falls steadily"
    return Check("learning_rate", title, ok, detail, "" if ok else _rate_diagnosis(lrs))


def _rate_diagnosis(lrs: list[float]) -> str:
    """The cause and the fix of a learning rate that does not train."""
    high = any(lr > PLAUSIBLE_LR[1] for lr in lrs)
    if high:
        return (
            f"lr={max(lrs):g} is far too high for SGD on this model: each step overshoots, "
            "so once the steps see gradients the loss explodes. A learning rate like 0.01 "
            "trains smoothly"
        )
    return (
        "the learning rate is too low (or the training too short) to make progress: "
        "a learning rate like 0.01 for SGD trains within the script's 20 epochs"
    )


def _unstepped_rate(ok: bool, trend: LossTrend) -> str:
    """Updated without an optimizer: the rate is judged by the trajectory alone."""
    if ok:
        return "no optimizer holds a learning rate, but the loss falls steadily without spikes"
    if trend.spiked:
        return f"no optimizer was used; the loss spiked to {trend.spike_value:.3g}"
    return "no optimizer was used; the loss does not fall steadily to a held-out loss below 0.5"


def _steady_detail(trend) -> str:
    if not trend.windows:
        return "no loss was ever backpropagated"
    every = max(1, len(trend.windows) // 5)
    shown = " -> ".join(f"{value:.3g}" for value in trend.windows[::every])
    return f"loss over training: {shown} -> {trend.windows[-1]:.3g}"


def _measured(value: float | None, error: str, name: str) -> str:
    return error if value is None else f"{name} {value:.4f}"
