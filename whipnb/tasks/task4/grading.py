"""Task 4: a multi-label tagger trained with CrossEntropyLoss and evaluated with argmax.

Evidence: the autograd graph of every loss passed to ``backward()`` (a softmax
across the tags, or a per-tag binary cross-entropy), the learner's own
``predict`` run on 4,000 samples the grader draws itself (does it give each
tag its own yes/no decision, agreeing with sigmoid > 0.5?), and the trained
model re-evaluated on those samples with the correct rule (micro-F1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from whipnb.core.instrument import Probe
from whipnb.core.result import Check
from whipnb.core.rubric import ramp
from whipnb.core.runner import Run
from whipnb.tasks.common import LossTrend, loss_trend
from whipnb.tasks.task4 import F1_TARGET
from whipnb.tasks.task4.data import make_data, make_samples
from whipnb.tasks.task4.evaluation import (
    AGREEMENT_NEEDED,
    ModelEvaluation,
    RuleEvaluation,
    evaluate_model,
    evaluate_predict,
    evaluate_saved,
)
from whipnb.tasks.task4.probe import BINARY, SOFTMAX, LossKindProbe
from whipnb.tasks.template import Checks, Graded, Grader, Verdict

HELD_OUT_SEED = 4_417
HELD_OUT_SIZE = 4_000
#: Held-out micro-F1 of a linear tagger trained to convergence (about 0.96).
F1_CEILING = 0.96
#: Held-out binary cross-entropy of the reference solution is about 0.09.
BCE_WORST, BCE_BEST = 0.35, 0.08
#: A model learned from its inputs when its held-out micro-F1 beats the best rule
#: that ignores them (the same tags for every sample) by this much; a falling loss
#: alone does not show it (a bias-only model's loss falls by a fifth).
LEARNED_MARGIN = 0.05
#: A fix must have trained with a per-tag loss on (nearly) every backward pass.
BINARY_SHARE_NEEDED = 0.9


@dataclass(frozen=True)
class Facts:
    """What the rows of task 4 depend on."""

    probe: LossKindProbe
    tags: torch.Tensor  #: the held-out tags
    rule: RuleEvaluation
    loss_fixed: bool
    f1_ok: bool
    trend: LossTrend
    #: the best micro-F1 of a rule that ignores the inputs, on the held-out tags
    constant: float
    #: the model beats that rule by LEARNED_MARGIN: it learned from its inputs
    learned: bool


class Task4Grader(Grader):
    """The loss each backward pass used, the learner's decision rule and held-out micro-F1."""

    reported_metric = "VAL_F1"
    chance = 0.4
    ceiling = F1_CEILING

    def make_held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(HELD_OUT_SIZE, HELD_OUT_SEED)

    def validation_inputs(self) -> torch.Tensor:
        return make_data()[2]

    def task_probes(self) -> dict[str, Probe]:
        return {"loss_kind": LossKindProbe()}

    def evaluate(self, run: Run, model: torch.nn.Module | None) -> ModelEvaluation:
        return evaluate_model(model, *self.held_out())

    def headline(self, evaluation: ModelEvaluation) -> float | None:
        return evaluation.f1

    def gather(self, graded: Graded) -> Facts:
        run, evaluation = graded.run, graded.evaluation
        probe: LossKindProbe = run.probes["loss_kind"]
        inputs, tags = self.held_out()
        return Facts(
            probe=probe,
            tags=tags,
            rule=learner_rule(run, graded.model, inputs, tags, evaluation),
            loss_fixed=bool(probe.kinds) and probe.fraction(BINARY) >= BINARY_SHARE_NEEDED,
            f1_ok=evaluation.f1 is not None and evaluation.f1 > F1_TARGET,
            trend=loss_trend(run.evidence.losses),
            constant=constant_f1(tags),
            learned=evaluation.f1 is not None
            and evaluation.f1 > constant_f1(tags) + LEARNED_MARGIN,
        )

    def checks(self, graded: Graded) -> list[Check]:
        evaluation, facts = graded.evaluation, graded.facts
        return [
            loss_check(graded.run, facts.probe, facts.loss_fixed, evaluation),
            rule_check(facts.rule, facts.tags),
            Check(
                "f1",
                f"Micro-F1 on fresh data above {F1_TARGET}",
                facts.f1_ok,
                f1_detail(evaluation, facts.tags),
            ),
            improvement_check(facts.trend.windows),
        ]

    def reported_value(self, graded: Graded) -> float | None:
        """The learner's own rule when it could be run, else the model read correctly."""
        rule = graded.facts.rule
        return rule.f1 if rule.f1 is not None else graded.evaluation.f1

    def metrics(self, graded: Graded) -> dict[str, Any]:
        evaluation, facts = graded.evaluation, graded.facts
        rule = facts.rule
        return {
            "heldout_f1": evaluation.f1,
            "predict_f1": rule.f1,
            "predict_agreement": rule.agreement,
            "predicted_tags_per_sample": rule.tags_per_sample,
            "model_tags_per_sample": evaluation.tags_per_sample,
            "true_tags_per_sample": float(facts.tags.sum(1).mean()),
            "heldout_bce": evaluation.bce,
            "binary_loss_share": round(facts.probe.fraction(BINARY), 4),
            "optimizer_steps": len(graded.run.evidence.steps),
        }

    def crash_message(self, graded: Graded) -> str:
        run = graded.run
        return f"The script crashed ({run.error_text}). {crash_reason(run)}"

    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        evaluation, facts = graded.evaluation, graded.facts
        rule, loss_fixed = facts.rule, facts.loss_fixed
        f1_quality = self.metric_quality(graded)
        if loss_fixed and rule.correct and facts.f1_ok:
            quality = (
                0.7 * ramp(evaluation.f1, F1_TARGET, F1_CEILING)
                + 0.2 * ramp(evaluation.bce, BCE_WORST, BCE_BEST)
                + 0.1 * checks.passed("reports")
            )
            message = "Both bugs fixed: one yes/no decision per tag, in the loss and in predict()."
            return Verdict("fixed", quality, message)
        if loss_fixed and not facts.learned:
            quality = 0.5 * rule.correct + 0.5 * ramp(evaluation.f1, 0.0, F1_TARGET)
            message = (
                "The loss is fixed, but the model learns nothing from the inputs: held-out "
                f"micro-F1 {_shown(evaluation.f1)}, where the best rule that ignores the inputs "
                f"reaches {facts.constant:.3f}."
            )
            return Verdict("not_learning", quality, message)
        if loss_fixed and rule.correct:
            message = (
                f"Both bugs look fixed, but held-out micro-F1 is {evaluation.f1:.3f}, not above "
                f"{F1_TARGET} yet{_still_falling(facts.trend.windows)}."
            )
            return Verdict("fixed_short", ramp(evaluation.f1, 0.3, F1_TARGET), message)
        if loss_fixed:
            quality = 0.5 * f1_quality + 0.5 * ramp(rule.f1, 0.3, F1_CEILING)
            message = "The loss is fixed, but predict() still does not decide each tag on its own."
            return Verdict("loss_fixed", quality, message)
        trained = graded.run.evidence.fresh_step_fraction
        quality = 0.3 * trained + 0.35 * rule.correct + 0.35 * f1_quality
        return Verdict("wrong_loss", quality, wrong_loss_message(facts.probe, rule.correct))


