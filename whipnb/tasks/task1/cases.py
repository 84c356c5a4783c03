"""Calibration submissions for task 1: every rubric row, common mistakes, valid variants."""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task1 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
STEP_FIRST = "        optimizer.step()\n        loss.backward()"
BACKWARD_FIRST = "        loss.backward()\n        optimizer.step()"
SGD = "torch.optim.SGD(model.parameters(), lr=0.01)"


def optimizer(replacement: str) -> str:
    return edit(SOLUTION, (SGD, replacement))


CASES = [
    Case("reference solution (SGD lr=0.01, backward before step)", "fixed", SOLUTION),
    Case("SGD lr=0.003", "fixed", optimizer("torch.optim.SGD(model.parameters(), lr=0.003)")),
    Case("SGD lr=0.3", "fixed", optimizer("torch.optim.SGD(model.parameters(), lr=0.3)")),
    Case(
        "SGD lr=0.05 with momentum 0.9",
        "fixed",
        optimizer("torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)"),
    ),
    Case("Adam lr=0.001", "fixed", optimizer("torch.optim.Adam(model.parameters(), lr=0.001)")),
    Case("AdamW lr=0.03", "fixed", optimizer("torch.optim.AdamW(model.parameters(), lr=0.03)")),
    Case(
        "zero_grad() moved after step()",
        "fixed",
        edit(
            SOLUTION,
            ("        optimizer.zero_grad()\n", ""),
            (BACKWARD_FIRST, BACKWARD_FIRST + "\n        optimizer.zero_grad()"),
        ),
    ),
    Case(
        "order fixed, lr too small (1e-4)",
        "fixed_short",
        edit(SOLUTION, ("lr=0.01", "lr=0.0001")),
        "both bugs fixed, but 20 epochs are not enough at this rate",
    ),
    Case("only the order fixed (lr=10.0)", "one_fixed", edit(BUGGY, (STEP_FIRST, BACKWARD_FIRST))),
    Case(
        "order fixed, lr=1.0 still too high",
        "one_fixed",
        edit(SOLUTION, ("lr=0.01", "lr=1.0")),
    ),
    Case("only the learning rate fixed", "one_fixed", edit(BUGGY, ("lr=10.0", "lr=0.01"))),
    Case("the buggy script as shipped", "none_fixed", BUGGY),
    Case(
        "prints plausible metrics without training",
        "none_fixed",
        'print("LOSSES:[0.9, 0.5, 0.2, 0.1]")\nprint("VAL_ACC: 0.97")\n',
    ),
    Case(
        "crashes (wrong input width)",
        "crash",
        edit(SOLUTION, ("model = nn.Linear(2, 2)", "model = nn.Linear(3, 2)")),
    ),
]
