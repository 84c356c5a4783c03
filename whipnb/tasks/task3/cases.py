"""Calibration submissions for task 3: every rubric row, common mistakes, valid variants."""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task3 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
KEEPS_GRAPH = "        total_loss += loss\n"
ITEM = "        total_loss += loss.item()\n"
LEAKY_SPLIT = (
    "X_train, y_train = images[order[:split]], labels[order[:split]]\n"
    "X_val, y_val = images[order[split:]], labels[order[split:]]\n"
)
CLEAN_SPLIT = (
    "X_train, y_train = augment(images[order[:split]], labels[order[:split]], copies=3)\n"
    "X_val, y_val = images[order[split:]], labels[order[split:]]\n"
)
TRAIN_STEP = "        loss = criterion(model(X_train[batch]), y_train[batch])\n"
EVAL_LOOP_ITEM = """\
    for start in range(0, len(X), 256):
        logits = model(X[start:start + 256])
        loss = criterion(logits, y[start:start + 256])
        total_loss += loss.item()
        correct += (logits.argmax(dim=1) == y[start:start + 256]).sum().item()
"""
EVAL_LOOP_NO_GRAD = """\
    with torch.no_grad():
        for start in range(0, len(X), 256):
            logits = model(X[start:start + 256])
            loss = criterion(logits, y[start:start + 256])
            total_loss += loss
            correct += (logits.argmax(dim=1) == y[start:start + 256]).sum().item()
"""


def solution(*replacements: tuple[str, str]) -> str:
    return edit(SOLUTION, *replacements)


def buggy(*replacements: tuple[str, str]) -> str:
    return edit(BUGGY, *replacements)


CASES = [
    # --- both bugs fixed ----------------------------------------------------------
    Case("reference solution (.item(), split before augmenting)", "fixed", SOLUTION),
    Case(
        "total_loss += loss.detach()",
        "fixed",
        solution((ITEM, "        total_loss += loss.detach()\n")),
    ),
    Case(
        "total_loss += float(loss)",
        "fixed",
        solution((ITEM, "        total_loss += float(loss)\n")),
    ),
    Case(
        "evaluation under torch.no_grad(), total_loss += loss kept",
        "fixed",
        solution((EVAL_LOOP_ITEM, EVAL_LOOP_NO_GRAD)),
    ),
    Case(
        "@torch.no_grad() on evaluate, total_loss += loss kept",
        "fixed",
        solution(
            (ITEM, KEEPS_GRAPH), ("def evaluate(X, y):", "@torch.no_grad()\ndef evaluate(X, y):")
        ),
    ),
    Case(
        "split with random_split, then augment the training part",
        "fixed",
        solution(
            (
                "order = torch.randperm(len(images))\nsplit = int(0.8 * len(images))\n"
                + CLEAN_SPLIT,
                "train_part, val_part = torch.utils.data.random_split(range(len(images)), "
                "[0.8, 0.2])\n"
                "X_train, y_train = augment(images[train_part.indices], "
                "labels[train_part.indices], copies=3)\n"
                "X_val, y_val = images[val_part.indices], labels[val_part.indices]\n",
            )
        ),
    ),
    Case(
        "augment each training batch on the fly (24 epochs of the originals)",
        "fixed",
        solution(
            (CLEAN_SPLIT, LEAKY_SPLIT),
            (
                TRAIN_STEP,
                "        inputs, targets = augment(X_train[batch], y_train[batch])\n"
                "        loss = criterion(model(inputs), targets)\n",
            ),
            ("EPOCHS = 8", "EPOCHS = 24"),
        ),
    ),
    Case(
        "validation augmented too, but from its own originals",
        "fixed",
        solution(
            (
                "X_val, y_val = images[order[split:]], labels[order[split:]]\n",
                "X_val, y_val = augment(images[order[split:]], labels[order[split:]], copies=3)\n",
            )
        ),
        "no leakage: no validation image shares an original with a training image",
    ),
    Case(
        "both fixed, trained for one epoch only",
        "fixed_short",
        solution(("EPOCHS = 8", "EPOCHS = 1")),
        "honest, but the model is far from the accuracy target",
    ),
    # --- one bug fixed ------------------------------------------------------------
    Case(
        "only the graph fixed (.item()); validation still leaks",
        "one_fixed",
        buggy((KEEPS_GRAPH, ITEM)),
    ),
    Case(
        "different augmentations for train/val, from the same augmented source",
        "one_fixed",
        buggy(
            (KEEPS_GRAPH, ITEM),
            (
                LEAKY_SPLIT,
                "X_train, y_train = augment(images[order[:split]], labels[order[:split]])\n"
                "X_val, y_val = augment(images[order[split:]].flip(-2), labels[order[split:]])\n",
            ),
        ),
        "seed common mistake: the copies on both sides still share their originals",
    ),
    Case(
        "only the split fixed; graphs still pile up, one epoch so it fits",
        "one_fixed",
        solution((ITEM, KEEPS_GRAPH), ("EPOCHS = 8", "EPOCHS = 1")),
    ),
    # --- nothing fixed --------------------------------------------------------------
    Case(
        "nothing fixed, shrunk to fit the budget (a quarter of the images, two epochs)",
        "none_fixed",
        buggy(
            ("EPOCHS = 8", "EPOCHS = 2"),
            (
                "images, labels = load_images()\n",
                "images, labels = load_images()\nimages, labels = images[:150], labels[:150]\n",
            ),
        ),
    ),
    Case(
        "prints plausible metrics without training",
        "none_fixed",
        'print("LOSSES:[0.9, 0.5, 0.2, 0.1]")\nprint("VAL_ACC: 0.97")\n',
    ),
    # --- out of memory --------------------------------------------------------------
    Case("the buggy script as shipped", "oom", BUGGY),
    Case("only the split fixed (full length)", "oom", solution((ITEM, KEEPS_GRAPH))),
    Case(
        "loss.detach() called but its result thrown away",
        "oom",
        buggy((KEEPS_GRAPH, "        loss.detach()\n" + KEEPS_GRAPH)),
        "seed common mistake: detach() returns a new tensor and leaves loss attached",
    ),
    Case(
        "batch size halved to dodge the OOM",
        "oom",
        buggy(
            ("BATCH_SIZE = 64", "BATCH_SIZE = 32"),
            ("range(0, len(X), 256)", "range(0, len(X), 128)"),
            ("X[start:start + 256]", "X[start:start + 128]"),
            ("y[start:start + 256]", "y[start:start + 128]"),
            ("math.ceil(len(X) / 256)", "math.ceil(len(X) / 128)"),
        ),
        "the graphs of all batches are kept, however small the batches",
    ),
    # --- crashes --------------------------------------------------------------------
    Case(
        ".detach() on the training loss before backward()",
        "crash",
        solution((TRAIN_STEP, TRAIN_STEP.replace("])\n", "]).detach()\n"))),
        "seed common mistake: the detached loss has no graph, backward() raises",
    ),
]
