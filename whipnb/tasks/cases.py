"""The vocabulary of each task's ``cases.py``: calibration submissions, each a concrete
script and the rubric row its score must land in (graded by ``whipnb.authoring.calibration``
and by the tests)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Case:
    """A submission and the rubric row its score must land in."""

    name: str
    row: str
    source: str
    note: str = ""


def edit(source: str, *replacements: tuple[str, str]) -> str:
    """Apply each (old, new) replacement; fails loudly when ``old`` is not in ``source``."""
    for old, new in replacements:
        if old not in source:
            raise ValueError(f"calibration edit did not apply: {old!r} is not in the script")
        source = source.replace(old, new)
    return source
