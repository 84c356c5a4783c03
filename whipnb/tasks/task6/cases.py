"""Calibration submissions for task 6: every rubric row, the seed's common
mistakes, and the valid alternative fixes (both ways of fixing the size, any
way of adding the batch dimension, float one-hot targets, batched validation).

Each submission is the buggy script with exact edits, so a change to the
script that breaks an edit fails loudly instead of grading the wrong code.
"""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task6 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source

PREPARE = (
    "X_train, y_train = images_train, onehot_train\n"
    "X_val, y_val = images_val, onehot_val.argmax(dim=1)\n"
)
# Image conversions; "{}" is the images tensor.
HWC = "{}"
CHW = "{}.permute(0, 3, 1, 2)"
CHW_28 = "F.interpolate({}.permute(0, 3, 1, 2), size=(28, 28), mode='bilinear')"
# Fixed training labels.
ONEHOT, INDICES = "onehot_train", "onehot_train.argmax(dim=1)"
FC_32 = ("nn.Linear(7 * 7 * 32, 4)", "nn.Linear(8 * 8 * 32, 4)")
SINGLE = "prediction = model(image).argmax(dim=1)"
BATCHED = ("model(image).argmax", "model(image.unsqueeze(0)).argmax")
FORWARD = "    def forward(self, x):\n"
EVALUATE_CALL = "val_acc = evaluate(model, X_val, y_val)"


def script(
    images: str = HWC,
    labels: str = ONEHOT,
    *edits: tuple[str, str],
    val_images: str | None = None,
    base: str = BUGGY,
) -> str:
    """The buggy script with its data preparation replaced and further edits applied."""
    val = (images if val_images is None else val_images).format("images_val")
    prepared = (
        f"X_train, y_train = {images.format('images_train')}, {labels}\n"
        f"X_val, y_val = {val}, onehot_val.argmax(dim=1)\n"
    )
    return edit(base, (PREPARE, prepared), *edits)


def forward_first(line: str) -> tuple[str, str]:
    """Insert ``line`` at the top of the network's ``forward``."""
    return FORWARD, f"{FORWARD}        {line}\n"


ALL_FIXED = [
    Case("reference solution (permute, resize 28x28, argmax, unsqueeze)", "all_fixed", SOLUTION),
    Case(
        "fc layer widened to 8*8*32 instead of resizing; x[None]",
        "all_fixed",
        script(CHW, INDICES, FC_32, (SINGLE, "prediction = model(image[None]).argmax(dim=1)")),
    ),
    Case(
        "nearest-neighbour resize; reshape(1, ...)",
        "all_fixed",
        script(
            "F.interpolate({}.permute(0, 3, 1, 2), size=28, mode='nearest')",
            INDICES,
            (SINGLE, "prediction = model(image.reshape(1, *image.shape)).argmax(dim=1)"),
        ),
    ),
    Case(
        "area resize of a contiguous CHW copy",
        "all_fixed",
        script(
            "F.interpolate({}.permute(0, 3, 1, 2).contiguous(), size=(28, 28), mode='area')",
            INDICES,
            BATCHED,
        ),
    ),
    Case(
        "centre crop to 28x28 instead of resizing",
        "all_fixed",
        script("{}.permute(0, 3, 1, 2)[:, :, 2:30, 2:30]", INDICES, BATCHED),
    ),
    Case(
        "channels moved with movedim(-1, 1); fc widened",
        "all_fixed",
        script("{}.movedim(-1, 1)", INDICES, FC_32, BATCHED),
    ),
    Case(
        "CHW built image by image (torch.stack of permute(2, 0, 1)), then resized",
        "all_fixed",
        script(
            "F.interpolate(torch.stack([image.permute(2, 0, 1) for image in {}]), size=28)",
            INDICES,
            BATCHED,
        ),
    ),
    Case(
        "network permutes HWC input itself; fc widened",
        "all_fixed",
        script(HWC, INDICES, FC_32, BATCHED, forward_first("x = x.permute(0, 3, 1, 2)")),
    ),
    Case(
        "network resizes any input with AdaptiveAvgPool2d(7)",
        "all_fixed",
        script(
            CHW,
            INDICES,
            BATCHED,
            ("x = torch.flatten(x, 1)", "x = torch.flatten(F.adaptive_avg_pool2d(x, 7), 1)"),
        ),
    ),
    Case(
        "float one-hot targets (class probabilities) instead of indices",
        "all_fixed",
        script(CHW_28, "onehot_train.float()", BATCHED),
        "cross-entropy with float one-hot rows is the same loss as with class indices",
    ),
    Case(
        "labels via torch.argmax(..., dim=-1)",
        "all_fixed",
        script(CHW_28, "torch.argmax(onehot_train, dim=-1)", BATCHED),
    ),
    Case(
        "whole validation set in one batch",
        "all_fixed",
        script(
            CHW_28,
            INDICES,
            (
                EVALUATE_CALL,
                "model.eval()\nwith torch.no_grad():\n"
                "    val_acc = (model(X_val).argmax(dim=1) == y_val).float().mean().item()",
            ),
        ),
    ),
    Case(
        "network adds the batch dimension to a single image itself",
        "all_fixed",
        script(CHW_28, INDICES, forward_first("if x.dim() == 3:\n            x = x[None]")),
    ),
]

