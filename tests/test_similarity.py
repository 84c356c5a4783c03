"""The similarity report on crafted task 2 submissions (no kernel needed): a copy with
renamed variables is found, independent fixes and the shipped code are not."""

from __future__ import annotations

import contextlib
import html
import io
import json
from pathlib import Path

import pytest
from helpers import edit

from whipnb import Result
from whipnb.cli import main
from whipnb.gradebook.report import build_report
from whipnb.gradebook.similarity import fingerprints, normalised_tokens, similar_pairs
from whipnb.gradebook.store import Gradebook
from whipnb.headless.submissions import GradedCell, Submission
from whipnb.tasks import get_task

BUGGY = get_task("task2").buggy_source
HAND_LOSS = '''def bce_loss(logits, targets):
    """Binary cross-entropy, written out by hand."""
    pred = torch.sigmoid(logits)
    return -(targets * torch.log(pred) + (1 - targets) * torch.log(1 - pred)).mean()
'''
#: Alice rewrites the loss from the logits and moves training into a function of her own.
ALICE = edit(
    BUGGY,
    (
        HAND_LOSS,
        '''def bce_loss(logits, targets):
    """Stable: log(sigmoid(x)) = -softplus(-x), log(1 - sigmoid(x)) = -softplus(x)."""
    log_p = -torch.nn.functional.softplus(-logits)
    log_not_p = -torch.nn.functional.softplus(logits)
    per_item = targets * log_p + (1 - targets) * log_not_p
    return -per_item.mean()


def run_epoch(net, opt, inputs, labels, size=64):
    perm = torch.randperm(len(inputs))
    total = 0.0
    for first in range(0, len(inputs), size):
        idx = perm[first:first + size]
        opt.zero_grad()
        out = net(inputs[idx]).squeeze(1)
        value = bce_loss(out, labels[idx])
        value.backward()
        opt.step()
        total += value.item() * len(idx)
    return total / len(inputs)
''',
    ),
    (
        """    order = torch.randperm(len(X_train))
    epoch_loss = 0.0
    for start in range(0, len(X_train), 64):
        batch = order[start:start + 64]
        optimizer.zero_grad()
        logits = model(X_train[batch]).squeeze(1)
        loss = bce_loss(logits, y_train[batch])
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item() * len(batch)
    losses.append(epoch_loss / len(X_train))""",
        "    losses.append(run_epoch(model, optimizer, X_train, y_train))",
    ),
)
#: Bob copies Alice, renaming every variable, rewording comments, changing constants.
BOB = edit(
    ALICE,
    *(
        (old, new)
        for old, new in (
            ("log_p", "log_prob"),
            ("log_not_p", "log_complement"),
            ("per_item", "terms"),
            ("run_epoch", "train_one_epoch"),
            ("net", "network"),
            ("opt,", "optimiser,"),
            ("opt.", "optimiser."),
            ("perm", "shuffled"),
            ("total", "running"),
            ("first", "begin"),
            ("idx", "chunk"),
            ("value", "batch_loss"),
            ("size=64", "size=128"),
            ("Stable:", "Numerically safe version:"),
        )
    ),
)
#: Carol fixes it with the built-in loss on logits, her own way.
CAROL = edit(
    BUGGY,
    (
        HAND_LOSS,
        """criterion = nn.BCEWithLogitsLoss()


def bce_loss(logits, targets):
    # sigmoid + log in one stable step
    return criterion(logits, targets.float())
""",
    ),
)
#: Dan clamps differently and also records the accuracy of every epoch.
DAN = edit(
    BUGGY,
    (
        "    pred = torch.sigmoid(logits)\n",
        "    eps = 1e-6\n    pred = torch.sigmoid(logits).clamp(min=eps, max=1 - eps)\n",
    ),
    (
        "    losses.append(epoch_loss / len(X_train))",
        """    losses.append(epoch_loss / len(X_train))
    with torch.no_grad():
        guesses = (model(X_train).squeeze(1) > 0).float()
        history.append((guesses == y_train).float().mean().item())""",
    ),
    ("losses = []\n", "losses = []\nhistory = []\n"),
)


@pytest.fixture
def class_book(tmp_path):
    """Every learner's task 2 grading; eve and fay hand in the untouched script and the
    reference fix."""
    sources = {
        "alice": ALICE,
        "bob": BOB,
        "carol": CAROL,
        "dan": DAN,
        "eve": BUGGY,
        "fay": get_task("task2").solution_source,
        "gus": BUGGY,
        "hal": get_task("task2").solution_source,
    }
    with Gradebook(tmp_path / "book.sqlite") as book:
        for learner, source in sources.items():
            submission = Submission(
                Path(f"{learner}_task2.ipynb"),
                learner,
                learner * 8,
                "task2",
                GradedCell("task2", source),
            )
            result = Result("task2", 0.9, "graded", [], {}, "made up", 1.0, "0.1.0")
            book.add(submission, result, timeout_s=None, memory_mb=None, started_at="t0")
        yield book


def test_names_strings_numbers_and_comments_do_not_count():
    first = "lr = 0.1  # fast\nmodel = Net('a')\nfor x in data:\n    step(x)\n"
    second = 'rate = 3e-4\nnet = Model("b")  # renamed\nfor item in batches:\n    go(item)\n'
    assert normalised_tokens(first) == normalised_tokens(second)
    assert normalised_tokens(first)[:4] == ["N", "=", "0", ";"]
    assert fingerprints(first) == fingerprints(second)
    # Structure does count: a loop is not a conditional.
    assert normalised_tokens(first) != normalised_tokens(second.replace("for item in", "if"))
    # Learner code that does not tokenise keeps what came before the error.
    assert normalised_tokens("x = 1\ny = '''never closed\n")[:4] == ["N", "=", "0", ";"]


def test_a_renamed_copy_is_found_and_independent_fixes_are_not(class_book):
    pairs = similar_pairs(class_book.latest())
    assert [(pair.task, pair.learners) for pair in pairs] == [("task2", ("alice", "bob"))]
    (pair,) = pairs
    assert pair.similarity >= 0.9 and pair.shared >= 8
    # Alice's own code (her loss and her function) is what they share; carol's and
    # dan's fixes have code of their own too, which nobody else has.
    alone = similar_pairs(class_book.latest(), threshold=0.01, min_shared=1)
    assert {p.learners for p in alone} == {("alice", "bob")}


def test_code_most_of_the_class_shares_does_not_count(class_book):
    """With max_common 1, a fingerprint two learners share is common code: even the copy
    no longer counts (MOSS's -m, for fixes a whole class arrives at)."""
    assert similar_pairs(class_book.latest(), max_common=1) == []


def test_the_report_lists_similar_pairs(class_book):
    page = html.unescape(build_report(class_book.latest(), "book.sqlite"))
    section = page[page.index('id="similarity"') : page.index('id="tampering"')]
    assert section.count('<tr class="pair">') == 1
    assert "alice and bob" in section and "alice_task2.ipynb" in section


def test_the_command_line_lists_and_writes_the_pairs(class_book, tmp_path):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(
            ["similarity", "--db", str(class_book.path), "--json", str(tmp_path / "p.json")]
        )
    assert code == 0 and "1 similar pairs among 8 submissions" in out.getvalue()
    (pair,) = json.loads((tmp_path / "p.json").read_text())
    assert pair["learners"] == ["alice", "bob"] and pair["task"] == "task2"
    assert pair["paths"] == ["alice_task2.ipynb", "bob_task2.ipynb"]
