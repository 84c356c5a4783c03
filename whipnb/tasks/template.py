"""The grading template every task's ``grading.py`` fills in.

A :class:`Grader` is made for one :class:`~whipnb.tasks.base.Task` and turns a
finished run into an :class:`~whipnb.core.rubric.Assessment`.  What every task
needs is done here, once, in this order:

1. probes: the task's own (:meth:`Grader.task_probes`) and the watch on data
   that must stay unseen (:meth:`Grader.data_watch`, on by default: the
   script's validation split and the grader's held-out inputs);
2. the trained model (:meth:`Grader.trained_model`: the module whose
   parameters the optimizers held) and its measurement on the grader's own
   held-out data (:meth:`Grader.evaluate`, on :meth:`Grader.held_out`, drawn
   once with the task's own seed and handed out as copies);
3. the task's own evidence (:meth:`Grader.gather`) and checks
   (:meth:`Grader.checks`), between the ``runs`` check and the ``reports``
   cross-check of the printed lines, which any rule can look up by id;
4. the verdict: a crash lands in the crash row (:meth:`Grader.crashed`),
   anything else is the task's :meth:`Grader.judge`.

A task implements the hooks it needs; the six built-in tasks show the range.
This module imports torch, which is why it lives apart from the task's light
metadata.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from whipnb.core.instrument import Probe, TrainingDataWatch
from whipnb.core.result import GRADED, Check
from whipnb.core.rubric import Assessment, Row, ramp
from whipnb.core.runner import Run, single_thread
from whipnb.tasks.common import (
    HELD_OUT_DATA,
    VALIDATION_SPLIT,
    crash_check,
    evaluate_classifier,
    find_model,
    reporting_check,
)

if TYPE_CHECKING:
    from whipnb.tasks.base import Task

#: The probe name of the watch on data that must stay unseen.
DATA_WATCH = "data_watch"


@dataclass(frozen=True)
class Verdict:
    """The rubric row a run meets (by key), how well, and what to tell the learner."""

    row: str
    quality: float
    message: str
    #: ``graded`` normally; a task may report ``memory`` when its budget was exceeded.
    status: str = GRADED


@dataclass
class Graded:
    """What a task's hooks judge: the run, the model it trained, that model measured on
    the grader's held-out data (whatever :meth:`Grader.evaluate` returns), and the
    task's own evidence (whatever :meth:`Grader.gather` returns)."""

    run: Run
    model: torch.nn.Module | None
    evaluation: Any
    facts: Any = None

    @property
    def crashed(self) -> bool:
        return self.run.crashed


class Checks(list[Check]):
    """The checks of one run, in order, each also found by its id."""

    def __init__(self, checks: Iterable[Check]) -> None:
        super().__init__(checks)

    def by_id(self, check_id: str) -> Check:
        for check in self:
            if check.id == check_id:
                return check
        raise KeyError(f"no check {check_id!r} among {[check.id for check in self]}")

    def passed(self, check_id: str) -> bool:
        return self.by_id(check_id).passed