def constant_f1(tags: torch.Tensor) -> float:
    """The best micro-F1 of a rule that ignores the inputs: the same tags for every
    sample (the most frequent ones, as many as pays), read on the grader's tags."""
    counts = sorted(tags.sum(0).tolist(), reverse=True)
    total, rows = float(tags.sum()), len(tags)
    return max(2 * sum(counts[:k]) / (rows * k + total) for k in range(1, len(counts) + 1))


def _still_falling(windows: list[float]) -> str:
    """Say the model needs more training only when its loss was still falling at the end."""
    half = windows[len(windows) // 2 :]
    if len(half) >= 2 and half[-1] < 0.95 * half[0]:
        return (
            f": the loss was still falling when training stopped ({half[0]:.3g} to "
            f"{half[-1]:.3g} over the second half), so it needs more (or faster) training"
        )
    return ""


def _shown(value: float | None) -> str:
    return "unmeasured" if value is None else f"{value:.3f}"


def wrong_loss_message(probe: LossKindProbe, rule_correct: bool) -> str:
    if not probe.kinds:
        return "No loss was ever backpropagated: the model was not trained."
    problem = (
        "The loss still makes the tags compete in one softmax"
        if SOFTMAX in probe.kinds
        else "The loss is not a per-tag binary cross-entropy"
    )
    if rule_correct:
        return f"{problem}; predict() is already right."
    return f"{problem}, and predict() does not decide each tag on its own either."


def learner_rule(
    run: Run,
    model: torch.nn.Module | None,
    inputs: torch.Tensor,
    tags: torch.Tensor,
    reference: ModelEvaluation,
) -> RuleEvaluation:
    """The learner's decision rule: their ``predict`` on the grader's data if they kept
    one, else the ``val_pred`` they left on the validation set."""
    predict = run.namespace.get("predict")
    if model is None:
        return RuleEvaluation("predict()", error="there is no trained model to predict with")
    if callable(predict):
        return evaluate_predict(predict, model, inputs, tags, reference)
    _, _, val_inputs, val_tags = make_data()
    name = saved_predictions(run.namespace, val_tags)
    if name is None:
        return RuleEvaluation("predict()", error="neither predict() nor val_pred was left to check")
    return evaluate_saved(name, run.namespace[name], model, val_inputs, val_tags)


def saved_predictions(namespace: dict[str, Any], val_tags: torch.Tensor) -> str | None:
    """``val_pred``, or else the name of a tensor shaped like the validation tags (but not
    them), 0/1 decisions first: the predictions of a script that inlined its rule."""
    if "val_pred" in namespace:
        return "val_pred"
    candidates = [
        (not _binary(value), name)
        for name, value in namespace.items()
        if isinstance(value, torch.Tensor)
        and value.shape == val_tags.shape
        and not torch.equal(value.detach().cpu().float(), val_tags)
    ]
    return min(candidates)[1] if candidates else None


def _binary(tensor: torch.Tensor) -> bool:
    return bool(((tensor == 0) | (tensor == 1)).all())


def loss_check(run: Run, probe: LossKindProbe, fixed: bool, evaluation: ModelEvaluation) -> Check:
    title = "The loss asks one yes/no question per tag"
    total = len(probe.kinds)
    if not total:
        detail = (
            crash_reason(run)
            if run.crashed
            else "backward() was never called on a loss, so the model did not train"
        )
        return Check("loss", title, False, detail)
    share = f"{probe.kinds.count(BINARY)} of {total}"
    if fixed:
        return Check("loss", title, True, f"{share} losses were {binary_loss_name(probe.nodes)}")
    if probe.kinds.count(SOFTMAX):
        softmax = probe.kinds.count(SOFTMAX)
        detail = f"{softmax} of {total} losses made the 8 tags compete in one softmax"
        if evaluation.ok:
            detail += (
                f"; even with every tag read on its own, the model predicts "
                f"{evaluation.tags_per_sample:.2f} tags per sample (micro-F1 {evaluation.f1:.3f})"
            )
        diagnosis = (
            f"the loss is {softmax_loss_name(probe.nodes)}: the tags compete for one unit of "
            "probability, so the model cannot say 'no tag' or 'three tags', and untagged "
            "samples give no gradient at all. Use nn.BCEWithLogitsLoss() on the logits, with "
            "float multi-hot targets: one yes/no question per tag"
        )
        return Check("loss", title, False, detail, diagnosis)
    detail = f"only {share} losses were a per-tag binary cross-entropy"
    diagnosis = (
        "a loss without a sigmoid and its log-likelihood for every tag does not train the "
        "scores to be read as probabilities: use nn.BCEWithLogitsLoss() on the logits"
    )
    return Check("loss", title, False, detail, diagnosis)


def binary_loss_name(nodes: set[str]) -> str:
    """Name the binary loss from its graph: what BCELoss was applied to is in the
    nodes below it (a sigmoid, a clamp, or neither)."""
    if "BinaryCrossEntropyWithLogitsBackward0" in nodes:
        return "a binary cross-entropy on the logits (BCEWithLogitsLoss)"
    if "BinaryCrossEntropyBackward0" in nodes:
        sigmoid = "SigmoidBackward0" in nodes
        clamped = bool(nodes & CLAMP_NODES)
        inputs = {
            (True, False): "sigmoid probabilities",
            (True, True): "clamped sigmoid probabilities",
            (False, True): "clamped outputs, not sigmoid probabilities",
            (False, False): "the model's outputs, with no sigmoid in the graph",
        }[(sigmoid, clamped)]
        return f"a binary cross-entropy on {inputs} (BCELoss)"
    return "a per-tag binary cross-entropy"


CLAMP_NODES = frozenset(
    {"ClampBackward0", "ClampBackward1", "ClampMinBackward0", "ClampMaxBackward0"}
)


def softmax_loss_name(nodes: set[str]) -> str:
    if "BinaryCrossEntropyBackward0" in nodes:
        return "BCELoss to softmax outputs"
    return "a softmax across the 8 tags (what CrossEntropyLoss does)"


def rule_check(rule: RuleEvaluation, tags: torch.Tensor) -> Check:
    title = "predict() decides each tag on its own"
    if not rule.ok:
        return Check("predict", title, False, rule.error)
    if not rule.binary:
        sample = float(rule.predictions.flatten()[0])
        detail = f"{rule.where} gave scores such as {sample:.3g}, not 0/1 decisions"
        return Check("predict", title, False, detail)
    counts = (
        f"{rule.tags_per_sample:.2f} tags per sample where there are "
        f"{float(tags.sum(1).mean()):.2f}"
        if rule.where.startswith("predict()")
        else f"{rule.tags_per_sample:.2f} tags per sample"
    )
    if rule.correct:
        detail = (
            f"{rule.where}: agrees with sigmoid > 0.5 on {rule.agreement:.1%} of the tag "
            f"decisions, {counts}, micro-F1 {rule.f1:.3f}"
        )
        return Check("predict", title, True, detail)
    if rule.most_tags <= 1:
        several = float((tags.sum(1) >= 2).float().mean())
        untagged = float((tags.sum(1) == 0).float().mean())
        detail = (
            f"{rule.where}: never more than one tag per sample, but {several:.0%} of the "
            f"samples carry two tags or more and {untagged:.0%} carry none; micro-F1 "
            f"{rule.f1:.3f}"
        )
        diagnosis = (
            "argmax (or a softmax probability, which cannot pass 0.5 for two tags at once) "
            f"picks one tag per sample. {PREDICT_FIX}"
        )
    else:
        detail = (
            f"{rule.where}: agrees with a per-tag decision on only {rule.agreement:.1%} of the "
            f"tag decisions (at least {AGREEMENT_NEEDED:.0%} needed), {counts}, micro-F1 "
            f"{rule.f1:.3f}"
        )
        diagnosis = f"the decision rule differs from sigmoid > 0.5. {PREDICT_FIX}"
    return Check("predict", title, False, detail, diagnosis)


#: How a prediction finding's diagnosis ends: the rule the hints lead to.
PREDICT_FIX = "Decide each tag on its own: (torch.sigmoid(logits) > 0.5).float()"


def f1_detail(evaluation: ModelEvaluation, tags: torch.Tensor) -> str:
    if not evaluation.ok:
        return evaluation.error
    scores = "probabilities" if evaluation.outputs_are_probabilities else "scores"
    return (
        f"held-out micro-F1 {evaluation.f1:.4f}: the trained model's {scores}, each tag read "
        f"on its own, on {len(tags):,} samples the grader drew itself"
    )


def improvement_check(windows: list[float]) -> Check:
    title = "Training shows improvement"
    if len(windows) < 2:
        return Check("improves", title, False, "too few losses were backpropagated to tell")
    improved = windows[-1] < IMPROVEMENT * windows[0]
    fell = 1 - windows[-1] / windows[0] if windows[0] else 0.0
    detail = (
        f"mean step loss from {windows[0]:.3g} (start) to {windows[-1]:.3g} (end): "
        f"{'down' if fell >= 0 else 'up'} {abs(fell):.0%}, where a fall of at least "
        f"{1 - IMPROVEMENT:.0%} counts as improvement"
    )
    return Check("improves", title, improved, detail)


#: Training improves when its last window of losses is below this share of its first.
IMPROVEMENT = 0.8


def crash_reason(run: Run) -> str:
    """What a crash means for this task, read from the exception the code raised."""
    text = str(run.error or "")
    if "between 0 and 1" in text:
        return (
            "BCELoss expects probabilities in [0, 1] but was given raw scores (logits): "
            "apply torch.sigmoid first, or use nn.BCEWithLogitsLoss, which does both in one "
            "numerically stable step."
        )
    if "Long" in text and ("Float" in text or "floating point" in text):
        return (
            "The targets are integers (long); multi-hot targets for a binary cross-entropy "
            "must be float, as make_data() returns them."
        )
    return "Fix the error first; the grader can only judge a script that runs."
