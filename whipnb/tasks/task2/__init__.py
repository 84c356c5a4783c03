"""Task 2: a hand-written binary cross-entropy that turns NaN once the model is confident.

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task2.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

ACCURACY_TARGET = 0.85


class Task2(Task):
    id = "task2"
    title = "Silent NaN loss"
    difficulty = "medium"
    rows = (
        Row("fixed", "NaN fixed, VAL_ACC > 0.85", 0.85, 1.0),
        Row("fixed_low", "NaN fixed, lower accuracy", 0.50, 0.75),
        Row(
            "unprotected",
            "No NaN in this run, but the loss still breaks on saturated predictions",
            0.30,
            0.45,
        ),
        Row("still_nan", "Still has NaN", 0.10, 0.25),
        Row("not_trained", "Loss removed: nothing is learned", 0.10, 0.25),
        Row("crash", "Code crashes", 0.0, 0.10),
    )
    hints = (
        "Look for the torch.log() calls: there are two in bce_loss. "
        "Which value of pred makes each of them return -inf?",
        "In float32, sigmoid(logits) is exactly 1.0 once a logit passes about 16.6. "
        "Then log(1 - pred) = log(0) = -inf, and 0 * -inf = NaN. "
        "Clamp pred on both sides before the logs: torch.clamp(pred, 1e-7, 1 - 1e-7) "
        "(min=1e-7 alone protects only log(pred)).",
        "Mind the epsilon: float32 numbers next to 1.0 are 6e-8 apart, so 1 - 1e-15 is exactly "
        "1.0 and protects nothing. 1e-7 works.",
        "Or use PyTorch's own losses: F.binary_cross_entropy(pred, targets) clamps its logs at "
        "-100, and F.binary_cross_entropy_with_logits(logits, targets) (nn.BCEWithLogitsLoss) "
        "works on the logits and never takes log(0).",
    )
    targets = {"nan_steps": "< 1", "heldout_accuracy": f"> {ACCURACY_TARGET}"}
    timeout_s = 120.0
    grading = ".grading:Task2Grader"


TASK = Task2()
