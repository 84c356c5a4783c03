"""Task 3: a CNN whose evaluation keeps every batch's graph (out of memory) and
whose validation images are augmented copies of training images (leakage).

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task3.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

#: Graph memory allowed, like a small GPU (the grader's budget, in MiB).
MEMORY_BUDGET_MIB = 128
#: Share of validation images with a near-duplicate in training that counts as leakage.
LEAKED_SHARE = 0.10
ACCURACY_TARGET = 0.92


class Task3(Task):
    id = "task3"
    title = "OOM + data leakage"
    difficulty = "hard"
    rows = (
        Row("fixed", "Both bugs fixed, VAL_ACC > 0.92", 0.85, 1.0),
        Row("fixed_short", "Both bugs fixed, held-out accuracy 0.92 or less", 0.65, 0.85),
        Row("one_fixed", "One bug fixed", 0.40, 0.65),
        Row("none_fixed", "Bugs not fixed, VAL_ACC < 0.70", 0.10, 0.25),
        Row("crash", "Code crashes (an error other than out of memory)", 0.0, 0.10),
        Row("oom", "OOM error", 0.0, 0.10),
    )
    hints = (
        "Read the out-of-memory message: the graphs of many forward passes are alive at once. "
        "Which value does the script keep from every batch it evaluates?",
        "Use total_loss += loss.item() or total_loss += loss.detach() to prevent graph "
        "retention. model.eval() does not switch autograd off; torch.no_grad() does.",
        "Split data BEFORE applying augmentation: copies of one image on both sides of the "
        "split let validation reward memory instead of learning.",
        "Apply augmentation only to the training set, not validation: validate on untouched "
        "original images.",
    )
    targets = {
        "heldout_accuracy": f"> {ACCURACY_TARGET}",
        "peak_graph_memory_MiB": f"< {MEMORY_BUDGET_MIB}",
        "leaked_validation_share": f"< {LEAKED_SHARE}",
    }
    timeout_s = 120.0
    grading = ".grading:Task3Grader"


TASK = Task3()
