"""The task registry: built-in tasks in order, tasks from other installed packages
through the ``whipnb.tasks`` entry-point group, and broken plugins left out with a
clear reason, never hiding the others."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
from helpers import edit, grade_quietly

import whipnb.tasks
from whipnb.cli.main import main
from whipnb.headless.kernels import warm_up
from whipnb.tasks import UnknownTaskError, all_tasks, get_task, task_order, task_problems

PLUGINS = Path(__file__).parent / "plugins"
BUILT_IN = [f"task{n}" for n in range(1, 7)]


def install(folder: Path, entry_points: str, name: str = "broken_course") -> None:
    """A ``*.dist-info`` with these entry points, as ``pip install`` leaves it."""
    dist = folder / f"{name}-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[whipnb.tasks]\n" + entry_points)


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A fresh folder on ``sys.path`` holding the course package; the registry is
    rebuilt on entry and on exit, so no other test sees the plugin tasks."""
    shutil.copytree(PLUGINS, tmp_path, dirs_exist_ok=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    whipnb.tasks.reload_tasks()
    yield tmp_path
    for name in [m for m in sys.modules if m == "course_tasks" or m.startswith("course_tasks.")]:
        del sys.modules[name]
    monkeypatch.undo()
    whipnb.tasks.reload_tasks()


def test_task_order_puts_numbered_tasks_first_then_names():
    names = ["nan_loss", "task10", "task2", "alpha", "task1", "task9x"]
    assert sorted(names, key=task_order) == [
        "task1",
        "task2",
        "task10",
        "alpha",
        "nan_loss",
        "task9x",
    ]


def test_built_in_tasks_come_in_numeric_order():
    assert list(all_tasks())[:6] == BUILT_IN


def test_a_plugin_task_is_registered_after_the_built_in_ones(site):
    tasks = all_tasks()
    assert list(tasks) == [*BUILT_IN, "nan_loss"]
    task = get_task("nan_loss")
    assert (task.title, task.timeout_s) == ("Keep the loss finite", 60.0)
    assert "Train the tiny model" in task.description
    assert task_problems() == {}


def test_a_plugin_task_is_graded_like_a_built_in_one(site):
    task = get_task("nan_loss")
    fixed = grade_quietly("nan_loss", task.solution_source)
    assert (fixed.rubric_row, fixed.score, fixed.status) == ("Every loss finite", 1.0, "graded")
    assert fixed.metrics["heldout_accuracy"] > 0.95  # the blobs are 3 standard deviations apart
    # the buggy script's loss turns NaN at step 10 of 20: the "nan" row at quality 10/20
    buggy = grade_quietly("nan_loss", task.buggy_source)
    assert buggy.rubric_row == "The loss turns NaN"
    assert buggy.score == round(0.10 + 0.5 * (0.25 - 0.10), 4)
    crashed = grade_quietly("nan_loss", "raise ValueError('no')\n")
    assert (crashed.rubric_row, crashed.score) == ("Code crashes", 0.0)


def test_a_plugin_task_gets_the_templates_data_rule(site):
    task = get_task("nan_loss")
    on_validation = edit(
        task.solution_source,
        (
            "X_train, y_train, X_val, y_val = make_data()\n",
            "X_train, y_train, X_train, y_train = make_data()\n",
        ),
    )
    capped = grade_quietly("nan_loss", on_validation)
    assert (capped.rubric_row, capped.score) == ("Every loss finite", 0.85)
    assert "trained on 100 of the 100 rows of the validation split" in capped.tampering
    on_held_out = edit(
        task.solution_source,
        (
            "X_train, y_train, X_val, y_val = make_data()\n",
            "from course_tasks.data import make_samples\n"
            "X_train, y_train = make_samples(1_000, 99)\n",
        ),
    )
    voided = grade_quietly("nan_loss", on_held_out)
    assert (voided.rubric_row, voided.score) == ("Code crashes", 0.0)
    assert "trained on 1000 of the 1000 rows of the grader's held-out data" in voided.tampering


def test_patching_a_plugin_grader_is_undone_and_flagged(site):
    patch = (
        "import course_tasks.grading as grading\n"
        "grading.NanLossGrader.judge = lambda self, graded, checks: None\n"
    )
    result = grade_quietly("nan_loss", get_task("nan_loss").buggy_source + patch)
    assert "replaced course_tasks.grading.NanLossGrader.judge" in result.tampering
    assert result.rubric_row == "The loss turns NaN"  # graded by the real grader


def test_an_entry_point_may_name_a_task_class(site):
    (site / "course_tasks" / "by_class.py").write_text(
        "from course_tasks import NanLoss\n\n\nclass Variant(NanLoss):\n    id = 'nan_loss_2'\n"
    )
    install(site, "nan_loss_2 = course_tasks.by_class:Variant\n", name="by_class")
    whipnb.tasks.reload_tasks()
    task = get_task("nan_loss_2")
    assert type(task).__name__ == "Variant" and task.title == "Keep the loss finite"
    assert list(all_tasks()) == [*BUILT_IN, "nan_loss", "nan_loss_2"]


def test_broken_plugins_are_left_out_with_a_reason(site):
    install(
        site,
        "missing = course_missing:TASK\n"
        "typo = course_tasks:TSAK\n"
        "not_a_task = course_tasks:Row\n"
        "takes_task1 = course_tasks.clash:TASK\n",
    )
    (site / "course_tasks" / "clash.py").write_text(
        "from course_tasks import NanLoss\n\n\nclass Clash(NanLoss):\n    id = 'task1'\n\n\n"
        "TASK = Clash()\n"
    )
    whipnb.tasks.reload_tasks()
    tasks = all_tasks()
    assert list(tasks) == [*BUILT_IN, "nan_loss"]  # nothing hidden by the broken ones
    problems = task_problems()
    assert set(problems) == {"missing", "typo", "not_a_task", "takes_task1"}
    assert "ModuleNotFoundError: No module named 'course_missing'" in problems["missing"]
    assert "AttributeError" in problems["typo"] and "TSAK" in problems["typo"]
    assert "is a type, not a whipnb.tasks.Task" in problems["not_a_task"]
    assert "task id 'task1' is already taken" in problems["takes_task1"]
    assert get_task("task1").title == "Broken training loop"
    with pytest.raises(UnknownTaskError, match="could not be loaded: entry point 'missing'"):
        get_task("missing")


def test_whipnb_tasks_lists_plugins_and_says_which_were_left_out(site, capsys):
    install(site, "missing = course_missing:TASK\n")
    whipnb.tasks.reload_tasks()
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "nan_loss" in out and "Keep the loss finite" in out
    assert "task 'missing' left out: entry point 'missing' (course_missing:TASK) failed" in out


def test_a_plugin_whose_grading_code_is_broken_breaks_only_its_own_gradings(site):
    (site / "course_tasks" / "no_grader.py").write_text(
        "from course_tasks import NanLoss\n\n\nclass NoGrader(NanLoss):\n"
        "    id = 'broken_grader'\n    grading = 'course_tasks.missing_grading:Grader'\n"
    )
    install(site, "no_grader = course_tasks.no_grader:NoGrader\n", name="no_grader")
    whipnb.tasks.reload_tasks()
    # what every kernel booted ahead runs; broken_grader sorts before nan_loss, whose
    # grader must still be loaded after it
    warm_up()
    assert "course_tasks.grading" in sys.modules
    with pytest.raises(ModuleNotFoundError, match="course_tasks.missing_grading"):
        grade_quietly("broken_grader", "print('hello')\n")
    assert grade_quietly("nan_loss", get_task("nan_loss").solution_source).score == 1.0


def test_an_unknown_task_lists_the_known_ones():
    with pytest.raises(UnknownTaskError, match="unknown task 'task9'; known tasks: task1, task2"):
        get_task("task9")