ALL_FIXED_SHORT = [
    Case(
        "all four fixed, but one epoch at lr=0.0002",
        "all_fixed_short",
        edit(SOLUTION, ("range(3)", "range(1)"), ("lr=0.002", "lr=0.0002")),
        "every bug is fixed; the model has not learned enough yet",
    ),
    Case(
        "all four fixed, but plain SGD at lr=0.01 for 3 epochs",
        "all_fixed_short",
        edit(
            SOLUTION,
            (
                "torch.optim.Adam(model.parameters(), lr=0.002)",
                "torch.optim.SGD(model.parameters(), lr=0.01)",
            ),
        ),
    ),
]

THREE_FIXED = [
    Case(
        "bug 4 left: validation crashes on an unbatched image",
        "three_fixed",
        script(CHW_28, INDICES),
    ),
    Case(
        "bug 3 left: the loss rejects integer one-hot targets",
        "three_fixed",
        script(CHW_28, ONEHOT, BATCHED),
    ),
    Case(
        "bug 1 left: the fc layer rejects 32x32 features",
        "three_fixed",
        script(CHW, INDICES, BATCHED),
    ),
    Case(
        "bug 2 left: conv1 rejects HWC images (fc widened)",
        "three_fixed",
        script(HWC, INDICES, FC_32, BATCHED),
    ),
    Case(
        "permute(0, 3, 2, 1): height and width swapped",
        "three_fixed",
        script("{}.permute(0, 3, 2, 1)", INDICES, FC_32, BATCHED),
        "the seed's 'wrong dimension for permute': trains, but on transposed images",
    ),
    Case(
        "transpose(1, 3) instead of permute: height and width swapped",
        "three_fixed",
        script("{}.transpose(1, 3)", INDICES, FC_32, BATCHED),
    ),
    Case(
        "validation images converted to CHW but not resized",
        "three_fixed",
        script(CHW_28, INDICES, BATCHED, val_images=CHW),
        "the size fix must reach validation too",
    ),
    Case(
        "argmax over the wrong dimension (dim=0)",
        "three_fixed",
        script(CHW_28, "onehot_train.argmax(dim=0)", BATCHED),
        "the seed's 'wrong dimension for argmax': four labels, indexing fails",
    ),
    Case(
        "validation removed, VAL_ACC typed in",
        "three_fixed",
        script(CHW_28, INDICES, (EVALUATE_CALL, "val_acc = 0.97")),
    ),
    Case(
        "one-hot targets kept, loss switched to BCEWithLogitsLoss",
        "three_fixed",
        script(
            CHW_28,
            "onehot_train.float()",
            BATCHED,
            ("nn.CrossEntropyLoss()", "nn.BCEWithLogitsLoss()"),
        ),
        "sidesteps the label bug with a multi-label loss instead of fixing it",
    ),
]

TWO_FIXED = [
    Case("bugs 2 and 1 fixed: the loss rejects one-hot targets", "two_fixed", script(CHW_28)),
    Case(
        "bugs 3 and 4 fixed: conv1 rejects HWC images", "two_fixed", script(HWC, INDICES, BATCHED)
    ),
    Case(
        "bugs 2 and 4 fixed: the fc layer rejects 32x32 features",
        "two_fixed",
        script(CHW, ONEHOT, BATCHED),
    ),
    Case(
        "resized before converting to CHW (wrong order)",
        "two_fixed",
        script(
            "F.interpolate({}, size=(28, 28), mode='bilinear').permute(0, 3, 1, 2)",
            INDICES,
            BATCHED,
        ),
        "the seed's 'fixing in wrong order': the resize squashed width and channels",
    ),
    Case(
        "validation images left as they came (HWC, 32x32)",
        "two_fixed",
        script(CHW_28, INDICES, BATCHED, val_images=HWC),
        "the seed's 'forgetting to handle validation': only the training images converted",
    ),
]

ONE_FIXED = [
    Case("only bug 2 fixed (permute): the fc layer fails next", "one_fixed", script(CHW)),
    Case("only bug 1 fixed (fc widened)", "one_fixed", script(HWC, ONEHOT, FC_32)),
    Case("only bug 3 fixed (argmax)", "one_fixed", script(HWC, INDICES)),
    Case("only bug 4 fixed (unsqueeze)", "one_fixed", script(HWC, ONEHOT, BATCHED)),
    Case(
        "HWC images resized along the wrong axes, labels fixed",
        "one_fixed",
        script("F.interpolate({}, size=(28, 28), mode='bilinear')", INDICES),
    ),
]

NONE_FIXED = [
    Case("the buggy script as shipped", "none_fixed", BUGGY),
    Case(
        "fixes written only in comments",
        "none_fixed",
        edit(
            BUGGY,
            (
                PREPARE,
                PREPARE + "# X_train = F.interpolate(X_train.permute(0, 3, 1, 2), size=(28, 28))\n"
                "# y_train = y_train.argmax(dim=1)  # and image.unsqueeze(0) in evaluate\n",
            ),
        ),
        "comments never count",
    ),
    Case(
        "prints plausible metrics without training",
        "none_fixed",
        'print("LOSSES:[1.2, 0.6, 0.1]")\nprint("VAL_ACC: 0.98")\n',
    ),
    Case(
        "crashes before training (misspelt name)",
        "none_fixed",
        edit(BUGGY, ("model = StrokeNet()", "model = StrokeNett()")),
    ),
]

CASES = ALL_FIXED + ALL_FIXED_SHORT + THREE_FIXED + TWO_FIXED + ONE_FIXED + NONE_FIXED
