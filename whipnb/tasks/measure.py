"""What each task measures of a trained model, the same way inside and outside the kernel.

Headless, the score must not rest on anything the learner's kernel can write.
So the kernel only exports the trained model as a graph without Python code
(TorchScript, :mod:`whipnb.notebook.export`), and a fresh process that never runs
learner code measures that graph (:mod:`whipnb.headless.measure`) twice: on the
task's public held-out set (the one the in-kernel assessment used, so its
reported metrics must come out the same) and on a set drawn from the same
distribution with a seed derived from an instructor secret (which no learner
code can regenerate).  A :class:`Measurement` says, per task:

* which model is measured and with which example input it is traced
  (:meth:`Measurement.model`, in the kernel),
* how a model callable is measured on samples (:meth:`Measurement.measure`,
  used in both processes, so both give the same digits on the same data),
* the highest score each rubric row can give a model with those metrics,
  whatever the in-kernel evidence says (:meth:`Measurement.supported`).
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch

from whipnb.core.runner import Run
from whipnb.tasks.common import evaluate_classifier
from whipnb.tasks.template import Grader

Metrics = dict[str, float | None]
ModelCallable = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Traceable:
    """The model to export and an example input to trace it with (the measured format)."""

    module: torch.nn.Module
    example: torch.Tensor


@dataclass(frozen=True)
class Compared:
    """A measured metric: its key in the result bundle's metrics, which way is better,
    how far an honest model's value may move between two held-out sets of this size
    (sampling noise; None: not compared across sets, as a heavy-tailed loss, where a
    few confident mistakes move the mean more than any bound worth having), and how
    far the kernel's value may differ on the same set."""

    bundle_key: str
    higher_is_better: bool
    noise: float | None
    same_set_tolerance: float = 2e-3


def secret_seed(secret: str, task_id: str) -> int:
    """The held-out seed for ``task_id`` under ``secret``: deterministic, unguessable."""
    digest = hashlib.sha256(f"whipnb-held-out:{task_id}:{secret}".encode()).digest()
    return int.from_bytes(digest[:7], "big")


class Measurement(ABC):
    """A task's outside measurement (see the module)."""

    #: The task measured (its grader locates the model and holds the public held-out set).
    task_id: str
    #: The public seed and size of the in-kernel held-out set.
    held_out_seed: int
    held_out_size: int
    #: The metrics :meth:`measure` returns that are compared with the kernel's.
    compared: Mapping[str, Compared]
    #: A measured loss that the recorded training losses must be consistent with, for
    #: models that cannot overfit much (None: the task's losses are not comparable).
    training_loss_key: str | None = None
    #: A measured accuracy, on both held-out sets, that no untrained model of the task
    #: reaches: a model above it was trained, so training losses that do not fit its
    #: loss on raw held-out data come from inputs transformed outside it, not from
    #: another run, and are reported instead of voiding the run (None: always voided).
    learned_accuracy: float | None = None

    #: The task's ``data.make_samples(n, seed)``: its data distribution.
    sampler: Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]

    def make_samples(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``held_out_size`` samples and labels from the task's data distribution."""
        return type(self).sampler(self.held_out_size, seed)

    @property
    def grader(self) -> Grader:
        from whipnb.tasks import get_task  # the registry imports the tasks, which import this

        return get_task(self.task_id).grader

    def samples(self, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The public held-out set exactly as the grader draws it, or a set for ``seed``."""
        if seed == self.held_out_seed:
            inputs, labels = self.grader.held_out()[:2]
            return inputs, labels
        return self.make_samples(seed)

    def shows_learning(
        self, public: Mapping[str, float | None], secret: Mapping[str, float | None]
    ) -> bool:
        """Does the measured model show, by itself, that it was trained?"""
        if self.learned_accuracy is None:
            return False
        return all(above(m.get("accuracy"), self.learned_accuracy) for m in (public, secret))

    def reported(self, metrics: Mapping[str, object], key: str) -> tuple[str, object]:
        """The kernel's name and value of the measured metric ``key``, for the model it
        exported."""
        name = self.compared[key].bundle_key
        return name, metrics.get(name)

    def model(self, run: Run) -> Traceable | None:
        """The model the assessment measured and the input it is traced with, or None."""
        model = self.grader.trained_model(run)
        return None if model is None else Traceable(model, self.samples(self.held_out_seed)[0])

    def measure(
        self,
        model: ModelCallable,
        inputs: torch.Tensor,
        labels: torch.Tensor,
        input_shape: tuple[int, ...] = (),
    ) -> Metrics:
        """The metrics of ``model`` on samples as :meth:`samples` returns them, fed in the
        format of ``input_shape`` (the traced example's shape); never raises.  By default
        a classifier's accuracy and loss."""
        return classifier_metrics(model, inputs, labels)

    @abstractmethod
    def supported(self, row_key: str, metrics: Mapping[str, float | None]) -> float | None:
        """The highest quality (0..1) row ``row_key`` can reach with these measured
        metrics, the in-kernel evidence assumed as favourable as possible; None when the
        measured model rules the row out (its condition needs targets it misses)."""


def classifier_metrics(model: ModelCallable, inputs: torch.Tensor, labels: torch.Tensor) -> Metrics:
    """Accuracy and cross-entropy, exactly as the in-kernel assessment computes them."""
    evaluation = evaluate_classifier(model, inputs, labels)  # type: ignore[arg-type]
    return {"accuracy": evaluation.accuracy, "loss": evaluation.loss}


def above(value: float | None, target: float) -> bool:
    return value is not None and math.isfinite(value) and value > target


def below(value: float | None, target: float) -> bool:
    return value is not None and math.isfinite(value) and value < target
