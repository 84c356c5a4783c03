"""Task 4: a multi-label tagger trained with CrossEntropyLoss and evaluated with argmax.

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task4.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

F1_TARGET = 0.75


class Task4(Task):
    id = "task4"
    title = "Wrong loss function"
    difficulty = "medium"
    rows = (
        Row("fixed", "Both bugs fixed, F1 > 0.75", 0.85, 1.0),
        Row("fixed_short", "Both bugs fixed, F1 not above 0.75 yet", 0.75, 0.85),
        Row("loss_fixed", "Loss fixed, eval partially correct", 0.50, 0.75),
        Row("not_learning", "Loss fixed, but the model learns nothing from the inputs", 0.30, 0.50),
        Row("wrong_loss", "Wrong loss still used", 0.10, 0.30),
        Row("crash", "Code crashes", 0.0, 0.10),
    )
    hints = (
        "Multi-label: each sample can carry several tags at once (or none), like an image "
        "tagged [person, dog, tree]. Look at TAGS_PER_SAMPLE: how many tags does the model "
        "predict per sample, and how many are there?",
        "Use nn.BCEWithLogitsLoss() for multi-label: one yes/no question per tag, on the raw "
        "scores (logits).",
        "For predictions: (torch.sigmoid(output) > 0.5).float(), one decision per tag.",
        "Don't use softmax or argmax: they are for single-label problems, where exactly one "
        "class is right.",
    )
    targets = {"heldout_f1": f"> {F1_TARGET}", "predict_f1": f"> {F1_TARGET}"}
    timeout_s = 120.0
    grading = ".grading:Task4Grader"


TASK = Task4()
