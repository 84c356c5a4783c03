"""What every task provides, and where its files live.

A task is one folder under ``whipnb/tasks``: ``buggy.py`` (the script learners
debug, the graded cell's body), ``solution.py`` (a reference fix),
``README.md`` (the notebook's introduction), ``data.py`` (the data, shared by
the script and the grader's held-out set) and ``__init__.py`` with a
:class:`Task` subclass instance named ``TASK`` holding the rubric and hints.
"""

from __future__ import annotations

import importlib
import inspect
from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whipnb.core.rubric import Assessment, Row
from whipnb.core.runner import Run

if TYPE_CHECKING:
    from whipnb.tasks.measure import Measurement


class Task(ABC):
    id: str
    title: str
    difficulty: str
    #: The seed's rubric table, as rows; a task may add rows for conditions the
    #: seed leaves open, always between the seed's ranges.
    rows: tuple[Row, ...]
    hints: tuple[str, ...]
    #: Success criteria shown next to the achieved metrics, keyed by metric name.
    targets: dict[str, str]
    #: Wall-clock budget for headless grading of one submission.
    timeout_s: float = 120.0

    @cached_property
    def directory(self) -> Path:
        return Path(inspect.getfile(type(self))).parent

    def _file(self, name: str) -> str:
        return (self.directory / name).read_text(encoding="utf-8")

    @cached_property
    def buggy_source(self) -> str:
        return self._file("buggy.py")

    @cached_property
    def solution_source(self) -> str:
        return self._file("solution.py")

    @cached_property
    def description(self) -> str:
        return self._file("README.md")

    @cached_property
    def measurement(self) -> Measurement:
        """How the trained model is measured outside the kernel: the ``MEASUREMENT`` of the
        task's ``measure`` module (see :mod:`whipnb.tasks.measure`)."""
        return importlib.import_module(f"{type(self).__module__}.measure").MEASUREMENT

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"{self.id} has no rubric row {key!r}")

    @property
    def crash_row(self) -> Row:
        """The lowest row: where crashes and every non-graded status land."""
        return min(self.rows, key=lambda row: row.high)

    def probes(self) -> dict[str, AbstractContextManager[Any]]:
        """Extra, task-specific probes for one run, freshly made each time.

        They are entered around the learner's code (inside the standard
        instrumentation) and handed back to :meth:`assess` as ``run.probes``.
        """
        return {}

    @abstractmethod
    def assess(self, run: Run) -> Assessment:
        """Judge a finished run from its evidence; must not raise for any submission."""
