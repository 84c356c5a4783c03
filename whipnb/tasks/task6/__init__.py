"""Task 6: a CNN whose data, labels and validation do not match what it expects.

The rubric, hints and targets; the grading code is in :mod:`whipnb.tasks.task6.grading`.
"""

from __future__ import annotations

from whipnb.core.rubric import Row
from whipnb.tasks.base import Task

ACCURACY_TARGET = 0.90


class Task6(Task):
    id = "task6"
    title = "Input-output mismatch"
    difficulty = "hard"
    rows = (
        Row("all_fixed", "All 4 bugs fixed, VAL_ACC > 0.90", 0.90, 1.0),
        Row("all_fixed_short", "All 4 bugs fixed, held-out accuracy 0.90 or below", 0.80, 0.90),
        Row("three_fixed", "3 bugs fixed", 0.65, 0.80),
        Row("two_fixed", "2 bugs fixed", 0.40, 0.55),
        Row("one_fixed", "1 bug fixed", 0.20, 0.35),
        Row("none_fixed", "No bugs fixed", 0.0, 0.15),
    )
    hints = (
        "Read each error message: the shapes it prints say what the network got. The first "
        "one is about channels: the images are (N, H, W, C), Conv2d expects (N, C, H, W): "
        "images.permute(0, 3, 1, 2). Validation images need the same treatment.",
        "Image size: the data is 32x32 but the fc layer is sized for 28x28 (7 * 7 * 32). "
        "Either resize the images to 28x28 (F.interpolate, after converting to CHW) or "
        "widen the fc layer to 8 * 8 * 32 inputs.",
        "Labels: CrossEntropyLoss wants class indices, not one-hot rows: "
        "one_hot_labels.argmax(dim=1).",
        "Batch dimension: validation feeds one image of shape (C, H, W), and Conv2d accepts "
        "that, but the fc layer then gets the wrong shape. Add the batch dimension: "
        "image.unsqueeze(0) gives (1, C, H, W).",
    )
    targets = {"bugs_fixed": "4 of 4", "heldout_accuracy": f"> {ACCURACY_TARGET}"}
    timeout_s = 120.0
    grading = ".grading:Task6Grader"


TASK = Task6()
