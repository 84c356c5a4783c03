"""Task 6: a CNN whose data, labels and validation do not match what it expects.

Four bugs: 32x32 images for an fc layer sized for 28x28, HWC images for a
CHW network, integer one-hot labels for CrossEntropyLoss, and single
validation images without a batch dimension.  Each stops the script with its
own error, so the grader counts fixed bugs from behaviour: the shapes that
reached the first convolution, the fc layer and the loss (see ``probe.py``),
the objects the script leaves, probed by the grader (see ``evidence.py``),
and the trained model re-evaluated on 1,000 images the grader draws itself.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

from torch import nn

from whipnb.core.instrument import TrainingDataWatch
from whipnb.core.result import Check
from whipnb.core.rubric import Assessment, Row, ramp
from whipnb.core.runner import Run, single_thread
from whipnb.tasks.common import crash_check, find_model, reporting_check
from whipnb.tasks.task6 import ACCURACY_TARGET
from whipnb.tasks.task6.evidence import (
    HeldOut,
    Verdict,
    batch_verdict,
    evaluate_held_out,
    feed,
    held_out_names,
    labels_verdict,
    layout_verdict,
    orientation,
    size_verdict,
    unseen_images,
)
from whipnb.tasks.task6.probe import ModelCall, ProbeRecord, ShapeProbe
from whipnb.tasks.template import Grader

ACCURACY_CEILING = 1.0
CHANCE = 1 / 4
PROBE = "shapes"
#: (check id, title, short name) of the four bugs, in the order the pipeline meets them.
BUGS = (
    ("layout", "Images reach the network channels-first (CHW)", "channel order"),
    ("size", "Image size matches the fc layer", "image size"),
    ("labels", "The loss gets class indices, not one-hot rows", "label encoding"),
    ("batch", "Single validation images get a batch dimension", "batch dimension"),
)
#: What a finding says of a bug the run never got to (the notebook says the bugs show
#: up one after another: the grader's own try-out of it is the diagnosis).
NOT_REACHED = {
    "layout": "no training batch reached the network's first convolution",
    "size": "no training batch got as far as the fc layer",
    "labels": "the loss never ran",
    "batch": "validation never ran the model",
}
#: The row for a given number of fixed bugs when the top rows are out of reach
#: (four fixes in a run that still raised count as three).
COUNT_ROWS = ("none_fixed", "one_fixed", "two_fixed", "three_fixed", "three_fixed")


class Task6Grader(Grader):
    """The four bugs counted from the shapes that reached the network, and held-out accuracy."""

    def probes(self) -> dict[str, AbstractContextManager[Any]]:
        images = unseen_images()  # generated once: the watch needs the sets and their names
        watch = TrainingDataWatch(images, held_out=held_out_names(images))
        return {PROBE: ShapeProbe(), "data_watch": watch}

    def assess(self, run: Run) -> Assessment:
        with single_thread():
            return _Assessor(run).assess(self)


class _Assessor:
    """Gathers the evidence of one run and turns it into the rubric row and checks."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.record: ProbeRecord = run.probes[PROBE].record
        self.model = _network(run, self.record)
        calls = [
            c for c in self.record.calls if self.model is None or c.module_id == id(self.model)
        ]
        self.train_calls = [c for c in calls if c.is_training]
        self.val_calls = [c for c in calls if not c.is_training]
        self.train_feed = feed(self.train_calls, "training")
        self.val_feed = feed(self.val_calls, "validation")

    def verdicts(self) -> dict[str, Verdict]:
        feeds = [f for f in (self.train_feed, self.val_feed) if f is not None]
        turned = orientation(self.record.first_conv_images)
        size = self.train_feed.size if self.train_feed else None
        return {
            "layout": layout_verdict(self.train_feed, self.val_feed, turned),
            "size": size_verdict(feeds, self.model),
            "labels": labels_verdict(
                self.record, bool(self.run.evidence.losses), self.run.namespace
            ),
            "batch": batch_verdict(self.val_calls, self.run.namespace, self.model, size),
        }

    def reached(self) -> dict[str, bool]:
        """Which bugs the run got far enough to meet, in the order the pipeline meets them."""
        return {
            "layout": self.train_feed is not None,
            "size": any(c.linear_input is not None or c.output_shape for c in self.train_calls),
            "labels": bool(self.record.losses or self.run.evidence.losses),
            "batch": bool(self.val_calls),
        }

    def bug_check(self, key: str, title: str, verdict: Verdict, reached: bool) -> Check:
        """A bug's finding; one the script has not reached yet is not spelled out."""
        if verdict.fixed or reached:
            return Check(key, title, verdict.fixed, verdict.detail)
        detail = f"not reached yet: {NOT_REACHED[key]}"
        return Check(key, title, False, detail, diagnosis=verdict.detail)

    def held_out(self) -> HeldOut | None:
        trained = any(step.applied_fresh_gradient for step in self.run.evidence.steps)
        fed = next((c.input_shape for c in self.train_calls if c.output_shape), None)
        return evaluate_held_out(self.model, fed) if trained else None

    def progress(self) -> float:
        """How far the pipeline got: past conv1, logits out, weights trained, predictions out."""
        stages = (
            any(c.linear_input is not None or c.output_shape for c in self.train_calls),
            any(c.output_shape for c in self.train_calls),
            any(step.applied_fresh_gradient for step in self.run.evidence.steps),
            any(c.output_shape and len(c.output_shape) == 2 for c in self.val_calls),
        )
        return sum(stages) / len(stages)

    def assess(self, task: Task6Grader) -> Assessment:
        verdicts, reached = self.verdicts(), self.reached()
        held_out = self.held_out()
        accuracy = held_out.evaluation.accuracy if held_out else None
        fixed = sum(v.fixed for v in verdicts.values())
        reports = reporting_check(self.run, "VAL_ACC", accuracy)
        checks = [
            crash_check(self.run),
            *(self.bug_check(key, title, verdicts[key], reached[key]) for key, title, _ in BUGS),
            _accuracy_check(held_out),
            reports,
        ]
        if fixed == 4 and not self.run.crashed:
            row, quality, message = _top_row(task, accuracy, reports.passed)
        else:
            row, quality = task.row(COUNT_ROWS[fixed]), self._partial_quality(accuracy)
            message = self._partial_message(fixed, verdicts, reached)
        metrics = {
            "bugs_fixed": fixed,
            "heldout_accuracy": accuracy,
            "heldout_loss": held_out.evaluation.loss if held_out else None,
            "heldout_format": held_out.view if held_out else None,
            "train_input": _shape_text(self.train_calls),
            "val_input": _shape_text(self.val_calls),
            "optimizer_steps": len(self.run.evidence.steps),
        }
        return Assessment(row, quality, checks, metrics, message)

    def _partial_quality(self, accuracy: float | None) -> float:
        """Half how far the pipeline got, half what the model learned (if it trained)."""
        return 0.5 * self.progress() + 0.5 * ramp(accuracy, CHANCE, 0.95)

    def _partial_message(
        self, fixed: int, verdicts: dict[str, Verdict], reached: dict[str, bool]
    ) -> str:
        """How many are fixed and which the run has met; the error itself is in the
        traceback and the first finding, not repeated here."""
        if fixed == 4:
            return "All four bugs look fixed, but the script still stops at an error."
        met = [name for key, _, name in BUGS if not verdicts[key].fixed and reached[key]]
        ahead = sum(not verdicts[key].fixed and not reached[key] for key, _, _ in BUGS)
        stop = " The script stops at an error (the traceback above)." if self.run.crashed else ""
        parts = [f"still to fix: {', '.join(met)}"] if met else []
        if ahead:
            parts.append(f"{ahead} more the script has not reached yet")
        left = "; ".join(parts)
        return f"{fixed} of 4 bugs fixed.{stop} {left[:1].upper()}{left[1:]}.".rstrip(" .") + "."


