"""Task 6 findings are true statements about the run: a view/reshape that scrambles
the pixels is no channel-order fix (and the accuracy it costs is no tampering), a
batch axis in the wrong place is blamed on the batch dimension alone, and bugs the
run never reached are reported as untested, not as still to fix.  Each submission
is graded once; the facts are measured in the same run by the test's own code."""

from __future__ import annotations

import functools

import pytest
from findings import grade_with_facts, numbers
from helpers import edit

from whipnb.tasks.task6 import TASK

SOLUTION = TASK.solution_source
PERMUTE = "    images = images.permute(0, 3, 1, 2)\n"
RESIZE = '    return F.interpolate(images, size=(28, 28), mode="bilinear", align_corners=False)\n'
UNSQUEEZE = "model(image.unsqueeze(0))"
LABELS = "X_train, y_train = prepare(images_train), onehot_train.argmax(dim=1)"
#: Measured by the test: are the training images the channel-moved ones (compared
#: with a correct permute of the same data), and the accuracy the script printed.
FACTS = """
import torch.nn.functional as F
from whipnb.tasks.task6.data import make_data
raw = make_data()[0]
moved = raw.permute(0, 3, 1, 2)
if "X_train" in globals() and X_train.shape[-1] == 28:
    moved = F.interpolate(moved, size=(28, 28), mode="bilinear", align_corners=False)
facts = {
    "channels_moved": "X_train" in globals() and X_train.shape == moved.shape
    and bool(torch.allclose(X_train, moved)),
    "val_acc": globals().get("val_acc"),
}
"""

SUBMISSIONS = {
    "view to (N, 3, 32, 32), then resized": edit(
        SOLUTION, (PERMUTE, "    images = images.view(len(images), 3, 32, 32)\n")
    ),
    "reshape to (N, 3, 32, 32), fc widened": edit(
        SOLUTION,
        (PERMUTE, "    images = images.reshape(-1, 3, 32, 32)\n"),
        (RESIZE, "    return images\n"),
        ("7 * 7 * 32", "8 * 8 * 32"),
    ),
    "validation unsqueeze(1)": edit(SOLUTION, (UNSQUEEZE, "model(image.unsqueeze(1))")),
    "validation unsqueeze(-1)": edit(SOLUTION, (UNSQUEEZE, "model(image.unsqueeze(-1))")),
    "a crash before any training batch": edit(
        SOLUTION, (LABELS, LABELS + "\nlabel_check = y_train.argmax(dim=1)")
    ),
}


@functools.cache
def graded(name: str):
    return grade_with_facts("task6", SUBMISSIONS[name], FACTS)


@pytest.mark.parametrize(
    "name", ["view to (N, 3, 32, 32), then resized", "reshape to (N, 3, 32, 32), fc widened"]
)
def test_a_scrambling_reshape_is_not_a_channel_order_fix_and_its_cost_is_not_tampering(name):
    run = graded(name)
    facts = run.facts
    assert not facts["channels_moved"]  # the pixels are not the permuted ones
    assert run.row_key == "three_fixed"
    assert 0.65 <= run.result.score <= 0.80  # seed: "3 bugs fixed", not above the ceiling
    layout = run.check("layout")
    assert not layout.passed and "scrambled" in layout.detail
    assert "Still to fix: channel order." in run.result.message
    assert all(run.check(key).passed for key in ("size", "labels", "batch"))
    # measured as it was trained, the model scores what the script itself printed
    assert run.result.tampering == []
    held_out = numbers(run.check("accuracy").detail)[0]
    assert held_out == pytest.approx(facts["val_acc"], abs=0.1)
    assert run.check("reports").passed


@pytest.mark.parametrize(
    ("name", "shape", "axis"),
    [
        ("validation unsqueeze(1)", "(3, 1, 28, 28)", 1),
        ("validation unsqueeze(-1)", "(3, 28, 28, 1)", 3),
    ],
)
def test_a_batch_axis_in_the_wrong_place_is_blamed_on_the_batch_dimension_alone(name, shape, axis):
    run = graded(name)
    assert run.facts["channels_moved"]  # training was right
    assert run.row_key == "three_fixed" and 0.65 <= run.result.score <= 0.80
    assert run.result.message.endswith("Still to fix: batch dimension.")
    assert all(run.check(key).passed for key in ("layout", "size", "labels"))
    batch = run.check("batch")
    assert not batch.passed
    assert f"shape {shape}" in batch.detail and f"is axis {axis}, not axis 0" in batch.detail
    # what conv1 made of it is what the run's own error says
    channels = numbers(shape)[1]
    assert f"but got {channels:g} channels" in run.check("runs").detail
    assert f"images of {channels:g} channels" in batch.detail


def test_bugs_the_run_never_reached_are_untested_not_still_to_fix():
    run = graded("a crash before any training batch")
    assert run.row_key == "one_fixed" and 0.20 <= run.result.score <= 0.35
    assert "Still to fix" not in run.result.message
    # the bugs ahead are counted, not spelled out (they show up one after another)
    assert "3 more the script has not reached yet" in run.result.message
    assert "no training batch reached" in run.check("layout").detail
    assert "no training batch ever reached" in run.check("layout").diagnosis
    assert run.check("labels").passed
