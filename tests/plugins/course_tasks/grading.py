"""The course task's grading code, on the whipnb template: the share of steps before
the first non-finite loss decides the score; the template adds the rest (the crash
row, the trained model, its held-out accuracy, the data watch, the reports check)."""

from typing import Any

import torch

from course_tasks.data import make_data, make_samples
from whipnb.core.result import Check
from whipnb.tasks.template import Checks, Graded, Grader, Verdict


class NanLossGrader(Grader):
    """Finite losses over the whole run."""

    def make_held_out(self) -> tuple[torch.Tensor, torch.Tensor]:
        return make_samples(1_000, 99)

    def validation_inputs(self) -> torch.Tensor:
        return make_data()[2]

    def checks(self, graded: Graded) -> list[Check]:
        first = graded.run.evidence.first_nonfinite_loss
        detail = "every loss was finite" if first is None else f"loss {first} was not finite"
        return [Check("finite", "Every loss is finite", first is None, detail)]

    def metrics(self, graded: Graded) -> dict[str, Any]:
        return {"heldout_accuracy": graded.evaluation.accuracy}

    def judge(self, graded: Graded, checks: Checks) -> Verdict:
        losses = graded.run.evidence.losses
        first = graded.run.evidence.first_nonfinite_loss
        if checks.passed("finite") and losses:
            return Verdict("finite", 1.0, "Every loss was finite.")
        return Verdict("nan", (first or 0) / max(len(losses), 1), "The loss turned NaN.")
