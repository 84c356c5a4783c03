"""A course's own exercise, shipped in its own package: the loss must stay finite.

Its metadata, like a built-in task's, imports no torch; the grading code is in
:mod:`course_tasks.grading`.
"""

from whipnb.core.rubric import Row
from whipnb.tasks import Task


class NanLoss(Task):
    id = "nan_loss"
    title = "Keep the loss finite"
    difficulty = "easy"
    rows = (
        Row("finite", "Every loss finite", 0.85, 1.0),
        Row("nan", "The loss turns NaN", 0.10, 0.25),
        Row("crash", "Code crashes", 0.0, 0.10),
    )
    hints = ("Look at the loss before it turns NaN.",)
    targets = {"nan_steps": "< 1"}
    timeout_s = 60.0
    grading = ".grading:NanLossGrader"


TASK = NanLoss()
