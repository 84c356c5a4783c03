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
import torch.nn.functional as F
from torch import nn

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
    IMAGE_SIZE,
    RESIZE_MODES,
    evaluate_held_out,
    held_out_views,
    input_format,
    orientation,
)
from whipnb.tasks.task6.grading import ACCURACY_CEILING, CHANCE, PROBE, _calls


class Scrambled(nn.Module):
    """The learner's network behind the conversion it trained with: CHW images as
    generated in, reshaped from HWC instead of permuted, then resized as the kernel's
    measurement chose (:func:`~whipnb.tasks.task6.evidence.held_out_views`), so the
    graph measured outside is the model as trained, not one it never saw."""

    def __init__(self, model: nn.Module, view: str, size: int) -> None:
        super().__init__()
        self.model, self.view, self.size = model, view, size

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        hwc = images.permute(0, 2, 3, 1)
        chw = hwc.reshape(hwc.shape[0], hwc.shape[3], hwc.shape[2], hwc.shape[1])
        if self.view == "centre crop":
            offset = (IMAGE_SIZE - self.size) // 2
            chw = chw[..., offset : offset + self.size, offset : offset + self.size]
        elif self.view in RESIZE_MODES:
            corners = {"align_corners": False} if self.view in ("bilinear", "bicubic") else {}
            chw = F.interpolate(chw, size=(self.size, self.size), mode=self.view, **corners)
        return self.model(chw)


class Task6Measurement(Measurement):
    task_id = "task6"
    held_out_seed = HELD_OUT_SEED
    held_out_size = HELD_OUT_SIZE
    sampler = make_samples
    compared = {
        "accuracy": Compared("heldout_accuracy", True, 0.06),
        "loss": Compared("heldout_loss", False, None),
    }

    def model(self, run: Run) -> Traceable | None:
        model = self.grader.trained_model(run)
        record = run.probes[PROBE].record
        train_calls, _ = _calls(record, model)
        found = input_format(next((c.input_shape for c in train_calls if c.output_shape), None))
        if model is None or found is None:
            return None
        images = self.samples(self.held_out_seed)[0]
        if found[0] == "CHW" and orientation(record.first_conv_images) == "scrambled":
            held_out = self.grader.evaluate(run, model)  # the view the kernel measured
            if held_out is not None:
                wrapped = Scrambled(model, held_out.resize, found[1])
                return Traceable(wrapped, held_out_views(images, "CHW", IMAGE_SIZE)[0][1])
        return Traceable(model, held_out_views(images, *found)[0][1])

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
