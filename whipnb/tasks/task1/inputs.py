"""Task 1's evidence on inputs: what the model was really trained on.

A learner may standardise (or otherwise rescale) the points outside the model
before training.  The trained model then only works on points transformed the
same way, and measuring it on the grader's raw points would blame the learning
rate for a low score.  :class:`InputStatsProbe` records, per module, the mean
and spread of every 2-feature batch it was trained on (forward passes with
gradients enabled); :func:`preprocessing` compares them with the raw data's, and
:func:`as_trained` maps the grader's raw points onto the statistics the model
saw (per feature, affine), so the model can be measured as it was trained.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from whipnb.core.instrument import Probe

FEATURES = 2
#: A trained-on mean further than this share of the raw spread from the raw mean,
#: or a spread outside these ratios of the raw one, means the inputs were transformed.
MEAN_SHIFT = 0.25
SPREAD_RATIOS = (0.8, 1.25)


class InputStatsProbe(Probe):
    """Context manager: per-module running sums of the 2-feature inputs trained on."""

    def __init__(self) -> None:
        self.sums: dict[int, tuple[int, torch.Tensor, torch.Tensor]] = {}
        self._handle: Any = None

    def __enter__(self) -> InputStatsProbe:
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._forwarded)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.remove()

    def _forwarded(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if not torch.is_grad_enabled() or not inputs:
            return
        batch = inputs[0]
        if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
            return
        if batch.dim() != 2 or batch.shape[1] != FEATURES or len(batch) == 0:
            return
        rows = batch.detach().double()
        empty = torch.zeros(FEATURES, dtype=torch.float64)
        count, total, squares = self.sums.get(id(module), (0, empty, empty))
        self.sums[id(module)] = (
            count + len(rows),
            total + rows.sum(0),
            squares + rows.pow(2).sum(0),
        )

    def stats(self, module: torch.nn.Module | None) -> Stats | None:
        """Mean and spread of what ``module`` was trained on, if it saw 2-feature batches."""
        if module is None or id(module) not in self.sums:
            return None
        count, total, squares = self.sums[id(module)]
        mean = total / count
        spread = (squares / count - mean.pow(2)).clamp_min(0).sqrt()
        return Stats(mean, spread)


@dataclass(frozen=True)
class Stats:
    mean: torch.Tensor
    spread: torch.Tensor

    def describe(self) -> str:
        means = ", ".join(f"{v:.2f}".replace("-0.00", "0.00") for v in self.mean.tolist())
        spreads = ", ".join(f"{v:.2f}" for v in self.spread.tolist())
        return f"feature means {means}, spreads {spreads}"


def raw_stats(points: torch.Tensor) -> Stats:
    rows = points.double()
    return Stats(rows.mean(0), rows.std(0, unbiased=False))


def preprocessing(seen: Stats | None, raw: Stats) -> bool:
    """Were the inputs trained on transformed away from the raw points' scale?"""
    if seen is None:
        return False
    shift = ((seen.mean - raw.mean).abs() / raw.spread).max()
    ratio = seen.spread / raw.spread
    low, high = SPREAD_RATIOS
    return bool(shift > MEAN_SHIFT or (ratio < low).any() or (ratio > high).any())


def as_trained(points: torch.Tensor, seen: Stats, raw: Stats) -> torch.Tensor:
    """The raw ``points`` moved feature by feature onto the statistics the model saw."""
    standard = (points.double() - raw.mean) / raw.spread
    return (standard * seen.spread + seen.mean).to(points.dtype)
