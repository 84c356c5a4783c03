"""Task 6: each of the four bugs really happens, each fix reveals the next one,
and the findings name what is wrong.

Rubric rows, common mistakes and valid alternative fixes are covered by the
calibration cases (``whipnb/tasks/task6/cases.py``, graded in
``test_calibration.py``)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from helpers import check, grade_quietly, run_quietly

from whipnb.tasks import get_task
from whipnb.tasks.task6.cases import BATCHED, CHW, CHW_28, FC_32, HWC, INDICES, ONEHOT, script
from whipnb.tasks.task6.data import make_data, make_samples
from whipnb.tasks.task6.probe import ShapeProbe

# The fixes in the order the pipeline meets the bugs: channel order, size, labels, batch.
PIPELINE = [script(), script(CHW), script(CHW_28), script(CHW_28, INDICES)]


@pytest.fixture(scope="module")
def task6():
    return get_task("task6")


def last_model_call(run):
    return next(c for c in reversed(run.probes["shapes"].record.calls) if c.conv_input)


# --- each bug's symptom, one fix at a time ------------------------------------------------


def test_buggy_script_stops_at_conv1_on_channels_last_images(task6):
    run = run_quietly(task6.buggy_source, task6.probes())
    assert isinstance(run.error, RuntimeError)
    assert "expected input[40, 32, 32, 3] to have 3 channels, but got 32" in str(run.error)
    call = last_model_call(run)
    assert call.raised_in == "Conv2d" and call.is_training


def test_fixing_the_channel_order_shows_the_size_mismatch(task6):
    run = run_quietly(PIPELINE[1], task6.probes())
    assert "mat1 and mat2 shapes cannot be multiplied (40x2048 and 1568x4)" in str(run.error)
    assert last_model_call(run).raised_in == "Linear"


def test_fixing_the_size_shows_the_one_hot_label_error(task6):
    run = run_quietly(PIPELINE[2], task6.probes())
    expected = "Expected floating point type for target with class probabilities, got Long"
    assert expected in str(run.error)
    loss = run.probes["shapes"].record.losses[0]
    assert loss.target_kind == "onehot_int" and loss.target_dtype == torch.int64


def test_fixing_the_labels_trains_then_validation_fails_without_a_batch_dimension(task6):
    run = run_quietly(PIPELINE[3], task6.probes())
    assert len(run.evidence.steps) == 3 * 50  # all three epochs trained
    assert "mat1 and mat2 shapes cannot be multiplied (32x49 and 1568x4)" in str(run.error)
    call = last_model_call(run)
    # Conv2d accepted the unbatched (3, 28, 28) image; the fc layer is where it breaks.
    assert call.input_shape == (3, 28, 28) and not call.grad and call.raised_in == "Linear"


def test_reference_solution_runs_and_validates(task6):
    run = run_quietly(task6.solution_source, task6.probes())
    assert run.error is None
    assert run.printed["VAL_ACC"][-1] > 0.90


@pytest.mark.parametrize(
    "source",
    [
        script(HWC, INDICES, FC_32, BATCHED),
        script(HWC, INDICES, BATCHED),
        script(HWC, ONEHOT, BATCHED),
    ],
    ids=["all but the channel order", "labels and batch", "batch only"],
)
def test_later_fixes_leave_the_channel_error_first(task6, source):
    run = run_quietly(source, task6.probes())
    assert "to have 3 channels, but got 32 channels instead" in str(run.error)


# --- the pitfalls the script is built around -----------------------------------------------


def test_float_one_hot_targets_would_train_silently():
    """Why the labels are int64 one-hot: float one-hot is a valid probability target."""
    logits = torch.randn(8, 4)
    labels = torch.randint(0, 4, (8,))
    float_onehot = F.one_hot(labels, 4).float()
    assert torch.allclose(F.cross_entropy(logits, float_onehot), F.cross_entropy(logits, labels))
    with pytest.raises(RuntimeError, match="got Long"):
        F.cross_entropy(logits, F.one_hot(labels, 4))


def test_permuted_images_are_channels_last_and_the_network_copes(task6):
    """The channels_last trap is designed away: forward flattens with torch.flatten."""
    network_class = run_quietly(task6.buggy_source, task6.probes()).namespace["StrokeNet"]
    images = make_data()[0][:4].permute(0, 3, 1, 2)
    assert images.is_contiguous(memory_format=torch.channels_last)
    network = network_class()
    features = network.pool(F.relu(network.conv2(network.pool(F.relu(network.conv1(images))))))
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        features.view(features.size(0), -1)
    network.fc = torch.nn.Linear(8 * 8 * 32, 4)
    assert network(images).shape == (4, 4)


def test_data_needs_the_convolution():
    images, labels = make_samples(3000, 11)
    brightness = images.mean(dim=(1, 2, 3))
    per_class = torch.stack([brightness[labels == c].mean() for c in range(4)])
    nearest = (brightness[:, None] - per_class).abs().argmin(dim=1)
    assert (nearest == labels).float().mean() < 0.35  # brightness: close to chance

    torch.manual_seed(0)
    flat = images.reshape(len(images), -1)
    linear = torch.nn.Linear(flat.shape[1], 4)
    optimizer = torch.optim.Adam(linear.parameters(), lr=1e-3)
    for _ in range(200):
        optimizer.zero_grad()
        F.cross_entropy(linear(flat[:2500]), labels[:2500]).backward()
        optimizer.step()
    with torch.no_grad():
        held_out = (linear(flat[2500:]).argmax(dim=1) == labels[2500:]).float().mean()
    assert held_out < 0.6  # a linear model on the pixels is far from the 0.90 target


def test_the_probe_leaves_torch_as_it_found_it(task6):
    original = F.cross_entropy
    probe = ShapeProbe()
    with probe:
        assert F.cross_entropy is not original
    assert F.cross_entropy is original
    torch.nn.Conv2d(3, 4, 3)(torch.zeros(1, 3, 8, 8))
    assert probe.record.call_count == 0


# --- findings ------------------------------------------------------------------------------


def test_buggy_findings_name_each_problem(task6):
    result = grade_quietly("task6", task6.buggy_source)
    assert result.score == 0.0 and result.metrics["bugs_fixed"] == 0
    assert "channels last (HWC)" in check(result, "layout").detail
    # the bugs the script has not reached yet are not spelled out: the notebook says they
    # show up one after another; the grader's try-out of each is its diagnosis
    for key in ("size", "labels", "batch"):
        assert check(result, key).detail.startswith("not reached yet: ")
    assert (
        "32x32; for a batch of them the fc layer expects 1568 inputs but gets 2048"
        in check(result, "size").diagnosis
    )
    assert "(2000, 4), torch.int64" in check(result, "labels").diagnosis
    assert "(32, 32, 3) with no batch dimension" in check(result, "batch").diagnosis
    assert result.message == (
        "0 of 4 bugs fixed. The script stops at an error (the traceback above). Still to fix: "
        "channel order; 3 more the script has not reached yet."
    )
    assert "RuntimeError" not in result.message, "the error is shown once, not three times"


def test_each_fix_in_pipeline_order_raises_the_score(task6):
    scores = [grade_quietly("task6", source).score for source in PIPELINE]
    scores.append(grade_quietly("task6", task6.solution_source).score)
    assert scores == sorted(scores) and len(set(scores)) == len(scores)
    assert scores[-1] >= 0.90


def test_transposed_images_are_named_as_such(task6):
    source = script("{}.permute(0, 3, 2, 1)", INDICES, FC_32, BATCHED)
    result = grade_quietly("task6", source)
    layout = check(result, "layout")
    assert not layout.passed and "height and width swapped" in layout.detail
    assert result.metrics["heldout_accuracy"] < 0.7


def test_same_submission_scores_identically(task6):
    source = script(CHW, INDICES, FC_32, BATCHED)
    first, second = (grade_quietly("task6", source) for _ in range(2))
    assert first.score == second.score and first.metrics == second.metrics
