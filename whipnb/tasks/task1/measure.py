"""Task 1's outside measurement: the linear classifier on fresh 2-D points.

A model trained on points transformed outside it (standardised, scaled) is a valid
fix that only works behind that transform; the kernel measures it both on raw
points and "as trained" (:mod:`whipnb.tasks.task1.inputs`).  The graph exported is
the model as trained: the measured transform (per feature, affine) folded in front
of it, so the outside measurement, the secret set and the training-loss rule all
see the model the learner trained, on the grader's raw points.  Faking the probe's
statistics buys nothing: an affine map in front of a linear model is another linear
model, which the measurement scores for what it is, as it would weights written in.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.measure import (
    Compared,
    Measurement,
    Traceable,
    above,
    below,
)
from whipnb.tasks.task1 import ACCURACY_TARGET, LOSS_TARGET
from whipnb.tasks.task1.data import make_samples
from whipnb.tasks.task1.grading import ACCURACY_CEILING, HELD_OUT_SEED, HELD_OUT_SIZE
from whipnb.tasks.task1.inputs import Stats, as_trained

#: The kernel's metrics of the model as trained, when its inputs were transformed.
AS_TRAINED = {"accuracy": "heldout_accuracy_as_trained", "loss": "heldout_loss_as_trained"}


class AsTrained(torch.nn.Module):
    """The learner's model behind the transform its training inputs had: raw points in."""

    def __init__(self, model: torch.nn.Module, seen: Stats, raw: Stats) -> None:
        super().__init__()
        self.model = model
        for name, value in (
            ("seen_mean", seen.mean),
            ("seen_spread", seen.spread),
            ("raw_mean", raw.mean),
            ("raw_spread", raw.spread),
        ):
            self.register_buffer(name, value.detach().clone())

    def forward(self, points: torch.Tensor) -> torch.Tensor:
        seen = Stats(self.seen_mean, self.seen_spread)
        raw = Stats(self.raw_mean, self.raw_spread)
        return self.model(as_trained(points, seen, raw))


class Task1Measurement(Measurement):
    task_id = "task1"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.03),
        "loss": Compared("heldout_loss", False, None),
    }

    training_loss_key = "loss"

    def model(self, run: Run) -> Traceable | None:
        """The trained model, behind its inputs' transform when it was trained on
        transformed points (exactly the kernel's "as trained" evaluation)."""
        traceable = super().model(run)
        if traceable is None:
            return None
        seen, raw = self.grader.trained_on(run, traceable.module)
        if seen is None:
            return traceable
        return Traceable(AsTrained(traceable.module, seen, raw), traceable.example)

    def reported(self, metrics: Mapping[str, object], key: str) -> tuple[str, object]:
        """The kernel's "as trained" metrics when it reports them (the graph is then the
        model as trained), else the raw ones."""
        name = AS_TRAINED[key]
        if metrics.get(name) is not None:
            return name, metrics[name]
        return super().reported(metrics, key)

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        accuracy, loss = metrics.get("accuracy"), metrics.get("loss")
        accuracy_quality = ramp(accuracy, 0.5, ACCURACY_CEILING)
        if row_key == "fixed":
            if not (above(accuracy, ACCURACY_TARGET) and below(loss, LOSS_TARGET)):
                return None
            return (
                0.6 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                + 0.3 * ramp(loss, LOSS_TARGET, 0.12)
                + 0.1
            )
        if row_key in ("fixed_short", "one_fixed", "crash"):
            return accuracy_quality
        if row_key == "none_fixed":
            return 0.5 + 0.5 * accuracy_quality
        return None


MEASUREMENT = Task1Measurement()
