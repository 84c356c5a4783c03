"""Task 6's outside measurement: the CNN on fresh stroke images, in the format it was fed.

The traced example's shape says the layout and size the network takes; the
images are converted the way the in-kernel assessment converts them (every
plausible resize tried, the best picked on the first 250 images).  The four
bug verdicts are in-kernel evidence: they separate the rows below the top two,
which the measured accuracy bounds.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.measure import (
    Compared,
    Measurement,
    Metrics,
    ModelCallable,
    Traceable,
    above,
)
from whipnb.tasks.task6 import ACCURACY_TARGET
from whipnb.tasks.task6.data import make_samples
from whipnb.tasks.task6.evidence import (
    HELD_OUT_SEED,
    HELD_OUT_SIZE,
    evaluate_held_out,
    held_out_views,
    input_format,
)
from whipnb.tasks.task6.grading import ACCURACY_CEILING, CHANCE, PROBE, _calls


class Task6Measurement(Measurement):
    task_id = "task6"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.06),
        "loss": Compared("heldout_loss", False, None),
    }

    def make_samples(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(self.held_out_size, seed)

    def model(self, run: Run) -> Traceable | None:
        model = self.grader.trained_model(run)
        train_calls, _ = _calls(run.probes[PROBE].record, model)
        found = input_format(next((c.input_shape for c in train_calls if c.output_shape), None))
        if model is None or found is None:
            return None
        views = held_out_views(self.samples(self.held_out_seed)[0], *found)
        return Traceable(model, views[0][1])

    def measure(
        self,
        model: ModelCallable,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        input_shape: tuple[int, ...] = (),
    ) -> Metrics:
        held_out = evaluate_held_out(model, input_shape, inputs, labels)  # type: ignore[arg-type]
        if held_out is None:
            return {"accuracy": None, "loss": None}
        return {"accuracy": held_out.evaluation.accuracy, "loss": held_out.evaluation.loss}

    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        accuracy = metrics.get("accuracy")
        if row_key == "all_fixed":
            if not above(accuracy, ACCURACY_TARGET):
                return None
            return 0.85 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING) + 0.15
        if row_key == "all_fixed_short":
            return ramp(accuracy, CHANCE, ACCURACY_TARGET)
        if row_key in ("three_fixed", "two_fixed", "one_fixed", "none_fixed"):
            return 0.5 + 0.5 * ramp(accuracy, CHANCE, 0.95)
        return None


MEASUREMENT = Task6Measurement()
