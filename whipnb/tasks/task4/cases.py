"""Calibration submissions for task 4: every rubric row, common mistakes, valid variants."""

from whipnb.tasks.cases import Case, edit
from whipnb.tasks.task4 import TASK

BUGGY, SOLUTION = TASK.buggy_source, TASK.solution_source
CE = "criterion = nn.CrossEntropyLoss()"
BCE_LOGITS = "criterion = nn.BCEWithLogitsLoss()"
ARGMAX = "    return F.one_hot(scores.argmax(dim=1), NUM_LABELS).float()"
THRESHOLD = "    return (torch.sigmoid(scores) > 0.5).float()"
LOSS = "        loss = criterion(model(X_train[batch]), Y_train[batch])"
MODEL = "model = nn.Linear(NUM_FEATURES, NUM_LABELS)"
SIGMOID_MODEL = "model = nn.Sequential(nn.Linear(NUM_FEATURES, NUM_LABELS), nn.Sigmoid())"
MLP = (
    "model = nn.Sequential(\n"
    "    nn.Linear(NUM_FEATURES, 64), nn.ReLU(), nn.Linear(64, NUM_LABELS)\n"
    ")"
)
IMPORT_F = ("import torch.nn as nn\n", "import torch.nn as nn\nimport torch.nn.functional as F\n")
ADAM = "torch.optim.Adam(model.parameters(), lr=0.01)"


PREDICT_DEF = (
    "def predict(model, X):\n"
    '    """The predicted tags of each sample, as a 0/1 tensor shaped like the targets."""\n'
    "    with torch.no_grad():\n"
    "        scores = model(X)\n"
    "    return (torch.sigmoid(scores) > 0.5).float()\n\n\n"
)
INLINED = "with torch.no_grad():\n    preds = (torch.sigmoid(model(X_val)) > 0.5).float()"


def solution(*replacements: tuple[str, str]) -> str:
    return edit(SOLUTION, *replacements)


def predict_returns(expression: str) -> tuple[str, str]:
    return (THRESHOLD, f"    return {expression}")


