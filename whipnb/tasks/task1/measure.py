"""Task 1's outside measurement: the linear classifier on fresh 2-D points."""

from __future__ import annotations

from collections.abc import Mapping

import torch

from whipnb.core.rubric import ramp
from whipnb.tasks.measure import (
    Compared,
    Measurement,
    Metrics,
    ModelCallable,
    above,
    below,
    classifier_metrics,
)
from whipnb.tasks.task1 import ACCURACY_TARGET, LOSS_TARGET
from whipnb.tasks.task1.data import make_samples
from whipnb.tasks.task1.grading import ACCURACY_CEILING, HELD_OUT_SEED, HELD_OUT_SIZE


class Task1Measurement(Measurement):
    task_id = "task1"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.03),
        "loss": Compared("heldout_loss", False, None),
    }

    training_loss_key = "loss"

    def make_samples(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(self.held_out_size, seed)

    def measure(
        self,
        model: ModelCallable,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        input_shape: tuple[int, ...] = (),
    ) -> Metrics:
        return classifier_metrics(model, inputs, labels)

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
