"""Task 2's outside measurement: the binary classifier on fresh spiral points.

NaN weights show in the graph too: its outputs are NaN and its accuracy
falls to chance.  The saturation drill (the learner's loss replayed on
saturated logits) is in-kernel evidence only; it separates rows the measured
model cannot tell apart, never lifts a row past the accuracy it supports.
"""

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
)
from whipnb.tasks.task2 import ACCURACY_TARGET
from whipnb.tasks.task2.data import make_samples
from whipnb.tasks.task2.grading import ACCURACY_CEILING, HELD_OUT_SEED, HELD_OUT_SIZE, evaluate


class Task2Measurement(Measurement):
    task_id = "task2"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {"accuracy": Compared("heldout_accuracy", True, 0.03)}

    def measure(
        self,
        model: ModelCallable,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        input_shape: tuple[int, ...] = (),
    ) -> Metrics:
        evaluation = evaluate(model, inputs, labels)  # type: ignore[arg-type]
        return {"accuracy": evaluation.accuracy, "nan_outputs": float(evaluation.nan_outputs)}

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        accuracy = metrics.get("accuracy")
        if row_key == "fixed":
            if not above(accuracy, ACCURACY_TARGET):
                return None
            return 0.9 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING) + 0.1
        if row_key == "fixed_low":
            return ramp(accuracy, 0.5, ACCURACY_TARGET)
        if row_key in ("unprotected", "not_trained", "crash"):
            return ramp(accuracy, 0.5, ACCURACY_CEILING)
        if row_key == "still_nan":
            return 1.0
        return None


MEASUREMENT = Task2Measurement()
