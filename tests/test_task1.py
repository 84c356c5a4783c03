"""Task 1: each bug really happens and the findings name it.

Rubric rows and valid alternative fixes are covered by the calibration cases
(``whipnb/tasks/task1/cases.py``, graded in ``test_calibration.py``)."""

from __future__ import annotations

from helpers import check, edit, grade_quietly, run_quietly

STEP_FIRST = "        optimizer.step()\n        loss.backward()"
BACKWARD_FIRST = "        loss.backward()\n        optimizer.step()"


# --- symptoms -------------------------------------------------------------------


def test_buggy_script_never_updates_the_weights(task1):
    run = run_quietly(task1.buggy_source)
    steps = run.evidence.steps
    assert len(steps) == 20 * 63
    assert not any(step.has_grad for step in steps)
    assert run.evidence.moving_steps == 0
    losses = run.evidence.losses
    assert max(losses[-63:]) > 5 and abs(sum(losses[:63]) - sum(losses[-63:])) / 63 < 0.1


def test_fixing_only_the_order_shows_the_exploding_loss(task1):
    run = run_quietly(edit(task1.buggy_source, (STEP_FIRST, BACKWARD_FIRST)))
    assert all(step.applied_fresh_gradient for step in run.evidence.steps)
    assert max(run.evidence.losses[63:]) > 20  # spikes far above the start (about 8)


def test_fixing_only_the_learning_rate_still_learns_nothing(task1):
    run = run_quietly(edit(task1.buggy_source, ("lr=10.0", "lr=0.01")))
    assert run.evidence.moving_steps == 0
    assert run.evidence.learning_rates == [0.01]


# --- rubric rows -------------------------------------------------------------------


def test_reference_solution_is_excellent(task1):
    result = grade_quietly("task1", task1.solution_source)
    assert 0.85 <= result.score <= 1.0
    assert result.passed_all
    assert result.metrics["heldout_accuracy"] > 0.90


def test_one_bug_fixed_order_lands_in_its_row(task1):
    result = grade_quietly("task1", edit(task1.buggy_source, (STEP_FIRST, BACKWARD_FIRST)))
    assert 0.40 <= result.score <= 0.70
    assert check(result, "gradients").passed
    assert not check(result, "learning_rate").passed
    assert "spiked" in check(result, "learning_rate").detail


def test_one_bug_fixed_learning_rate_lands_in_its_row(task1):
    result = grade_quietly("task1", edit(task1.buggy_source, ("lr=10.0", "lr=0.01")))
    assert 0.40 <= result.score <= 0.70
    assert not check(result, "gradients").passed


def test_nothing_fixed_lands_in_its_row(task1):
    result = grade_quietly("task1", task1.buggy_source)
    assert 0.15 <= result.score <= 0.25
    assert "found no gradient" in check(result, "gradients").detail


def test_crash_lands_in_its_row(task1):
    wrong_width = ("model = nn.Linear(2, 2)", "model = nn.Linear(3, 2)")
    result = grade_quietly("task1", edit(task1.solution_source, wrong_width))
    assert 0.0 <= result.score <= 0.10
    assert not check(result, "runs").passed
    assert "RuntimeError" in check(result, "runs").detail


def test_too_small_learning_rate_is_graded_for_what_it_achieves(task1):
    slow = grade_quietly("task1", edit(task1.solution_source, ("lr=0.01", "lr=0.0001")))
    good = grade_quietly("task1", task1.solution_source)
    assert 0.70 <= slow.score < 0.85 <= good.score


def test_better_fix_never_scores_lower_than_worse_one(task1):
    scores = [
        grade_quietly("task1", source).score
        for source in (
            "raise SystemExit(1)",
            task1.buggy_source,
            edit(task1.buggy_source, (STEP_FIRST, BACKWARD_FIRST)),
            task1.solution_source,
        )
    ]
    assert scores == sorted(scores)


def test_printed_numbers_alone_earn_nothing():
    fake = 'print("LOSSES:[0.9, 0.5, 0.2, 0.1]")\nprint("VAL_ACC: 0.97")\n'
    result = grade_quietly("task1", fake)
    assert result.score <= 0.25
    assert not check(result, "accuracy").passed


def test_same_submission_scores_identically(task1):
    first = grade_quietly("task1", task1.solution_source)
    second = grade_quietly("task1", task1.solution_source)
    assert first.score == second.score and first.metrics == second.metrics


def test_a_clean_sys_exit_ends_the_script_without_a_crash(task1):
    clean = grade_quietly("task1", task1.solution_source + "import sys\nsys.exit(0)\n")
    assert clean.score == grade_quietly("task1", task1.solution_source).score
    failing = grade_quietly("task1", task1.solution_source + "import sys\nsys.exit(2)\n")
    assert failing.score <= 0.10 and "SystemExit" in failing.message
