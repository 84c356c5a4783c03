"""Task 5's outside measurement: the transfer network on fresh sensor readings.

A head trained on readings transformed outside the model (standardised, rescaled)
is measured on raw readings, in the kernel as here; its training losses then need
not fit its raw held-out loss, which is reported, not voided, while the measured
accuracy shows a trained model (:attr:`learned_accuracy`).

The bug itself (frozen parameters handed to the optimizer) leaves no trace in
the trained model: the buggy script trains its head exactly as the fix does.
Which of the rows a well-trained model lands in therefore rests on in-kernel
evidence; the measurement bounds each row by the accuracy and loss it supports.
"""

from __future__ import annotations

from collections.abc import Mapping

from whipnb.core.rubric import ramp
from whipnb.tasks.measure import (
    Compared,
    Measurement,
    above,
)
from whipnb.tasks.task5 import ACCURACY_TARGET
from whipnb.tasks.task5.data import make_samples
from whipnb.tasks.task5.grading import (
    ACCURACY_CEILING,
    CHANCE,
    HELD_OUT_SEED,
    HELD_OUT_SIZE,
)


class Task5Measurement(Measurement):
    task_id = "task5"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.03),
        "loss": Compared("heldout_loss", False, None),
    }

    training_loss_key = "loss"
    #: The best of 200 randomly initialised heads on the pretrained features measures
    #: 0.53 (a linear model on the raw readings about 0.52); a head trained on readings
    #: rescaled outside the model keeps well above this on raw ones (0.81 for x / 10).
    learned_accuracy = 0.70

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        accuracy, loss = metrics.get("accuracy"), metrics.get("loss")
        accuracy_quality = ramp(accuracy, CHANCE, ACCURACY_CEILING)
        if row_key == "fixed":
            if not above(accuracy, ACCURACY_TARGET):
                return None
            return (
                0.6 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                + 0.3 * ramp(loss, 0.45, 0.15)
                + 0.1
            )
        if row_key == "fixed_short":
            return ramp(accuracy, CHANCE, ACCURACY_TARGET)
        if row_key == "partial":
            return 0.8 + 0.2 * accuracy_quality
        if row_key == "none_fixed":
            return 0.5 + 0.5 * accuracy_quality
        if row_key == "crash":
            return accuracy_quality
        return None


MEASUREMENT = Task5Measurement()
