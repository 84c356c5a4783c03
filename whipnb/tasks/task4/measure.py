"""Task 4's outside measurement: the tagger's logits read with the task's fixed rule.

The learner's ``predict`` is Python and stays in the kernel; what is measured
outside is the model's outputs read with sigmoid > 0.5 (or > 0.5 when they are
already probabilities), exactly as the in-kernel ``heldout_f1`` reads them.
Whether ``predict`` itself is right is in-kernel evidence: it separates rows
but never lifts one past the F1 the measured model supports.
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
from whipnb.tasks.task4 import F1_TARGET
from whipnb.tasks.task4.data import make_samples
from whipnb.tasks.task4.evaluation import evaluate_model
from whipnb.tasks.task4.grading import BCE_BEST, BCE_WORST, F1_CEILING, HELD_OUT_SEED, HELD_OUT_SIZE


class Task4Measurement(Measurement):
    task_id = "task4"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {
        "f1": Compared("heldout_f1", True, 0.03),
        "bce": Compared("heldout_bce", False, None),
    }

    def measure(
        self,
        model: ModelCallable,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        input_shape: tuple[int, ...] = (),
    ) -> Metrics:
        evaluation = evaluate_model(model, inputs, labels)  # type: ignore[arg-type]
        return {"f1": evaluation.f1, "bce": evaluation.bce}

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        f1, bce = metrics.get("f1"), metrics.get("bce")
        f1_quality = ramp(f1, 0.4, F1_CEILING)
        if row_key == "fixed":
            if not above(f1, F1_TARGET):
                return None
            return (
                0.7 * ramp(f1, F1_TARGET, F1_CEILING) + 0.2 * ramp(bce, BCE_WORST, BCE_BEST) + 0.1
            )
        if row_key == "fixed_short":
            return ramp(f1, 0.3, F1_TARGET)
        if row_key == "loss_fixed":
            return 0.5 * f1_quality + 0.5
        if row_key == "wrong_loss":
            return 0.65 + 0.35 * f1_quality
        if row_key == "crash":
            return f1_quality
        return None


MEASUREMENT = Task4Measurement()