class Grader(ABC):
    """A task's grading code: the template (see the module doc) and the task's hooks.

    One grader serves every run of its task and keeps no state per run: what a run
    produced lives on :class:`Graded`, and the integrity guard watches the grader
    like the task, so an attribute that changes during an assessment voids it.
    """

    #: The rubric row a crash lands in; ``None`` when the task's own :meth:`judge`
    #: grades crashes too (task 6 counts the bugs fixed on the way to the crash).
    crash_row: str | None = "crash"
    #: The printed metric line the ``reports`` check compares with the measurement.
    reported_metric = "VAL_ACC"
    #: The held-out metric's range over which :meth:`metric_quality` climbs from 0 to 1.
    chance = 0.5
    ceiling = 1.0
    #: Assess on one intra-op thread (a task whose evidence reruns the model many times).
    single_threaded = False
    #: How the data watch names what it protects (its findings quote them).
    validation_name = VALIDATION_SPLIT
    held_out_name = HELD_OUT_DATA

    def __init__(self, task: Task) -> None:
        self.task = task
        self._held_out: tuple[torch.Tensor, ...] | None = None

    def row(self, key: str) -> Row:
        return self.task.row(key)

    # --- the grader's own data ---------------------------------------------------------

    @abstractmethod
    def make_held_out(self) -> tuple[torch.Tensor, ...]:
        """The grader's held-out data, ``(inputs, labels)``, drawn with its own seed."""

    def held_out(self) -> tuple[torch.Tensor, ...]:
        """The held-out data, handed out as copies (a learner's model cannot alter what
        the next measurement sees)."""
        return tuple(tensor.clone() for tensor in self._drawn_held_out())

    def _drawn_held_out(self) -> tuple[torch.Tensor, ...]:
        """Drawn once, the first time probes are made: before the integrity guard's
        snapshot, which would otherwise count the new attribute as a change."""
        if self._held_out is None:
            self._held_out = tuple(self.make_held_out())
        return self._held_out

    def validation_inputs(self) -> torch.Tensor | None:
        """The inputs of the validation split the script is given, if it is given one."""
        return None

    def unseen_data(self) -> dict[str, torch.Tensor]:
        """The data the run must not train on, by the name its findings use: the
        validation split (if any) and the grader's held-out inputs."""
        validation = self.validation_inputs()
        unseen = {} if validation is None else {self.validation_name: validation}
        return {**unseen, self.held_out_name: self._drawn_held_out()[0]}

    def own_validation(self, graded: Graded) -> tuple[torch.Tensor, torch.Tensor] | None:
        """For a script that makes its validation split itself (so it is known only after
        the run): ``(its inputs, the inputs the model trained on)``; the data watch then
        treats that split like a given one.  ``None`` when the split was given."""
        return None

    def is_held_out(self, name: str) -> bool:
        """Whether training on the set called ``name`` voids the run (the grader's own
        data) rather than capping it (the script's validation split)."""
        return name == self.held_out_name

    # --- probes ------------------------------------------------------------------------

    def task_probes(self) -> dict[str, Probe]:
        """The task's own probes for one run, freshly made each time."""
        return {}

    def data_watch(self) -> TrainingDataWatch | None:
        """The watch on :meth:`unseen_data`; ``None`` turns it off."""
        unseen = self.unseen_data()
        return TrainingDataWatch(unseen, held_out=tuple(n for n in unseen if self.is_held_out(n)))

    def probes(self) -> dict[str, Probe]:
        """Every probe of one run: the task's own, then the data watch."""
        self._drawn_held_out()
        probes = self.task_probes()
        watch = self.data_watch()
        return probes if watch is None else {**probes, DATA_WATCH: watch}

    # --- evidence ----------------------------------------------------------------------

    def trained_model(self, run: Run) -> torch.nn.Module | None:
        """The module that was trained (see :func:`whipnb.tasks.common.find_model`)."""
        return find_model(run)

    def evaluate(self, run: Run, model: torch.nn.Module | None) -> Any:
        """The model measured on the grader's held-out data (a classifier by default)."""
        return evaluate_classifier(model, *self.held_out())

    def headline(self, evaluation: Any) -> float | None:
        """The one held-out number the reports check and :meth:`metric_quality` use."""
        return evaluation.accuracy

    def metric_quality(self, graded: Graded) -> float:
        """The headline number from :attr:`chance` (0) to :attr:`ceiling` (1)."""
        return ramp(self.headline(graded.evaluation), self.chance, self.ceiling)

    def gather(self, graded: Graded) -> Any:
        """The task's own evidence, kept as ``graded.facts`` for the other hooks."""
        return None

    # --- checks ------------------------------------------------------------------------

    def runs_check(self, graded: Graded) -> Check:
        """The first check: did the script run to the end?"""
        return crash_check(graded.run)

    @abstractmethod
    def checks(self, graded: Graded) -> list[Check]:
        """The task's own checks, between the ``runs`` and ``reports`` checks."""

    def reported_value(self, graded: Graded) -> float | None:
        """The measurement the printed :attr:`reported_metric` must agree with."""
        return self.headline(graded.evaluation)

    def reports_check(self, graded: Graded) -> Check:
        """The last check: the printed lines cross-checked against the run."""
        return reporting_check(graded.run, self.reported_metric, self.reported_value(graded))

    @abstractmethod
    def metrics(self, graded: Graded) -> dict[str, Any]:
        """The key metrics shown against the task's targets."""

    # --- the verdict -------------------------------------------------------------------

    def verdict(self, graded: Graded, checks: Checks) -> Verdict:
        """A crash lands in :attr:`crash_row`; anything else is for :meth:`judge`."""
        if graded.crashed and self.crash_row is not None:
            return self.crashed(graded)
        return self.judge(graded, checks)

    def crashed(self, graded: Graded) -> Verdict:
        """The crash row, rising with what the model still learned before the crash."""
        row = self.crash_row if self.crash_row is not None else self.task.crash_row.key
        return Verdict(row, self.metric_quality(graded), self.crash_message(graded))

    def crash_message(self, graded: Graded) -> str:
        return f"The script crashed ({graded.run.error_text}); fix the error first."

    @abstractmethod
    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        """The rubric row, the quality within it and the message, for a run the
        template does not decide itself."""

    # --- the template ------------------------------------------------------------------

    def _watch_own_validation(self, graded: Graded) -> None:
        """One rule for every task: training on the validation split caps the run, also
        when the script made the split itself (the core applies the cap)."""
        own = self.own_validation(graded)
        watch = graded.run.probes.get(DATA_WATCH)
        if own is None or not isinstance(watch, TrainingDataWatch):
            return
        finding = watch.protect_after_run(self.validation_name, *own)
        if finding:
            graded.run.tampering.append(finding)

    def assess(self, run: Run) -> Assessment:
        """Judge a finished run from its evidence (see the module doc for the order)."""
        with single_thread() if self.single_threaded else contextlib.nullcontext():
            model = self.trained_model(run)
            graded = Graded(run, model, self.evaluate(run, model))
            graded.facts = self.gather(graded)
            self._watch_own_validation(graded)
            own = self.checks(graded)
            checks = Checks([self.runs_check(graded), *own, self.reports_check(graded)])
            verdict = self.verdict(graded, checks)
            metrics = self.metrics(graded)
        row = self.row(verdict.row)
        return Assessment(
            row, verdict.quality, list(checks), metrics, verdict.message, verdict.status
        )
