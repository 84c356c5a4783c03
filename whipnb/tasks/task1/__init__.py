"""Task 1: a linear classifier whose loop steps before backward, with lr=10.0.

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task1.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

LOSS_TARGET = 0.3
ACCURACY_TARGET = 0.90


class Task1(Task):
    id = "task1"
    title = "Broken training loop"
    difficulty = "easy"
    rows = (
        Row("fixed", "Both bugs fixed, VAL_ACC > 0.90", 0.85, 1.0),
        Row("fixed_short", "Both bugs fixed, targets not yet met", 0.70, 0.85),
        Row("one_fixed", "One bug fixed, some improvement", 0.40, 0.70),
        Row("none_fixed", "No bugs fixed, code runs", 0.15, 0.25),
        Row("crash", "Code crashes", 0.0, 0.10),
    )
    hints = (
        "Look at the loss curve: is the model learning at all? Check the learning rate value.",
        "Compare the order of the backward() and step() calls.",
        "The standard pattern is zero_grad() -> forward -> loss -> backward() -> step(). "
        "Once the order is right, a learning rate like 0.01 trains smoothly.",
    )
    targets = {"heldout_loss": f"< {LOSS_TARGET}", "heldout_accuracy": f"> {ACCURACY_TARGET}"}
    timeout_s = 120.0
    grading = ".grading:Task1Grader"


TASK = Task1()
