"""Task 3: a CNN whose evaluation keeps every batch's graph (out of memory) and
whose validation images are augmented copies of training images (leakage).

Evidence: a GPU-like memory budget on the tensors autograd keeps for backward
(``probes.GraphMemoryBudget``: exceeded or not, how many graphs that never
reached backward() piled up), the images each forward pass was given and
whether backward used that pass (``probes.ModelInputs``: what the model trained
on, what it was only validated on), near-duplicates between those two sets
(``leakage``), and the trained model re-evaluated on 4,000 fresh images the
grader draws itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from whipnb.core.instrument import Probe
from whipnb.core.printed import printed_scalar
from whipnb.core.result import MEMORY, Check
from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.common import Evaluation, evaluate_classifier
from whipnb.tasks.task3 import ACCURACY_TARGET, LEAKED_SHARE, MEMORY_BUDGET_MIB
from whipnb.tasks.task3.data import IMAGE_SIZE, make_samples
from whipnb.tasks.task3.leakage import Overlap, overlap
from whipnb.tasks.task3.probes import (
    MIB,
    GraphMemoryBudget,
    GraphReport,
    MemoryBudgetExceeded,
    ModelInputs,
    mib,
)
from whipnb.tasks.template import Checks, Graded, Grader, Verdict

HELD_OUT_SEED = 9_103
HELD_OUT_SIZE = 4_000
#: Fresh images that calibrate what "no copy" looks like for the near-duplicate test.
FRESH_REFERENCE = 400
IMAGE_SHAPE = (1, IMAGE_SIZE, IMAGE_SIZE)
#: Graph memory allowed, like a small GPU: the reference solution peaks near 23 MiB,
#: the shipped script passes it in its second epoch.
MEMORY_BUDGET = MEMORY_BUDGET_MIB * MIB
#: Never-backpropagated graphs alive at once (each older than the last forward
#: pass) that count as piling up; a loop that frees its graphs keeps none.
PILED_GRAPHS = 3
#: Held-out accuracy a well-trained model reaches here (ambiguous images cap it near 0.96).
ACCURACY_CEILING = 0.96
OWN_SPLIT = "accuracy on your X_val"


@dataclass(frozen=True)
class Facts:
    """The findings the rubric row depends on."""

    report: GraphReport
    leak: Overlap
    own: tuple[float | None, str]  #: accuracy on the learner's own validation split, and its source
    out_of_memory: bool
    trained: bool
    graphs_ok: bool
    leak_ok: bool
    accuracy_ok: bool

    @property
    def validated(self) -> bool:
        """The model was validated on images it did not train on."""
        return self.leak.validated > 0


class Task3Grader(Grader):
    """Graph memory, leakage between training and validation images, held-out accuracy."""

    chance = 0.25
    ceiling = ACCURACY_CEILING

    def make_held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)

    def task_probes(self) -> dict[str, Probe]:
        memory = GraphMemoryBudget(MEMORY_BUDGET)
        return {"memory": memory, "inputs": ModelInputs(memory, IMAGE_SHAPE)}

    def gather(self, graded: Graded) -> Facts:
        run, evaluation = graded.run, graded.evaluation
        report: GraphReport = run.probes["memory"].report
        leak = _overlap(run, report, self.held_out()[0][:FRESH_REFERENCE])
        out_of_memory = bool(report.exceeded)
        trained = bool(run.evidence.steps)
        return Facts(
            report=report,
            leak=leak,
            own=_own_validation(run, graded.model),
            out_of_memory=out_of_memory,
            trained=trained,
            graphs_ok=trained and not out_of_memory and report.piled_graphs < PILED_GRAPHS,
            leak_ok=leak.validated > 0 and leak.share < LEAKED_SHARE,
            accuracy_ok=evaluation.accuracy is not None and evaluation.accuracy > ACCURACY_TARGET,
        )

    def own_validation(self, graded: Graded) -> tuple[torch.Tensor, torch.Tensor]:
        """The script splits its images itself: its ``X_val`` against the images the
        model really trained on (forward passes that backward used)."""
        run = graded.run
        trained, _ = run.probes["inputs"].split(graded.facts.report.backpropagated)
        return _namespace_images(run, "X_val"), trained

    def runs_check(self, graded: Graded) -> Check:
        return _runs_check(graded.run, graded.facts.report)

    def checks(self, graded: Graded) -> list[Check]:
        evaluation, facts = graded.evaluation, graded.facts
        return [
            _memory_check(facts.report),
            _graph_check(facts.report, facts.graphs_ok, facts.trained),
            _leak_check(facts.leak, facts.leak_ok, facts.own, evaluation),
            Check(
                "accuracy",
                f"Accuracy on fresh images above {ACCURACY_TARGET}",
                facts.accuracy_ok,
                evaluation.error or f"held-out accuracy {evaluation.accuracy:.4f}",
            ),
        ]

    def metrics(self, graded: Graded) -> dict[str, Any]:
        evaluation, facts, run = graded.evaluation, graded.facts, graded.run
        own, leak, report = facts.own, facts.leak, facts.report
        return {
            "heldout_accuracy": evaluation.accuracy,
            "heldout_loss": evaluation.loss,
            "validation_accuracy": own[0] if own[1] == OWN_SPLIT else None,
            "leaked_validation_share": round(leak.share, 4) if leak.validated else None,
            "peak_graph_memory_MiB": round(report.peak_bytes / MIB, 2),
            "piled_up_graphs": report.piled_graphs,
            "optimizer_steps": len(run.evidence.steps),
        }

    def verdict(self, graded: Graded, checks: Checks) -> Verdict:
        """Out of memory comes first: the budget stopped the run, whatever else it did."""
        facts = graded.facts
        if not facts.out_of_memory:
            return super().verdict(graded, checks)
        accuracy = graded.evaluation.accuracy
        quality = 0.5 * facts.leak_ok + 0.5 * ramp(accuracy, 0.25, ACCURACY_CEILING)
        leak_note = " The split is clean now." if facts.leak_ok else ""
        message = (
            "Out of memory: autograd graphs piled up past the budget, so training never "
            f"finished.{leak_note}"
        )
        return Verdict("oom", quality, message, status=MEMORY)

    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        accuracy, facts, run = graded.evaluation.accuracy, graded.facts, graded.run
        if facts.graphs_ok and facts.leak_ok:
            if accuracy is not None and accuracy > ACCURACY_TARGET:
                quality = 0.85 * ramp(accuracy, ACCURACY_TARGET, ACCURACY_CEILING)
                quality += 0.15 * checks.passed("reports")
                message = "Both bugs fixed: no graphs pile up and validation is honest."
                return Verdict("fixed", quality, message)
            message = "Both bugs fixed, but the model does not reach the accuracy target yet."
            return Verdict("fixed_short", ramp(accuracy, 0.5, ACCURACY_TARGET), message)
        if facts.graphs_ok or facts.leak_ok:
            if facts.leak_ok:
                message = f"One bug left: graphs still pile up ({_pile_text(facts.report)})."
            elif facts.validated:
                message = f"One bug left: {_leak_summary(facts.leak)} (leakage)."
            else:
                message = "One bug left: the model is never validated on images kept apart."
            return Verdict("one_fixed", ramp(accuracy, 0.5, ACCURACY_CEILING), message)
        leak = (
            _leak_summary(facts.leak)
            if facts.validated
            else "no image was kept apart for validation"
        )
        message = (
            f"Both bugs are still there: graphs pile up ({_pile_text(facts.report)}), and {leak}."
            if run.evidence.steps
            else "Nothing was trained (optimizer.step() never ran), so no fix can be seen."
        )
        return Verdict("none_fixed", ramp(accuracy, 0.25, ACCURACY_CEILING), message)


# --- evidence -------------------------------------------------------------------


def _overlap(run: Run, report: GraphReport, fresh: torch.Tensor) -> Overlap:
    """Near-duplicates between the images the model trained on and those it was only
    validated on, both as the probes saw them; the namespace's ``X_train`` and
    ``X_val`` stand in for what the run never got to (say, before running out of memory)."""
    x_train, x_val = _namespace_images(run, "X_train"), _namespace_images(run, "X_val")
    trained, validated = run.probes["inputs"].split(report.backpropagated, besides=x_train)
    if len(trained) == 0:
        trained = x_train
    if len(validated) == 0:
        validated = x_val
    return overlap(trained, validated, fresh.flatten(1), IMAGE_SIZE)


def _namespace_images(run: Run, name: str) -> torch.Tensor:
    value = run.namespace.get(name)
    if isinstance(value, torch.Tensor) and tuple(value.shape[1:]) == IMAGE_SHAPE:
        return value.detach().flatten(1).float()
    return torch.zeros(0, math.prod(IMAGE_SHAPE))


def _own_validation(run: Run, model: torch.nn.Module | None) -> tuple[float | None, str]:
    """The model's accuracy on the learner's own validation split (``X_val``, ``y_val``),
    or else the printed VAL_ACC; with where the number came from."""
    images, labels = run.namespace.get("X_val"), run.namespace.get("y_val")
    usable = isinstance(images, torch.Tensor) and isinstance(labels, torch.Tensor)
    if usable and tuple(images.shape[1:]) == IMAGE_SHAPE and labels.shape == images.shape[:1]:
        evaluation = evaluate_classifier(model, images.detach(), labels.detach().long())
        if evaluation.ok:
            return evaluation.accuracy, OWN_SPLIT
    printed = printed_scalar(run.printed, "VAL_ACC")
    return printed, "printed VAL_ACC"


# --- findings -------------------------------------------------------------------


def _runs_check(run: Run, report: GraphReport) -> Check:
    title = "The script runs to the end"
    if report.exceeded:
        detail = f"it ran out of memory after {len(run.evidence.steps)} optimizer steps"
        if not isinstance(run.error, MemoryBudgetExceeded):
            detail += ", caught the error and went on"
        return Check("runs", title, False, detail)
    if run.error is None:
        return Check("runs", title, True, "no exception was raised")
    detail = f"it raised {run.error_text}"
    if "does not require grad" in run.error_text:
        detail += (
            " (the loss handed to backward() has no graph: it was detached or computed "
            "under torch.no_grad(), so the model cannot learn from it)"
        )
    return Check("runs", title, False, detail)


def _memory_check(report: GraphReport) -> Check:
    title = f"Autograd graphs stay within the {mib(report.budget_bytes)} memory budget"
    if report.exceeded:
        return Check("memory", title, False, report.exceeded)
    detail = f"graphs held at most {mib(report.peak_bytes)} at once"
    return Check("memory", title, True, detail)


def _graph_check(report: GraphReport, ok: bool, trained: bool) -> Check:
    title = "No computation graphs pile up"
    if not trained and not report.exceeded:
        return Check("graphs", title, False, "optimizer.step() never ran: nothing was trained")
    if ok:
        detail = (
            "every graph was freed by backward() or as soon as its outputs were dropped"
            if report.piled_graphs == 0
            else f"at most {report.piled_graphs} unused graph(s) outlived the next forward pass"
        )
        return Check("graphs", title, True, detail)
    moment = (
        "at the end of the run"
        if report.piled_at > report.forwards
        else f"when forward pass {report.piled_at} of {report.forwards} began"
    )
    detail = (
        f"{moment}, the graphs of {report.piled_graphs} earlier passes that never reached "
        f"backward() were still alive, holding {mib(report.piled_bytes)}"
    )
    diagnosis = (
        "a value computed with gradients (a loss) is kept from batch to batch with its whole "
        "graph. Keep loss.item(), or the tensor that loss.detach() returns (detach() does not "
        "change loss itself); evaluation without gradients needs torch.no_grad()"
    )
    return Check("graphs", title, False, detail, diagnosis)


def _leak_check(
    leak: Overlap, ok: bool, own: tuple[float | None, str], evaluation: Evaluation
) -> Check:
    title = "Validation images are new to the model"
    if leak.validated == 0:
        detail = "the model was never evaluated on images it had not trained on"
        return Check("leakage", title, False, detail)
    accuracies = _accuracy_comparison(own, evaluation)
    if ok:
        detail = (
            f"none of the {leak.validated} validation images is a copy of a training image "
            f"(typical fine-detail correlation {leak.typical_copy:.2f}, like new images' "
            f"{leak.typical_fresh:.2f}){accuracies}"
        )
        if leak.duplicated:
            detail = detail.replace("none of the", f"only {leak.duplicated} of the", 1)
        return Check("leakage", title, True, detail)
    correlation = (
        f"typical fine-detail correlation {leak.typical_copy:.2f}, new images "
        f"{leak.typical_fresh:.2f}"
    )
    if leak.identical * 2 >= leak.duplicated:
        detail = (
            f"{leak.duplicated} of the {leak.validated} validation images ({leak.share:.0%}) "
            f"are copies of images the model trained on, {leak.identical} of them identical "
            f"({correlation}){accuracies}"
        )
        diagnosis = (
            "the model was trained on the validation images themselves: keep them out of "
            "every training batch"
        )
    else:
        detail = (
            f"{leak.duplicated} of the {leak.validated} validation images ({leak.share:.0%}) "
            f"are augmented copies of images the model trained on ({correlation}){accuracies}"
        )
        diagnosis = (
            "the split was made after augmenting, so copies of one image sit on both sides of "
            "it. Split the original images first, then augment the training part only"
        )
    return Check("leakage", title, False, detail, diagnosis)


def _leak_summary(leak: Overlap) -> str:
    if leak.identical * 2 >= leak.duplicated and leak.identical:
        return "the model trained on its validation images themselves"
    return "validation images are augmented copies of training images"


def _pile_text(report: GraphReport) -> str:
    """The measured pile-up: how many unused graphs were alive at once, and the peak."""
    return (
        f"{report.piled_graphs} graphs that never reached backward() were alive at once, "
        f"holding {mib(report.piled_bytes)}; graph memory peaked at {mib(report.peak_bytes)} "
        f"of the {mib(report.budget_bytes)} budget"
    )


def _accuracy_comparison(own: tuple[float | None, str], evaluation: Evaluation) -> str:
    value, source = own
    if value is None or evaluation.accuracy is None:
        return ""
    gap = value - evaluation.accuracy
    text = f"; {source} {value:.3f} vs {evaluation.accuracy:.3f} on the grader's fresh images"
    if gap > 0.015:
        text += f", {100 * gap:.1f} points flattered"
    return text
