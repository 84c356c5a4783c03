"""What every task provides, and where its files live.

A task is one folder under ``whipnb/tasks`` (or a package of its own, see
:mod:`whipnb.tasks`): ``buggy.py`` (the script learners debug, the graded
cell's body), ``solution.py`` (a reference fix), ``README.md`` (the notebook's
introduction), ``data.py`` (the data, shared by the script and the grader's
held-out set), ``__init__.py`` with a :class:`Task` subclass instance named
``TASK`` holding the rubric and hints, and ``grading.py`` with the task's
:class:`~whipnb.tasks.template.Grader`.

This module and every task's ``__init__.py`` import no torch: listing tasks,
exporting a gradebook or printing ``--help`` never pays for it.  The grading
code is imported the first time a run is probed or assessed.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from whipnb.core.rubric import Assessment, Row

if TYPE_CHECKING:
    from whipnb.core.instrument import Probe
    from whipnb.core.runner import Run
    from whipnb.tasks.template import Grader


class Task:
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
    #: The grading code, ``module:Class``: a :class:`~whipnb.tasks.template.Grader`
    #: subclass; a module starting with ``.`` is relative to this task's package.
    grading: str = ".grading:Grader"

    @property
    def package(self) -> str:
        """The package the task's files live in (its ``cases``, its ``grading``)."""
        module = sys.modules[type(self).__module__]
        return (
            module.__name__ if hasattr(module, "__path__") else module.__name__.rpartition(".")[0]
        )

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

    def row(self, key: str) -> Row:
        for row in self.rows:
            if row.key == key:
                return row
        raise KeyError(f"{self.id} has no rubric row {key!r}")

    @property
    def crash_row(self) -> Row:
        """The lowest row: where crashes and every non-graded status land."""
        return min(self.rows, key=lambda row: row.high)

    @cached_property
    def grader(self) -> Grader:
        """The task's grading code, imported (with torch) on first use."""
        module_name, _, class_name = self.grading.partition(":")
        module = importlib.import_module(module_name, package=self.package)
        return getattr(module, class_name)(self)

    def probes(self) -> dict[str, Probe]:
        """The probes for one run, freshly made each time.

        They are entered around the learner's code (inside the standard
        instrumentation) and handed back to :meth:`assess` as ``run.probes``.
        """
        return self.grader.probes()

    def assess(self, run: Run) -> Assessment:
        """Judge a finished run from its evidence; must not raise for any submission."""
        return self.grader.assess(run)

    def guarded(self) -> list[tuple[str, Any]]:
        """Objects besides the task and its rows that the score depends on, for the
        integrity guard: the grader, its class and its module (whipnb watches its own
        modules anyway; a plugin task's are watched through this)."""
        grader = self.grader
        module = sys.modules[type(grader).__module__]
        return [
            (f"the {self.id} grader", grader),
            (f"{type(grader).__module__}.{type(grader).__qualname__}", type(grader)),
            (module.__name__, module),
        ]
