"""The course task's grading code: the share of finite losses decides the score."""

from whipnb.core.result import Check
from whipnb.core.rubric import Assessment
from whipnb.core.runner import Run
from whipnb.tasks.common import crash_check
from whipnb.tasks.template import Grader


class NanLossGrader(Grader):
    """Finite losses over the whole run."""

    def assess(self, run: Run) -> Assessment:
        losses = run.evidence.losses
        first = run.evidence.first_nonfinite_loss
        finite = Check("finite", "Every loss is finite", bool(losses) and first is None, "")
        checks = [crash_check(run), finite]
        if run.crashed:
            return Assessment(self.row("crash"), 0.0, checks, {}, "The script crashed.")
        if first is None:
            return Assessment(self.row("finite"), 1.0, checks, {}, "Every loss was finite.")
        quality = first / len(losses)
        return Assessment(self.row("nan"), quality, checks, {}, f"Loss {first} was not finite.")
