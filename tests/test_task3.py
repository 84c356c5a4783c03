"""Task 3: each bug really happens, the probes measure what they claim, and the
findings name the problem.

Rubric rows, common mistakes and valid alternative fixes are covered by the
calibration cases (``whipnb/tasks/task3/cases.py``, graded in ``test_calibration.py``)."""

from __future__ import annotations

import traceback

import pytest
import torch
from helpers import check, edit, grade_quietly, run_quietly

from whipnb.tasks import get_task
from whipnb.tasks.task3.data import CLASSES, augment, load_images, make_samples
from whipnb.tasks.task3.grading import MEMORY_BUDGET
from whipnb.tasks.task3.probes import MIB, GraphMemoryBudget, MemoryBudgetExceeded, ModelInputs

KEEPS_GRAPH = "        total_loss += loss\n"
ITEM = "        total_loss += loss.item()\n"


@pytest.fixture(scope="module")
def task3():
    return get_task("task3")


@pytest.fixture(scope="module")
def buggy_run(task3):
    return run_quietly(task3.buggy_source, task3.probes())


@pytest.fixture(scope="module")
def graph_fixed_run(task3):
    return run_quietly(edit(task3.buggy_source, (KEEPS_GRAPH, ITEM)), task3.probes())


# --- the data -------------------------------------------------------------------


def test_mean_pixel_value_cannot_tell_the_classes_apart():
    images, labels = make_samples(4000, seed=3)
    brightness = images.mean(dim=(1, 2, 3))
    centres = torch.stack([brightness[labels == k].mean() for k in range(len(CLASSES))])
    nearest = (brightness[:, None] - centres[None, :]).abs().argmin(dim=1)
    assert float((nearest == labels).float().mean()) < 0.35  # chance is 0.25


def test_augmented_copies_share_their_original():
    images, labels = load_images()
    torch.manual_seed(0)
    copies, copy_labels = augment(images[:5], labels[:5], copies=3)
    assert copies.shape == (15, 1, 16, 16)
    assert torch.equal(copy_labels, labels[:5].repeat(3))
    assert not torch.equal(copies[0], copies[5])  # different noise, same original


# --- bug 1: graphs pile up and run out of memory ----------------------------------------


def test_buggy_script_runs_out_of_memory_in_its_second_epoch(buggy_run):
    assert isinstance(buggy_run.error, MemoryBudgetExceeded)
    assert isinstance(buggy_run.error, torch.OutOfMemoryError)
    assert "whipnb memory budget exceeded" in str(buggy_run.error)
    assert "epoch 1:" in buggy_run.stdout and "epoch 2:" not in buggy_run.stdout
    report = buggy_run.probes["memory"].report
    assert MEMORY_BUDGET < report.peak_bytes < MEMORY_BUDGET + 4 * MIB  # asked for, refused
    assert report.piled_graphs >= 10


@pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")
def test_without_a_budget_the_held_memory_grows_every_epoch(task3):
    """The budget only makes the growth fatal: measured without it, every epoch's
    evaluation graphs stay alive to the end (about 60 MiB more per epoch)."""
    held = []
    for epochs in (1, 2, 3):
        memory = GraphMemoryBudget(budget_bytes=2**40)
        source = edit(task3.buggy_source, ("EPOCHS = 8", f"EPOCHS = {epochs}"))
        run = run_quietly(source, {"memory": memory})
        assert run.error is None
        held.append(memory.report.held_at_exit_bytes / MIB)
    growth = [later - earlier for earlier, later in zip(held, held[1:], strict=False)]
    assert all(50 < step < 80 for step in growth), held


