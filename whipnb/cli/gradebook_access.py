"""Opening the gradebook for the commands that read it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from whipnb.gradebook.store import Grading


def latest_gradings(db: str) -> list[Grading] | None:
    """One grading per learner and task (:meth:`Gradebook.latest`), or None (said why)
    without a gradebook."""
    if not Path(db).is_file():
        print(f"no gradebook at {db}: run `whipnb grade` first, or give --db")
        return None
    from whipnb.gradebook.store import Gradebook

    with Gradebook(db) as gradebook:
        return gradebook.latest()
