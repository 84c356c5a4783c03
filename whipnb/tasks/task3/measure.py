"""Task 3's outside measurement: the CNN on fresh symbol images.

Leakage and piled-up graphs are in-kernel evidence; the measured accuracy
on images nobody has seen bounds what they can earn.
"""

from __future__ import annotations

from collections.abc import Mapping

from whipnb.core.rubric import ramp
from whipnb.tasks.measure import (
    Compared,
    Measurement,
    above,
)
from whipnb.tasks.task3 import ACCURACY_TARGET
from whipnb.tasks.task3.data import make_samples
from whipnb.tasks.task3.grading import ACCURACY_CEILING, HELD_OUT_SEED, HELD_OUT_SIZE


class Task3Measurement(Measurement):
    task_id = "task3"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.03),
        "loss": Compared("heldout_loss", False, None),
    }

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        accuracy = metrics.get("accuracy")
        if row_key == "fixed":
            if not above(accuracy, ACCURACY_TARGET):
                return None
            return 0.85 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING) + 0.15
        if row_key == "fixed_short":
            return ramp(accuracy, 0.5, ACCURACY_TARGET)
        if row_key == "one_fixed":
            return ramp(accuracy, 0.5, ACCURACY_CEILING)
        if row_key in ("none_fixed", "crash"):
            return ramp(accuracy, 0.25, ACCURACY_CEILING)
        if row_key == "oom":
            return 0.5 + 0.5 * ramp(accuracy, 0.25, ACCURACY_CEILING)
        return None


MEASUREMENT = Task3Measurement()