def test_backward_frees_a_training_graph_even_when_its_loss_is_kept():
    """Why the bug lives in the evaluation: loss.backward() releases the saved
    activations, so ``total_loss += loss`` in a training loop keeps only a few
    bytes of graph nodes, on which no budget could ever trip."""
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 16, 3), torch.nn.Flatten())
    memory = GraphMemoryBudget(budget_bytes=2**40)
    total_loss = 0.0
    with memory:
        for _ in range(20):
            loss = model(torch.randn(64, 1, 16, 16)).pow(2).mean()
            loss.backward()
            total_loss += loss
    assert total_loss.grad_fn is not None  # the graph nodes are kept...
    assert memory.report.held_at_exit_bytes == 0  # ...but not what they saved
    assert memory.report.piled_graphs == 0


def test_the_budget_raises_the_same_error_at_the_same_tensor_every_run(task3):
    first = run_quietly(task3.buggy_source, task3.probes())
    second = run_quietly(task3.buggy_source, task3.probes())
    assert str(first.error) == str(second.error)
    assert first.probes["memory"].report == second.probes["memory"].report


def test_probes_do_not_change_what_the_script_computes(task3):
    plain = run_quietly(task3.solution_source)
    probed = run_quietly(task3.solution_source, task3.probes())
    assert plain.printed["LOSSES"] == probed.printed["LOSSES"]
    assert plain.printed["VAL_ACC"] == probed.printed["VAL_ACC"]


def test_a_correct_script_stays_far_below_the_budget(task3):
    run = run_quietly(task3.solution_source, task3.probes())
    report = run.probes["memory"].report
    assert report.peak_bytes < MEMORY_BUDGET / 4
    assert report.piled_graphs == 0 and report.held_at_exit_bytes == 0


@pytest.mark.parametrize(
    "replacements",
    [
        (  # a CNN twice as wide
            ("nn.Conv2d(1, 16, 3, padding=1)", "nn.Conv2d(1, 32, 3, padding=1)"),
            ("nn.Conv2d(16, 32, 3, padding=1)", "nn.Conv2d(32, 64, 3, padding=1)"),
            ("nn.Linear(32 * 4 * 4, 128)", "nn.Linear(64 * 4 * 4, 128)"),
        ),
        (  # every evaluation in one batch, gradients on, loss.item() kept
            ("range(0, len(X), 256)", "range(0, len(X), 4096)"),
            ("X[start:start + 256]", "X[start:start + 4096]"),
            ("y[start:start + 256]", "y[start:start + 4096]"),
        ),
    ],
    ids=["wider-cnn", "one-batch-evaluation"],
)
def test_reasonable_correct_variants_fit_the_budget_with_room(task3, replacements):
    source = edit(task3.solution_source, ("EPOCHS = 8", "EPOCHS = 2"), *replacements)
    run = run_quietly(source, task3.probes())
    report = run.probes["memory"].report
    assert run.error is None and report.piled_graphs == 0
    assert report.peak_bytes < MEMORY_BUDGET * 0.6


def test_catching_the_out_of_memory_error_does_not_hide_it(task3):
    source = (
        "import torch\n"
        "try:\n"
        f"    exec({task3.buggy_source!r})\n"
        "except torch.OutOfMemoryError:\n"
        "    print('out of memory, carrying on')\n"
    )
    result = grade_quietly("task3", source)
    assert result.status == "memory" and result.score <= 0.10
    assert "caught the error" in check(result, "runs").detail


def test_fixing_only_the_split_still_runs_out_of_memory(task3):
    result = grade_quietly("task3", edit(task3.solution_source, (ITEM, KEEPS_GRAPH)))
    assert result.status == "memory" and result.score <= 0.10
    assert check(result, "leakage").passed
    assert not check(result, "memory").passed


def test_a_discarded_detach_is_explained(task3):
    source = edit(task3.buggy_source, (KEEPS_GRAPH, "        loss.detach()\n" + KEEPS_GRAPH))
    result = grade_quietly("task3", source)
    assert result.status == "memory"
    assert "detach() does not change loss itself" in check(result, "graphs").diagnosis


