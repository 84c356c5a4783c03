"""Rubric machinery shared by every task.

A task turns the evidence of a run into an :class:`Assessment`: which row of
the seed's rubric table the submission meets, how well it meets it (a quality
in [0, 1]) and the findings that justify both.  The score is then the row's
range interpolated at that quality, so it is continuous inside a band and
deterministic: the same evidence always gives the same digits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from whipnb.core.result import GRADED, Check

SCORE_DIGITS = 4


@dataclass(frozen=True)
class Row:
    """One row of a seed rubric table: a condition and the score range it earns."""

    key: str
    condition: str
    low: float
    high: float

    def score(self, quality: float) -> float:
        quality = clamp01(quality)
        return round(self.low + quality * (self.high - self.low), SCORE_DIGITS)


@dataclass
class Assessment:
    """A task's verdict on one run, before it becomes a :class:`~whipnb.core.result.Result`."""

    row: Row
    quality: float
    checks: list[Check]
    metrics: dict[str, Any] = field(default_factory=dict)
    message: str = ""
    #: ``graded`` normally; a task may report ``memory`` when its budget was exceeded.
    status: str = GRADED

    @property
    def score(self) -> float:
        return self.row.score(self.quality)


def clamp01(value: float) -> float:
    """Clip to [0, 1]; NaN counts as no quality at all."""
    if value is None or math.isnan(value):
        return 0.0
    return min(max(value, 0.0), 1.0)


def ramp(value: float | None, worst: float, best: float) -> float:
    """Map ``value`` linearly so that ``worst`` gives 0 and ``best`` gives 1, clipped.

    Works in either direction (``best`` may be below ``worst`` for losses), which
    lets every task express "better metric, higher score" in one call.
    """
    if value is None or not math.isfinite(value):
        return 0.0
    return clamp01((value - worst) / (best - worst))


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else math.nan
