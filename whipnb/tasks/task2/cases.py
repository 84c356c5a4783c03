"""Calibration submissions for task 2: every rubric row, common mistakes, valid variants."""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task2 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
PRED = "    pred = torch.sigmoid(logits)\n"
LOGS = "torch.log(pred) + (1 - targets) * torch.log(1 - pred)"
RETURN = f"    return -(targets * {LOGS}).mean()\n"
LOSS_BODY = PRED + RETURN
LOSS_CALL = "        loss = bce_loss(logits, y_train[batch])\n"
IMPORT = "import torch.nn as nn\n"
WITH_F = "import torch.nn as nn\nimport torch.nn.functional as F\n"


def loss_body(body: str, source: str = BUGGY) -> str:
    """The buggy script with the body of ``bce_loss`` replaced."""
    return edit(source, (LOSS_BODY, body), (IMPORT, WITH_F))


def clamped(bounds: str) -> str:
    return edit(BUGGY, (PRED, f"    pred = torch.clamp(torch.sigmoid(logits), {bounds})\n"))


CASES = [
    # --- the top row: every valid fix ------------------------------------------------
    Case("reference solution (clamp(pred, 1e-7, 1 - 1e-7))", "fixed", SOLUTION),
    Case(
        "clamp with keywords (min=1e-6, max=1 - 1e-6)", "fixed", clamped("min=1e-6, max=1 - 1e-6")
    ),
    Case(
        "F.binary_cross_entropy on sigmoid(logits)",
        "fixed",
        loss_body("    return F.binary_cross_entropy(torch.sigmoid(logits), targets)\n"),
    ),
    Case(
        "F.binary_cross_entropy_with_logits",
        "fixed",
        loss_body("    return F.binary_cross_entropy_with_logits(logits, targets)\n"),
    ),
    Case(
        "nn.BCEWithLogitsLoss() in the loop",
        "fixed",
        edit(BUGGY, (LOSS_CALL, "        loss = nn.BCEWithLogitsLoss()(logits, y_train[batch])\n")),
    ),
    Case(
        "logsigmoid form",
        "fixed",
        loss_body(
            "    return -(targets * F.logsigmoid(logits)"
            " + (1 - targets) * F.logsigmoid(-logits)).mean()\n"
        ),
    ),
    Case(
        "softplus form",
        "fixed",
        loss_body(
            "    return (targets * F.softplus(-logits)"
            " + (1 - targets) * F.softplus(logits)).mean()\n"
        ),
    ),
    Case(
        "epsilon 1e-7 inside both logs",
        "fixed",
        edit(
            BUGGY,
            (LOGS, "torch.log(pred + 1e-7) + (1 - targets) * torch.log(1 - pred + 1e-7)"),
        ),
    ),
    Case(
        "epsilon 1e-15 added after the subtraction (finite in float32)",
        "fixed",
        edit(
            BUGGY,
            (LOGS, "torch.log(pred + 1e-15) + (1 - targets) * torch.log(1 - pred + 1e-15)"),
        ),
        "(1 - 1.0) + 1e-15 is 1e-15, not 0: behaviour decides, not the epsilon's size",
    ),
    Case(
        "model ends in nn.Sigmoid, trained with nn.BCELoss",
        "fixed",
        edit(
            BUGGY,
            ("    nn.Linear(32, 1),\n)", "    nn.Linear(32, 1), nn.Sigmoid(),\n)"),
            (LOSS_CALL, "        loss = nn.BCELoss()(logits, y_train[batch])\n"),
            ("torch.sigmoid(model(X_val).squeeze(1))", "model(X_val).squeeze(1)"),
        ),
    ),
    Case(
        "logits clamped to [-15, 15] before sigmoid",
        "fixed",
        edit(BUGGY, (PRED, "    pred = torch.sigmoid(logits.clamp(-15, 15))\n")),
    ),
    Case(
        "clamp fix with Adam lr=0.003",
        "fixed",
        edit(SOLUTION, ("lr=0.01", "lr=0.003")),
    ),
    # --- NaN fixed, lower accuracy --------------------------------------------------------
    Case(
        "clamp fix with lr=0.001 (too slow for 30 epochs)",
        "fixed_low",
        edit(SOLUTION, ("lr=0.01", "lr=0.001")),
    ),
    Case(
        "clamp fix trained for 7 epochs only",
        "fixed_low",
        edit(SOLUTION, ("range(30)", "range(7)")),
        "above the 0.80 success criterion, below the 0.85 of the top row",
    ),
    Case(
        "BCEWithLogits with plain SGD lr=0.1",
        "fixed_low",
        edit(
            loss_body("    return F.binary_cross_entropy_with_logits(logits, targets)\n"),
            (
                "torch.optim.Adam(model.parameters(), lr=0.01)",
                "torch.optim.SGD(model.parameters(), lr=0.1)",
            ),
        ),
    ),
    # --- no NaN this time, loss still unprotected -------------------------------------------
    Case(
        "unchanged loss, lr lowered to 0.001 (NaN avoided, not fixed)",
        "unprotected",
        edit(BUGGY, ("lr=0.01", "lr=0.001")),
    ),
    Case(
        "unchanged loss, stopped after 7 epochs (before the NaN)",
        "unprotected",
        edit(BUGGY, ("range(30)", "range(7)")),
    ),
    Case(
        "only log(1 - pred) protected (common mistake: one of the two logs)",
        "unprotected",
        edit(BUGGY, ("torch.log(1 - pred)", "torch.log(1 - pred + 1e-7)")),
    ),
    Case(
        "skips the steps whose loss is NaN",
        "unprotected",
        edit(
            BUGGY,
            (
                "        loss.backward()\n",
                "        if torch.isnan(loss):\n            continue\n        loss.backward()\n",
            ),
        ),
    ),
    # --- still NaN ---------------------------------------------------------------------
    Case("the buggy script as shipped", "still_nan", BUGGY),
    Case(
        "unchanged loss, lr lowered to 0.003 (the NaN only comes later)",
        "still_nan",
        edit(BUGGY, ("lr=0.01", "lr=0.003")),
    ),
    Case(
        "clamp(pred, min=1e-7) only (common mistake, the seed's hint)",
        "still_nan",
        edit(BUGGY, (PRED, "    pred = torch.clamp(torch.sigmoid(logits), min=1e-7)\n")),
    ),
    Case(
        "clamp(pred, 1e-15, 1 - 1e-15) (common mistake: epsilon too small)",
        "still_nan",
        clamped("1e-15, 1 - 1e-15"),
    ),
    Case(
        "epsilon 1e-15 folded into 1 + 1e-15 - pred (common mistake: lost in float32)",
        "still_nan",
        edit(
            BUGGY,
            (LOGS, "torch.log(pred + 1e-15) + (1 - targets) * torch.log(1 + 1e-15 - pred)"),
        ),
    ),
    Case(
        "only log(pred) protected with + 1e-7",
        "still_nan",
        edit(BUGGY, ("torch.log(pred)", "torch.log(pred + 1e-7)")),
    ),
    Case(
        "NaN loss hidden with torch.nan_to_num",
        "still_nan",
        edit(
            BUGGY,
            (LOSS_CALL, "        loss = torch.nan_to_num(bce_loss(logits, y_train[batch]))\n"),
        ),
    ),
    # --- loss removed ------------------------------------------------------------------------
    Case(
        "loss removed entirely (common mistake)",
        "not_trained",
        edit(
            BUGGY,
            (LOSS_CALL, ""),
            ("        loss.backward()\n", ""),
            ("        epoch_loss += loss.item() * len(batch)\n", ""),
        ),
    ),
    Case(
        "loss replaced by a constant",
        "not_trained",
        edit(BUGGY, (LOSS_CALL, "        loss = torch.tensor(0.0, requires_grad=True)\n")),
    ),
    Case(
        "prints plausible metrics without training",
        "not_trained",
        'print("LOSSES:[0.6, 0.4, 0.2, 0.1]")\nprint("VAL_ACC: 0.96")\n',
    ),
    # --- crashes -------------------------------------------------------------------------
    Case(
        "uses F without importing torch.nn.functional",
        "crash",
        edit(
            BUGGY, (LOSS_BODY, "    return F.binary_cross_entropy_with_logits(logits, targets)\n")
        ),
    ),
    Case(
        "BCEWithLogitsLoss on (64, 1) logits against (64,) targets",
        "crash",
        edit(
            BUGGY,
            ("model(X_train[batch]).squeeze(1)", "model(X_train[batch])"),
            (LOSS_CALL, "        loss = nn.BCEWithLogitsLoss()(logits, y_train[batch])\n"),
        ),
    ),
]
