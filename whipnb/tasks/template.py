"""The grading template every task's ``grading.py`` fills in.

A :class:`Grader` is made for one :class:`~whipnb.tasks.base.Task` and turns
a finished run into an :class:`~whipnb.core.rubric.Assessment`.  It imports
torch (through the probes and the evidence helpers), which is why it lives
apart from the task's light metadata.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from whipnb.core.instrument import Probe
from whipnb.core.rubric import Assessment, Row
from whipnb.core.runner import Run

if TYPE_CHECKING:
    from whipnb.tasks.base import Task


class Grader(ABC):
    """A task's grading code: its probes and its assessment of a run."""

    def __init__(self, task: Task) -> None:
        self.task = task

    def row(self, key: str) -> Row:
        return self.task.row(key)

    def probes(self) -> dict[str, Probe]:
        """Extra, task-specific probes for one run, freshly made each time."""
        return {}

    @abstractmethod
    def assess(self, run: Run) -> Assessment:
        """Judge a finished run from its evidence; must not raise for any submission."""
