"""Calibration submissions for task 5: every rubric row, common mistakes, valid variants."""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task5 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
FREEZE = "for param in model.backbone.parameters():\n    param.requires_grad = False\n"
ALL_PARAMS = "optimizer = torch.optim.Adam(model.parameters(), lr=0.001)"
FILTERED = (
    "optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters()), lr=0.001)"
)
UNFREEZE = "for param in model.backbone.parameters():\n    param.requires_grad = True\n"
FORWARD = "        return self.head(self.backbone(x))\n"


def optimizer(replacement: str) -> str:
    """The reference solution with another optimizer line."""
    return edit(SOLUTION, (FILTERED, replacement))


def after_freezing(source: str, code: str) -> str:
    """``source`` with ``code`` inserted right after the backbone is frozen."""
    return edit(source, (FREEZE, FREEZE + code))


def after_optimizer(source: str, line: str, code: str) -> str:
    """``source`` with ``code`` inserted right after the optimizer line ``line``."""
    return edit(source, (line, line + "\n" + code.rstrip("\n")))


CASES = [
    # --- valid fixes: the seed's two solutions and the obvious variants -----------
    Case("reference solution A: optimizer over filter(requires_grad)", "fixed", SOLUTION),
    Case(
        "solution A: optimizer over model.head.parameters()",
        "fixed",
        optimizer("optimizer = torch.optim.Adam(model.head.parameters(), lr=0.001)"),
    ),
    Case(
        "solution A: list comprehension of trainable parameters, lr=0.01",
        "fixed",
        optimizer(
            "optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], "
            "lr=0.01)"
        ),
    ),
    Case(
        "solution A with SGD (momentum 0.9)",
        "fixed",
        optimizer(
            "optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), "
            "lr=0.01, momentum=0.9)"
        ),
    ),
    Case(
        "solution A with AdamW and weight decay",
        "fixed",
        optimizer(
            "optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, "
            "model.parameters()), lr=0.001, weight_decay=0.01)"
        ),
    ),
    Case(
        "solution B: unfreeze the backbone before creating the optimizer",
        "fixed",
        after_freezing(BUGGY, UNFREEZE),
    ),
    Case("solution B: the freezing loop deleted", "fixed", edit(BUGGY, (FREEZE, ""))),
    Case(
        "solution B: unfreeze after creating Adam(model.parameters())",
        "fixed",
        after_optimizer(BUGGY, ALL_PARAMS, UNFREEZE),
        "valid: the optimizer captured every parameter tensor, not its requires_grad flag",
    ),
    Case(
        "fine-tune with a smaller learning rate for the backbone (two parameter groups)",
        "fixed",
        edit(
            BUGGY,
            (FREEZE, ""),
            (
                ALL_PARAMS,
                "optimizer = torch.optim.Adam([\n"
                '    {"params": model.backbone.parameters(), "lr": 0.0001},\n'
                '    {"params": model.head.parameters(), "lr": 0.001},\n'
                "])",
            ),
        ),
    ),
    Case(
        "fine-tune only the last backbone layer, optimizer filtered",
        "fixed",
        after_freezing(
            SOLUTION,
            "for param in model.backbone[2].parameters():\n    param.requires_grad = True\n",
        ),
    ),
    Case(
        "gradual unfreezing: head first, backbone added with add_param_group after 20 epochs",
        "fixed",
        edit(
            SOLUTION,
            (
                "    order = torch.randperm(len(X_train))\n",
                "    if epoch == 20:\n"
                "        model.backbone.requires_grad_(True)\n"
                '        optimizer.add_param_group({"params": model.backbone.parameters(), '
                '"lr": 0.0001})\n'
                "    order = torch.randperm(len(X_train))\n",
            ),
        ),
    ),
    Case(
        "nn.Sequential(backbone, head) with the head in its own variable, optimizer over it",
        "fixed",
        edit(
            BUGGY,
            (
                "model = TransferNet()\n",
                "backbone = load_pretrained_backbone()\n"
                "head = nn.Linear(FEATURES, NUM_CLASSES)\n"
                "model = nn.Sequential(backbone, head)\n",
            ),
            (FREEZE, "backbone.requires_grad_(False)\n"),
            (ALL_PARAMS, "optimizer = torch.optim.Adam(head.parameters(), lr=0.001)"),
        ),
        "the grader evaluates the whole network, not the head it finds in the optimizer",
    ),
    # --- the invariant holds, but the model falls short --------------------------
    Case(
        "solution A trained for only 3 epochs",
        "fixed_short",
        edit(SOLUTION, ("for epoch in range(40):", "for epoch in range(3):")),
        "the optimizer is right; 39 steps are not enough to meet the accuracy target",
    ),
    Case(
        "pretrained weights dropped: the same network trained from scratch",
        "fixed_short",
        edit(
            BUGGY,
            ("load_pretrained_backbone, make_data", "make_backbone, make_data"),
            ("self.backbone = load_pretrained_backbone()", "self.backbone = make_backbone()"),
            (FREEZE, ""),
        ),
        "consistent optimizer, but without the pretrained features 200 readings are too few",
    ),
    # --- the seed's common mistakes ------------------------------------------------
    Case(
        "mistake: unfreeze after creating a filtered optimizer",
        "partial",
        after_optimizer(SOLUTION, FILTERED, UNFREEZE),
        "the optimizer never received the backbone: it requires grad but never trains",
    ),
    Case(
        "mistake: only the last backbone layer unfrozen, optimizer over all parameters",
        "partial",
        after_freezing(
            BUGGY,
            "for param in model.backbone[2].parameters():\n    param.requires_grad = True\n",
        ),
        "the first layer is still frozen and still in the optimizer",
    ),
    Case(
        "mistake: backbone weights unfrozen but not the biases",
        "partial",
        after_freezing(
            BUGGY,
            "for layer in model.backbone:\n"
            "    if isinstance(layer, nn.Linear):\n"
            "        layer.weight.requires_grad = True\n",
        ),
        "the biases stay frozen in the optimizer",
    ),
    Case(
        "mistake: optimizer over the head's weight only, bias forgotten",
        "partial",
        optimizer("optimizer = torch.optim.Adam([model.head.weight], lr=0.001)"),
        "the head's bias requires grad but never trains",
    ),
    # --- nothing fixed ---------------------------------------------------------------
    Case("the buggy script as shipped", "none_fixed", BUGGY),
    Case(
        "weight decay added, backbone still frozen in the optimizer",
        "none_fixed",
        edit(
            BUGGY,
            (
                ALL_PARAMS,
                "optimizer = torch.optim.AdamW(model.parameters(), lr=0.001, weight_decay=0.5)",
            ),
        ),
        "weight decay skips parameters without a gradient too: the backbone never changes",
    ),
    Case(
        "freezing by torch.no_grad() in forward instead, all parameters in the optimizer",
        "none_fixed",
        edit(
            BUGGY,
            (FREEZE, ""),
            (
                FORWARD,
                "        with torch.no_grad():\n"
                "            features = self.backbone(x)\n"
                "        return self.head(features)\n",
            ),
        ),
        "the backbone requires grad but no gradient reaches it: still frozen, still held",
    ),
    Case(
        "backbone unfrozen only after training",
        "none_fixed",
        edit(BUGGY, ("\nmodel.eval()\n", "\n" + UNFREEZE + "model.eval()\n")),
        "the flags look right at the end, but the backbone was frozen at every step",
    ),
    Case(
        "prints plausible metrics without training",
        "none_fixed",
        'print("LOSSES:[1.4, 0.9, 0.5, 0.2]")\nprint("VAL_ACC: 0.96")\n',
    ),
    # --- crashes -----------------------------------------------------------------------
    Case(
        "crash: the whole model frozen, then filtered (empty parameter list)",
        "crash",
        edit(
            SOLUTION,
            ("for param in model.backbone.parameters():", "for param in model.parameters():"),
        ),
    ),
    Case(
        "crash: filter over model.parameters without calling it",
        "crash",
        optimizer(
            "optimizer = torch.optim.Adam(filter(lambda p: p.requires_grad, model.parameters), "
            "lr=0.001)"
        ),
    ),
]