def test_detaching_the_training_loss_is_a_crash_that_says_why(task3):
    step = "        loss = criterion(model(X_train[batch]), y_train[batch])\n"
    detached = step.replace("])\n", "]).detach()\n")
    result = grade_quietly("task3", edit(task3.solution_source, (step, detached)))
    assert result.status == "graded" and result.score <= 0.10
    assert "has no graph" in check(result, "runs").detail


# --- bug 2: leakage ---------------------------------------------------------------


def test_fixing_only_the_graph_shows_the_flattered_validation(task3, graph_fixed_run):
    """Once the script runs, its validation accuracy is higher than on fresh images,
    because validation images are augmented copies of training images."""
    model = graph_fixed_run.namespace["model"].eval()
    images, labels = get_task("task3").grader.held_out()
    with torch.no_grad():
        fresh = float((model(images).argmax(1) == labels).float().mean())
    printed = graph_fixed_run.printed["VAL_ACC"][0]
    assert printed - fresh > 0.015
    trained, validated = graph_fixed_run.probes["inputs"].split(
        graph_fixed_run.probes["memory"].report.backpropagated,
        besides=graph_fixed_run.namespace["X_train"],
    )
    assert len(trained) == 1440 and len(validated) == 360


def test_leakage_finding_counts_the_copies(task3):
    result = grade_quietly("task3", edit(task3.buggy_source, (KEEPS_GRAPH, ITEM)))
    leakage = check(result, "leakage")
    assert not leakage.passed
    assert result.metrics["leaked_validation_share"] > 0.9
    assert "augmented copies of images the model trained on" in leakage.detail
    assert "points flattered" in leakage.detail
    assert check(result, "graphs").passed


def test_a_clean_split_has_no_copies(task3):
    result = grade_quietly("task3", task3.solution_source)
    assert result.metrics["leaked_validation_share"] == 0.0
    assert result.passed_all


def test_model_inputs_tell_training_from_evaluation():
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten())
    memory = GraphMemoryBudget(budget_bytes=2**40)
    inputs = ModelInputs(memory, (1, 16, 16))
    seen, unseen = torch.randn(4, 1, 16, 16), torch.randn(3, 1, 16, 16)
    with memory, inputs:
        model(seen).sum().backward()
        model(unseen).sum()  # evaluated with gradients on, never backpropagated
        with torch.no_grad():
            model(unseen)
    trained, validated = inputs.split(memory.report.backpropagated)
    assert torch.equal(trained, seen.flatten(1)) and torch.equal(validated, unseen.flatten(1))


# --- both -------------------------------------------------------------------------


def test_buggy_script_lands_in_the_oom_row_with_memory_status(task3):
    result = grade_quietly("task3", task3.buggy_source)
    assert result.status == "memory" and 0.0 <= result.score <= 0.10
    assert result.rubric_row == "OOM error"
    assert not check(result, "leakage").passed  # judged from what ran before the error


def test_same_submission_scores_identically(task3):
    first = grade_quietly("task3", task3.solution_source)
    second = grade_quietly("task3", task3.solution_source)
    assert first.score == second.score and first.metrics == second.metrics


def test_the_out_of_memory_error_shows_the_scripts_lines_not_torchs(buggy_run):
    """IPython shows ``_render_traceback_`` instead of the traceback: a few lines like a
    GPU's out-of-memory error (the script's own frames and the message), not the
    hundred frames of torch internals ending in the budget's hook."""
    error = buggy_run.error
    full = traceback.format_exception(error)
    assert len("".join(full).splitlines()) > 30  # the traceback it replaces
    lines = "".join(error._render_traceback_()).splitlines()
    assert len(lines) <= 12
    assert lines[-1] == f"MemoryBudgetExceeded: {error}"
    assert "torch/" not in "".join(lines) and "probes.py" not in "".join(lines)
    assert 'File "<submission>", line' in lines[1], "the script's own frames are kept"