def _top_row(task: Task6Grader, accuracy: float | None, honest: bool) -> tuple[Row, float, str]:
    """All four fixed and the script ran to the end: the accuracy decides between the top rows."""
    if accuracy is not None and accuracy > ACCURACY_TARGET:
        quality = 0.85 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING) + 0.15 * honest
        return task.row("all_fixed"), quality, "All four bugs fixed: the CNN trains and validates."
    message = "All four bugs fixed, but the model does not reach the accuracy target yet."
    return task.row("all_fixed_short"), ramp(accuracy, CHANCE, ACCURACY_TARGET), message


def _network(run: Run, record: ProbeRecord) -> nn.Module | None:
    """The network under test: the optimizer's module if images reached it, else the
    module that received the first training images, else whatever ``find_model`` finds."""
    fed = [c.module_id for c in record.calls if c.conv_input is not None]
    model = find_model(run)
    if model is None or id(model) in fed:
        return model
    first = next((c.module_id for c in record.calls if c.conv_input and c.is_training), None)
    return record.modules.get(first, model) if first is not None else model


def _accuracy_check(held_out: HeldOut | None) -> Check:
    title = f"Accuracy on fresh data above {ACCURACY_TARGET:.2f}"
    if held_out is None:
        return Check("accuracy", title, False, "no trained model to evaluate")
    evaluation = held_out.evaluation
    detail = f"held-out accuracy {evaluation.accuracy:.4f} on 1,000 new images ({held_out.view})"
    return Check("accuracy", title, evaluation.accuracy > ACCURACY_TARGET, detail)


def _shape_text(calls: list[ModelCall]) -> str | None:
    return (
        "x".join(str(n) for n in calls[0].input_shape) if calls and calls[0].input_shape else None
    )
