"""Re-evaluating the learner's tagger, and their decision rule, on the grader's data.

The score uses micro-F1: every (sample, tag) decision counts once.  That is
what the script itself prints, it is defined even when a rule never predicts
some tag (per-tag F1, and so macro-F1, is then 0/0), and it charges argmax in
proportion to what it gets wrong: the second and third tags it cannot
predict and the tag it invents for every untagged sample.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from whipnb.core.runner import single_thread
from whipnb.tasks.task4.data import NUM_LABELS

#: Predictions that agree with sigmoid > 0.5 on this share of the decisions
#: count as the correct rule (a threshold of 0.45 or 0.55 still does).
AGREEMENT_NEEDED = 0.98


def micro_f1(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Micro-F1 of 0/1 predictions; two empty sets agree perfectly."""
    denominator = float(pred.sum() + target.sum())
    return 2 * float((pred * target).sum()) / denominator if denominator else 1.0


@dataclass(frozen=True)
class ModelEvaluation:
    """The trained model measured with the right decision rule."""

    predictions: torch.Tensor | None  #: sigmoid(logits) > 0.5, or outputs > 0.5 for probabilities
    outputs_are_probabilities: bool = False
    f1: float | None = None
    bce: float | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.predictions is not None

    @property
    def tags_per_sample(self) -> float | None:
        return None if self.predictions is None else float(self.predictions.sum(1).mean())


def model_outputs(model: torch.nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The model's outputs in eval mode, without gradients, on one thread."""
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad(), single_thread():
            return torch.as_tensor(model(inputs)).detach().float()
    finally:
        model.train(was_training)


def evaluate_model(
    model: torch.nn.Module | None, inputs: torch.Tensor, tags: torch.Tensor
) -> ModelEvaluation:
    """Apply the correct rule to the model's outputs: logits > 0 (sigmoid > 0.5).

    A model that ends in a sigmoid already outputs probabilities (every value
    in [0, 1], which trained logits never are); those are thresholded at 0.5.
    """
    if model is None:
        return ModelEvaluation(None, error="no trained model (torch.nn.Module) was found")
    try:
        outputs = model_outputs(model, inputs)
    except Exception as error:  # the learner's model may be anything
        return ModelEvaluation(None, error=f"the model failed on held-out data: {error}")
    if outputs.shape != tags.shape:
        error = f"the model outputs shape {tuple(outputs.shape)}, not {tuple(tags.shape)}"
        return ModelEvaluation(None, error=error)
    probabilities = bool(((outputs >= 0) & (outputs <= 1)).all())
    if probabilities:
        predictions = (outputs > 0.5).float()
        bce = F.binary_cross_entropy(outputs.clamp(1e-7, 1 - 1e-7), tags)
    else:
        predictions = (outputs > 0).float()
        bce = F.binary_cross_entropy_with_logits(outputs, tags)
    bce_value = float(bce) if math.isfinite(float(bce)) else math.inf
    return ModelEvaluation(predictions, probabilities, micro_f1(predictions, tags), bce_value)


@dataclass(frozen=True)
class RuleEvaluation:
    """The learner's own decision rule, judged by the predictions it makes."""

    where: str  #: what was evaluated, for the findings
    predictions: torch.Tensor | None = None
    reference: torch.Tensor | None = None
    tags: torch.Tensor | None = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.predictions is not None

    @property
    def binary(self) -> bool:
        return self.ok and bool(((self.predictions == 0) | (self.predictions == 1)).all())

    @property
    def f1(self) -> float | None:
        return micro_f1(self.predictions, self.tags) if self.binary else None

    @property
    def agreement(self) -> float | None:
        """Share of the tag decisions on which the rule agrees with sigmoid > 0.5."""
        if not self.binary or self.reference is None:
            return None
        return float((self.predictions == self.reference).float().mean())

    @property
    def correct(self) -> bool:
        return (self.agreement or 0.0) >= AGREEMENT_NEEDED

    @property
    def tags_per_sample(self) -> float | None:
        return float(self.predictions.sum(1).mean()) if self.binary else None

    @property
    def most_tags(self) -> int:
        return int(self.predictions.sum(1).max()) if self.binary else 0

    @property
    def multi_tag_fraction(self) -> float | None:
        """Share of samples given two tags or more."""
        return float((self.predictions.sum(1) >= 2).float().mean()) if self.binary else None


def as_predictions(value: Any, samples: int) -> torch.Tensor:
    """The rule's output as a float (samples, 8) tensor; class indices become one-hot.

    Raises ``ValueError`` with a learner-readable message for anything else.
    """
    tensor = torch.as_tensor(value).detach().cpu()
    if tensor.shape == (samples,) and not tensor.is_floating_point():
        if bool(((tensor < 0) | (tensor >= NUM_LABELS)).any()):
            raise ValueError("it returned one index per sample, some outside 0..7")
        return F.one_hot(tensor.long(), NUM_LABELS).float()
    if tensor.shape != (samples, NUM_LABELS):
        raise ValueError(f"it returned shape {tuple(tensor.shape)}, not ({samples}, {NUM_LABELS})")
    return tensor.float()


def call_rule(predict: Callable[..., Any], model: torch.nn.Module, inputs: torch.Tensor) -> Any:
    """``predict(model, X)`` as the script defines it, or ``predict(X)`` if that is its shape."""
    try:
        inspect.signature(predict).bind(model, inputs)
        arguments: tuple[Any, ...] = (model, inputs)
    except (TypeError, ValueError):
        arguments = (inputs,)
    with torch.no_grad(), single_thread():
        return predict(*arguments)


def evaluate_predict(
    predict: Callable[..., Any],
    model: torch.nn.Module,
    inputs: torch.Tensor,
    tags: torch.Tensor,
    reference: ModelEvaluation,
) -> RuleEvaluation:
    """Run the learner's ``predict`` on the grader's held-out inputs."""
    where = f"predict() on the grader's {len(tags):,} samples"
    try:
        predictions = as_predictions(call_rule(predict, model, inputs), len(tags))
    except Exception as error:  # the learner's function may do anything
        return RuleEvaluation(where, error=f"predict() failed on the grader's data: {error}")
    return RuleEvaluation(where, predictions, reference.predictions, tags)


def evaluate_saved(
    name: str, value: Any, model: torch.nn.Module | None, inputs: torch.Tensor, tags: torch.Tensor
) -> RuleEvaluation:
    """Judge predictions the script left in ``name`` (when it defines no ``predict``)."""
    where = f"{name} on the {len(tags)} validation samples"
    try:
        predictions = as_predictions(value, len(tags))
    except Exception as error:
        return RuleEvaluation(where, error=f"{name} is not a prediction tensor: {error}")
    return RuleEvaluation(where, predictions, evaluate_model(model, inputs, tags).predictions, tags)