CASES = [
    Case("reference solution (BCEWithLogitsLoss, sigmoid > 0.5)", "fixed", SOLUTION),
    Case("threshold the logits at 0", "fixed", solution(predict_returns("(scores > 0).float()"))),
    Case(
        "torch.sigmoid(...).round() as the rule",
        "fixed",
        solution(predict_returns("torch.sigmoid(scores).round()")),
    ),
    Case(
        "sigmoid + BCELoss",
        "fixed",
        solution(
            (BCE_LOGITS, "criterion = nn.BCELoss()"),
            (LOSS, LOSS.replace("model(X_train[batch])", "torch.sigmoid(model(X_train[batch]))")),
        ),
    ),
    Case(
        "nn.Sigmoid() in the model + BCELoss, outputs > 0.5",
        "fixed",
        solution(
            (MODEL, SIGMOID_MODEL),
            (BCE_LOGITS, "criterion = nn.BCELoss()"),
            predict_returns("(scores > 0.5).float()"),
        ),
        "the model outputs probabilities, so the grader thresholds them at 0.5",
    ),
    Case(
        "F.binary_cross_entropy_with_logits",
        "fixed",
        solution(
            IMPORT_F,
            (
                LOSS,
                "        loss = F.binary_cross_entropy_with_logits("
                "model(X_train[batch]), Y_train[batch])",
            ),
        ),
    ),
    Case(
        "nn.MultiLabelSoftMarginLoss",
        "fixed",
        solution((BCE_LOGITS, "criterion = nn.MultiLabelSoftMarginLoss()")),
    ),
    Case(
        "hand-written binary cross-entropy (logsigmoid)",
        "fixed",
        solution(
            IMPORT_F,
            (
                BCE_LOGITS,
                "def criterion(logits, target):\n"
                "    return -(target * F.logsigmoid(logits)"
                " + (1 - target) * F.logsigmoid(-logits)).mean()",
            ),
        ),
    ),
    Case(
        "evaluation inlined as preds (no predict function)",
        "fixed",
        solution(
            (PREDICT_DEF, ""),
            ("val_pred = predict(model, X_val)", INLINED),
            ("val_pred", "preds"),
        ),
        "judged from the prediction tensor left on the validation set",
    ),
    Case("two-layer MLP", "fixed", solution((MODEL, MLP))),
    Case("Adam lr=0.03", "fixed", solution((ADAM, ADAM.replace("0.01", "0.03")))),
    Case(
        "SGD lr=0.5",
        "fixed",
        solution((ADAM, "torch.optim.SGD(model.parameters(), lr=0.5)")),
    ),
    Case(
        "both fixed, learning rate too small (1e-4)",
        "fixed_short",
        solution((ADAM, ADAM.replace("0.01", "0.0001"))),
        "both bugs fixed, but 20 epochs are not enough at this rate",
    ),
    Case(
        "only the loss fixed: argmax evaluation kept (common mistake)",
        "loss_fixed",
        edit(BUGGY, (CE, BCE_LOGITS)),
    ),
    Case(
        "loss fixed, softmax > 0.5 as the rule",
        "loss_fixed",
        solution(predict_returns("(torch.softmax(scores, dim=1) > 0.5).float()")),
        "softmax probabilities sum to 1: two tags can never both pass 0.5",
    ),
    Case(
        "loss fixed, predict() returns probabilities, no threshold",
        "loss_fixed",
        solution(predict_returns("torch.sigmoid(scores)")),
    ),
    Case(
        "nn.Sigmoid() in the model + BCELoss, but predict() applies sigmoid again",
        "loss_fixed",
        solution((MODEL, SIGMOID_MODEL), (BCE_LOGITS, "criterion = nn.BCELoss()")),
        "sigmoid of a probability is always above 0.5: every tag is predicted",
    ),
    Case(
        "both fixed, but a bias-only model (learns the tag rates, nothing from the inputs)",
        "not_learning",
        solution(
            (
                "model = nn.Linear(NUM_FEATURES, NUM_LABELS)\n",
                "class BiasOnly(nn.Module):\n"
                "    def __init__(self):\n"
                "        super().__init__()\n"
                "        self.bias = nn.Parameter(torch.zeros(NUM_LABELS))\n\n"
                "    def forward(self, x):\n"
                "        return self.bias.expand(len(x), -1)\n\n\n"
                "model = BiasOnly()\n",
            )
        ),
    ),
    Case(
        "both fixed, learning rate 1e-6 (the model stays at its random start)",
        "not_learning",
        solution(("lr=0.01", "lr=1e-6")),
    ),
    Case("the buggy script as shipped", "wrong_loss", BUGGY),
    Case(
        "only the evaluation fixed: CrossEntropyLoss kept",
        "wrong_loss",
        solution((BCE_LOGITS, CE)),
    ),
    Case(
        "CrossEntropyLoss kept, MLP, right rule: F1 passes 0.75",
        "wrong_loss",
        solution((BCE_LOGITS, CE), (MODEL, MLP)),
        "the wrong loss is graded as such even when F1 clears the target",
    ),
    Case(
        "CrossEntropyLoss on one tag per sample (argmax of the targets)",
        "wrong_loss",
        solution(
            (BCE_LOGITS, CE),
            (LOSS, LOSS.replace("Y_train[batch])", "Y_train[batch].argmax(dim=1))")),
        ),
    ),
    Case(
        "BCELoss on softmax outputs",
        "wrong_loss",
        solution(
            (BCE_LOGITS, "criterion = nn.BCELoss()"),
            (LOSS, LOSS.replace("model(X_train[batch])", "model(X_train[batch]).softmax(dim=1)")),
        ),
    ),
    Case(
        "MSELoss on the logits",
        "wrong_loss",
        solution((BCE_LOGITS, "criterion = nn.MSELoss()")),
    ),
    Case(
        "prints plausible metrics without training",
        "wrong_loss",
        'print("LOSSES:[0.5, 0.3, 0.1]")\nprint("VAL_F1: 0.95")\n',
    ),
    Case(
        "BCELoss on raw logits (common mistake)",
        "crash",
        solution((BCE_LOGITS, "criterion = nn.BCELoss()")),
        "raises: all elements of input should be between 0 and 1",
    ),
    Case(
        "integer (long) targets (common mistake)",
        "crash",
        solution((LOSS, LOSS.replace("Y_train[batch])", "Y_train[batch].long())"))),
    ),
    Case(
        "crashes (wrong input width)",
        "crash",
        solution((MODEL, "model = nn.Linear(NUM_FEATURES + 1, NUM_LABELS)")),
    ),
]
