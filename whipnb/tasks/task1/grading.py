"""Task 1: a linear classifier whose loop steps before backward, with lr=10.0.

Evidence: the optimizer-step probes (did each step find fresh gradients, which
learning rate did it use), the recorded loss of every backward pass (spikes,
steady decrease), and the trained model re-evaluated on 4,000 points the
grader draws itself.
"""

from __future__ import annotations

import math

from whipnb.core.instrument import TrainingDataWatch
from whipnb.core.result import Check
from whipnb.core.rubric import Assessment, ramp
from whipnb.core.runner import Run
from whipnb.tasks.common import (
    crash_check,
    evaluate_classifier,
    find_model,
    loss_trend,
    reporting_check,
    watch_unseen_data,
)
from whipnb.tasks.task1 import ACCURACY_TARGET, LOSS_TARGET
from whipnb.tasks.task1.data import make_data, make_samples
from whipnb.tasks.template import Grader

HELD_OUT_SEED = 7_211
HELD_OUT_SIZE = 4_000
#: Held-out accuracy of the best linear classifier on this data (about 0.955).
ACCURACY_CEILING = 0.955
#: Learning rates that cannot be tested while no step sees a gradient are
#: judged by value: anything in this range is a plausible fix.
PLAUSIBLE_LR = (1e-4, 0.5)


class Task1Grader(Grader):
    """Gradients, learning rate and held-out accuracy of the trained linear classifier."""

    def probes(self) -> dict[str, TrainingDataWatch]:
        _x_train, _y_train, x_val, _y_val = make_data()
        held_out, _labels = make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)
        return {"data_watch": watch_unseen_data(x_val, held_out)}

    def assess(self, run: Run) -> Assessment:
        model = find_model(run)
        evaluation = evaluate_classifier(model, *make_samples(HELD_OUT_SIZE, HELD_OUT_SEED))
        evidence = run.evidence
        trend = loss_trend(evidence.losses)
        lrs = evidence.learning_rates

        gradients_ok = bool(evidence.steps) and evidence.fresh_step_fraction >= 0.95
        steady = trend.finite and trend.decreasing and _dropped(trend.windows)
        if gradients_ok:
            lr_ok = steady and not trend.spiked and (evaluation.loss or math.inf) < 0.5
        else:
            lr_ok = bool(lrs) and all(PLAUSIBLE_LR[0] <= lr <= PLAUSIBLE_LR[1] for lr in lrs)
        loss_ok = evaluation.loss is not None and evaluation.loss < LOSS_TARGET
        accuracy_ok = evaluation.accuracy is not None and evaluation.accuracy > ACCURACY_TARGET

        checks = [
            crash_check(run),
            _gradient_check(run, gradients_ok),
            _learning_rate_check(run, gradients_ok, lr_ok, trend),
            Check("steady", "The loss goes down steadily", steady, _steady_detail(trend)),
            Check(
                "final_loss",
                f"Loss on fresh data below {LOSS_TARGET}",
                loss_ok,
                _measured(evaluation.loss, evaluation.error, "held-out loss"),
            ),
            Check(
                "accuracy",
                f"Accuracy on fresh data above {ACCURACY_TARGET:.2f}",
                accuracy_ok,
                _measured(evaluation.accuracy, evaluation.error, "held-out accuracy"),
            ),
            reporting_check(run, "VAL_ACC", evaluation.accuracy),
        ]
        metrics = {
            "heldout_accuracy": evaluation.accuracy,
            "heldout_loss": evaluation.loss,
            "optimizer_steps": len(evidence.steps),
            "fresh_gradient_steps": round(evidence.fresh_step_fraction, 4),
            "learning_rate": lrs[0] if lrs else None,
            "max_step_loss": trend.spike_value if evidence.losses else None,
        }
        accuracy_quality = ramp(evaluation.accuracy, 0.5, ACCURACY_CEILING)
        if run.crashed:
            row, quality = self.row("crash"), accuracy_quality
            message = f"The script crashed ({run.error_text}); fix the error first."
        elif gradients_ok and lr_ok and loss_ok and accuracy_ok:
            row = self.row("fixed")
            quality = (
                0.6 * ramp(evaluation.accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                + 0.3 * ramp(evaluation.loss, LOSS_TARGET, 0.12)
                + 0.1 * checks[-1].passed
            )
            message = "Both bugs fixed: the model trains smoothly and meets the targets."
        elif gradients_ok and lr_ok:
            row, quality = self.row("fixed_short"), accuracy_quality
            message = "Both bugs look fixed, but the model does not meet the targets yet."
        elif gradients_ok or lr_ok:
            row, quality = self.row("one_fixed"), accuracy_quality
            message = (
                "One bug left: the steps now see gradients, but training is unstable or stalled."
                if gradients_ok
                else "One bug left: the learning rate looks sane, but the weights never update."
            )
        else:
            row = self.row("none_fixed")
            quality = 0.5 * evidence.fresh_step_fraction + 0.5 * accuracy_quality
            message = "Both bugs are still there: the model does not learn."
        return Assessment(row, quality, checks, metrics, message)


def _dropped(windows: list[float]) -> bool:
    return len(windows) >= 2 and windows[-1] < 0.8 * windows[0]


def _gradient_check(run: Run, ok: bool) -> Check:
    steps = run.evidence.steps
    title = "optimizer.step() uses fresh gradients"
    if not steps:
        return Check("gradients", title, False, "optimizer.step() was never called")
    empty = sum(not step.has_grad for step in steps)
    stale = sum(step.has_grad and step.stale for step in steps)
    if ok:
        return Check("gradients", title, True, f"all {len(steps)} steps applied fresh gradients")
    if empty:
        detail = (
            f"{empty} of {len(steps)} steps found no gradient, so the weights never moved: "
            "step() runs before loss.backward() has computed one"
        )
    else:
        detail = f"{stale} of {len(steps)} steps applied gradients from an earlier batch"
    return Check("gradients", title, False, detail)


def _learning_rate_check(run: Run, gradients_ok: bool, ok: bool, trend) -> Check:
    lrs = run.evidence.learning_rates
    title = "The learning rate trains stably"
    shown = ", ".join(f"{lr:g}" for lr in lrs) or "none"
    if not gradients_ok:
        verdict = "looks sensible" if ok else "looks far too high or too low"
        return Check(
            "learning_rate",
            title,
            ok,
            f"lr={shown} {verdict}, but it cannot be confirmed until the steps see gradients",
        )
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
    return Check("learning_rate", title, ok, detail)


def _steady_detail(trend) -> str:
    if not trend.windows:
        return "no loss was ever backpropagated"
    every = max(1, len(trend.windows) // 5)
    shown = " -> ".join(f"{value:.3g}" for value in trend.windows[::every])
    return f"loss over training: {shown} -> {trend.windows[-1]:.3g}"


def _measured(value: float | None, error: str, name: str) -> str:
    return error if value is None else f"{name} {value:.4f}"
