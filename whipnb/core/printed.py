"""Tolerant parsing of the metric lines learners are asked to print.

Printed lines are shown and cross-checked against the instrumentation, never
trusted alone, so the parser can be generous: ``LOSSES:[...]``,
``LOSSES: [tensor(0.69), np.float32(0.5)]`` and ``VAL_ACC = 0.93`` all parse.
"""

from __future__ import annotations

import math
import re

_LINE = re.compile(r"^\s*([A-Z][A-Z0-9_]*)\s*[:=]\s*(.*?)\s*$")
_NUMBER = re.compile(
    r"(?<![A-Za-z_])[-+]?(?:nan|inf|(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)", re.IGNORECASE
)


def parse_numbers(text: str) -> list[float]:
    """Every number in ``text``, in order; ``tensor(0.5)`` and ``np.float32(1e-3)`` included."""
    text = re.sub(r"dtype\s*=\s*[\w.]+", "", text)
    text = re.sub(r"(?:float|int)(?:16|32|64)\b", "", text)
    return [float(token) for token in _NUMBER.findall(text)]


def parse_printed_metrics(stdout: str) -> dict[str, list[float]]:
    """Map each ``KEY:`` printed in upper case to the numbers of its last occurrence."""
    found: dict[str, list[float]] = {}
    for line in stdout.splitlines():
        match = _LINE.match(line)
        if match:
            numbers = parse_numbers(match.group(2))
            if numbers:
                found[match.group(1)] = numbers
    return found


def printed_scalar(printed: dict[str, list[float]], key: str) -> float | None:
    values = printed.get(key)
    return values[-1] if values else None


def is_finite_list(values: list[float]) -> bool:
    return all(math.isfinite(value) for value in values)
