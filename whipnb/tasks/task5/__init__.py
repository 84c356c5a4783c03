"""Task 5: a frozen backbone whose parameters are still handed to the optimizer.

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task5.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

ACCURACY_TARGET = 0.90


class Task5(Task):
    id = "task5"
    title = "Frozen backbone"
    difficulty = "medium"
    rows = (
        Row("fixed", "Bug properly fixed", 0.85, 1.0),
        Row("fixed_short", "Bug fixed, held-out accuracy target not met", 0.70, 0.85),
        Row("partial", "Partial fix (some improvement)", 0.40, 0.70),
        Row("none_fixed", "No fix (backbone still frozen + in optimizer)", 0.10, 0.25),
        Row("crash", "Code crashes", 0.0, 0.10),
    )
    hints = (
        "Check which parameters have requires_grad=True, and compare them with the "
        "parameters the optimizer holds (optimizer.param_groups).",
        "Filter the parameters when creating the optimizer: "
        "torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.001), "
        "or pass model.head.parameters().",
        "Or fine-tune instead: set requires_grad = True for every backbone parameter "
        "(weights and biases), and make sure the optimizer holds all of them.",
    )
    targets = {
        "frozen_params_in_optimizer": "<= 0",
        "trainable_params_outside_optimizer": "<= 0",
        "heldout_accuracy": f"> {ACCURACY_TARGET}",
    }
    timeout_s = 120.0
    grading = ".grading:Task5Grader"


TASK = Task5()
