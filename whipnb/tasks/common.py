"""Evidence helpers that several tasks share: finding the trained model,
re-evaluating it on the grader's own data, reading the loss trajectory, and
cross-checking what the learner printed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from whipnb.core.printed import printed_scalar
from whipnb.core.result import Check
from whipnb.core.rubric import mean
from whipnb.core.runner import Run


def find_model(run: Run) -> torch.nn.Module | None:
    """The module that was trained: the one whose parameters the optimizers held.

    Falls back to a module named ``model``, then to any module in the namespace,
    so a learner who renames variables is still graded on what they trained.
    """
    modules = [value for value in run.namespace.values() if isinstance(value, torch.nn.Module)]
    optimized = {
        id(param)
        for optimizer in run.evidence.optimizers
        for group in optimizer.param_groups
        for param in group["params"]
    }

    def overlap(module: torch.nn.Module) -> int:
        return sum(id(param) in optimized for param in module.parameters())

    trained = max(modules, key=overlap, default=None)
    if trained is not None and overlap(trained) > 0:
        return trained
    named = run.namespace.get("model")
    if isinstance(named, torch.nn.Module):
        return named
    return modules[0] if modules else None


@dataclass(frozen=True)
class Evaluation:
    """A trained classifier measured on data the grader generated itself."""

    accuracy: float | None
    loss: float | None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.accuracy is not None


def evaluate_classifier(
    model: torch.nn.Module | None, inputs: torch.Tensor, labels: torch.Tensor
) -> Evaluation:
    """Accuracy and cross-entropy of ``model`` on held-out data, in eval mode."""
    if model is None:
        return Evaluation(None, None, "no trained model (torch.nn.Module) was found")
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            logits = model(inputs)
            loss = float(F.cross_entropy(logits.float(), labels))
            accuracy = float((logits.argmax(dim=1) == labels).float().mean())
    except Exception as error:  # the learner's model may be anything
        return Evaluation(None, None, f"the model failed on held-out data: {error}")
    finally:
        model.train(was_training)
    return Evaluation(accuracy, loss if math.isfinite(loss) else math.inf)


@dataclass(frozen=True)
class LossTrend:
    """The shape of the recorded loss trajectory, in windows of equal length."""

    windows: list[float]
    first_nonfinite: int | None
    spike_value: float
    spike_step: int

    @property
    def finite(self) -> bool:
        return self.first_nonfinite is None

    @property
    def decreasing(self) -> bool:
        """Each window no higher than the one before, up to a small tolerance."""
        return all(
            later <= earlier * 1.05 + 0.01
            for earlier, later in zip(self.windows, self.windows[1:], strict=False)
        )

    @property
    def spiked(self) -> bool:
        """A step loss after the first window far above where training started."""
        return bool(self.windows) and self.spike_value > 2.0 * self.windows[0] + 0.5


def loss_trend(losses: list[float], windows: int = 10) -> LossTrend:
    first_nonfinite = next((i for i, loss in enumerate(losses) if not math.isfinite(loss)), None)
    finite = [loss for loss in losses if math.isfinite(loss)]
    size = max(1, len(finite) // windows)
    means = [mean(finite[i : i + size]) for i in range(0, size * windows, size) if finite[i:]]
    later = list(enumerate(losses))[size:]
    spike_step, spike_value = max(
        ((i, loss) for i, loss in later if math.isfinite(loss)),
        key=lambda item: item[1],
        default=(0, 0.0),
    )
    return LossTrend(means, first_nonfinite, spike_value, spike_step)


def crash_check(run: Run) -> Check:
    if run.error is None:
        return Check("runs", "The script runs to the end", True, "no exception was raised")
    return Check("runs", "The script runs to the end", False, f"it raised {run.error_text}")


def reporting_check(run: Run, accuracy_key: str, measured: float | None) -> Check:
    """Cross-check the printed LOSSES and metric lines against what really happened.

    It never decides a band; it tells the learner when the printout and the
    behaviour disagree, which is worth knowing either way.  Gross contradictions
    (losses printed with no training at all, an accuracy far above what the model
    achieves) are also recorded in ``run.tampering`` for the instructor.
    """
    title = f"Printed LOSSES and {accuracy_key} agree with the run"
    printed_losses = run.printed.get("LOSSES")
    printed_metric = printed_scalar(run.printed, accuracy_key)
    if not printed_losses or printed_metric is None:
        missing = [
            name
            for name, value in (("LOSSES", printed_losses), (accuracy_key, printed_metric))
            if value is None or value == []
        ]
        return Check("reports", title, False, f"no {' or '.join(missing)} line was printed")
    problems = []
    recorded = run.evidence.finite_losses
    if recorded:
        low, high = min(recorded), max(recorded)
        outside = [x for x in printed_losses if not (low * 0.5 - 1e-3 <= x <= high * 1.5 + 1e-3)]
        if outside:
            problems.append(
                f"printed loss {outside[0]:.4g} was never seen in training "
                f"(losses ran from {low:.4g} to {high:.4g})"
            )
    else:
        problems.append("losses were printed but backward() never ran on a loss")
        run.tampering.append("printed LOSSES although no loss was ever backpropagated")
    if measured is None:
        claim = f"printed {accuracy_key} {printed_metric:.3f} but no working model was found"
        problems.append(claim)
        run.tampering.append(claim)
    elif abs(printed_metric - measured) > 0.1:
        claim = (
            f"printed {accuracy_key} {printed_metric:.3f} but the model scores "
            f"{measured:.3f} on the grader's held-out data"
        )
        problems.append(claim)
        if printed_metric - measured > 0.25:
            run.tampering.append(claim + ", far below the claim")
    if problems:
        return Check("reports", title, False, "; ".join(problems))
    detail = f"{len(printed_losses)} losses and {accuracy_key} printed, consistent"
    return Check("reports", title, True, detail)


#: How the data watch names what it protects (see ``template.Grader.unseen_data``).
VALIDATION_SPLIT = "the validation split"
HELD_OUT_DATA = "the grader's held-out data"
