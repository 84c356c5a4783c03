"""Finding submissions and naming their learners (no kernel needed)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path, PurePath

import nbformat
import pytest
from kernels import write_notebook

from whipnb.headless.submissions import (
    LearnerNaming,
    MissingPaths,
    find_notebooks,
    learner_from_path,
    load_submission,
)

GRADED = "%%whip_grade task1\nprint('hello')\n"


@pytest.mark.parametrize(
    ("relative", "learner"),
    [
        ("alice_task1.ipynb", "alice"),
        ("task1-bob.ipynb", "bob"),
        ("Task 1 - carol.ipynb", "carol"),
        ("dave/task1.ipynb", "dave"),
        ("erin/task1/task1.ipynb", "erin"),  # nbgrader's submitted/<learner>/<assignment>/
        ("frank.ipynb", "frank"),
        ("task1.ipynb", "task1"),  # nothing else to go by
    ],
)
def test_learner_from_the_file_name(relative, learner):
    assert learner_from_path(PurePath(relative)) == learner


def test_a_pattern_names_learners_from_the_path(tmp_path):
    path = write_notebook(tmp_path / "12345_attempt2.ipynb", GRADED)
    naming = LearnerNaming(pattern=re.compile(r"(?P<learner>\d+)_attempt"))
    assert load_submission(path, tmp_path, naming).learner == "12345"
    # Without a named group the first group counts; a path it does not match
    # falls back to the file name.
    assert LearnerNaming(re.compile(r"^(\d+)_")).learner(PurePath("777_x.ipynb"), {}) == "777"
    assert LearnerNaming(re.compile(r"^(\d+)_")).learner(PurePath("zoe_task1.ipynb"), {}) == "zoe"


def test_metadata_names_learners_when_asked(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(GRADED)])
    notebook.metadata["lms"] = {"id": "u42"}
    path = tmp_path / "task1.ipynb"
    nbformat.write(notebook, path)
    assert load_submission(path, tmp_path, LearnerNaming(metadata_key="lms.id")).learner == "u42"
    # Absent key: the default rule decides (here the folder given).
    missing = LearnerNaming(metadata_key="lms.email")
    assert load_submission(path, tmp_path, missing).learner == tmp_path.name


def test_folders_are_searched_recursively_for_notebooks_only(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    write_notebook(tmp_path / "b" / "deep" / "x_task1.ipynb", GRADED)
    write_notebook(tmp_path / "a_task1.ipynb", GRADED)
    (tmp_path / "notes.txt").write_text("not a notebook")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write_notebook(tmp_path / ".ipynb_checkpoints" / "a_task1-checkpoint.ipynb", GRADED)
    found = [path.relative_to(tmp_path).as_posix() for path, _ in find_notebooks([tmp_path])]
    assert found == ["a_task1.ipynb", "b/deep/x_task1.ipynb"]
    # A file reached twice is one submission.
    twice = find_notebooks([tmp_path, tmp_path / "a_task1.ipynb", tmp_path / "b"])
    assert [path.name for path, _ in twice] == ["a_task1.ipynb", "x_task1.ipynb"]


def test_a_named_file_that_is_not_a_notebook_is_invalid(tmp_path):
    script = tmp_path / "alice_task1.py"
    script.write_text("print('hi')\n")
    ((path, root),) = find_notebooks([script])
    submission = load_submission(path, root)
    assert submission.cell is None and "only .ipynb" in submission.problem


def test_a_submission_is_read_once_and_hashed(tmp_path):
    path = write_notebook(tmp_path / "alice_task1.ipynb", "%load_ext whipnb", GRADED)
    submission = load_submission(path, tmp_path)
    assert submission.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    assert submission.task == "task1" and submission.cell.body == "print('hello')\n"
    assert submission.problem == ""


def test_hostile_structure_is_invalid_not_a_crash(tmp_path):
    for name, text, words in (
        ("cells_task1.ipynb", '{"nbformat": 4, "cells": {"a": 1}}', "no list of cells"),
        ("odd_task1.ipynb", '{"nbformat": 4, "cells": [1, "x", null]}', "no graded cell"),
        ("blank_task1.ipynb", "   \n", "empty"),
    ):
        path = Path(tmp_path / name)
        path.write_text(text)
        submission = load_submission(path, tmp_path)
        assert submission.cell is None and words in submission.problem, submission.problem


def learners_of(*paths: Path | str) -> dict[str, str]:
    """Every notebook found under ``paths`` -> its learner, as ``whipnb grade`` names them."""
    found = find_notebooks(paths)
    naming = LearnerNaming().for_batch(found)
    return {path.as_posix(): load_submission(path, root, naming).learner for path, root in found}


def test_folders_given_one_per_learner_name_their_learners(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for learner in ("alice", "bob"):
        Path("subs", learner).mkdir(parents=True)
        write_notebook(Path("subs", learner, "task1.ipynb"), GRADED)
    assert learners_of("subs/alice", "subs/bob") == {
        "subs/alice/task1.ipynb": "alice",
        "subs/bob/task1.ipynb": "bob",
    }
    # Named one by one, each file is named by its folder.
    assert learners_of("subs/alice/task1.ipynb", "subs/bob/task1.ipynb") == {
        "subs/alice/task1.ipynb": "alice",
        "subs/bob/task1.ipynb": "bob",
    }
    # The class folder given: each learner's own folder.
    assert set(learners_of("subs").values()) == {"alice", "bob"}


def test_the_shipped_notebooks_and_solutions_are_two_learners(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for folder in ("notebooks", "solutions"):
        Path(folder).mkdir()
        for task in ("task1", "task2"):
            write_notebook(Path(folder, f"{task}.ipynb"), GRADED)
    learners = learners_of("notebooks", "solutions")
    assert learners == {
        "notebooks/task1.ipynb": "notebooks",
        "notebooks/task2.ipynb": "notebooks",
        "solutions/task1.ipynb": "solutions",
        "solutions/task2.ipynb": "solutions",
    }


@pytest.mark.parametrize(
    ("files", "learners"),
    [
        # A learner's folder names its notebooks, whatever their file names.
        (
            ["alice/task1_final.ipynb", "alice/Task 2.ipynb", "bob/task1.ipynb"],
            ["alice", "alice", "bob"],
        ),
        # nbgrader: submitted/<learner>/<assignment>/<notebook>.
        (["erin/task1/task1.ipynb", "gus/task1/task1.ipynb"], ["erin", "gus"]),
        # An unzipped upload per learner and task.
        (["hana_task1/upload.ipynb", "ivan_task1/upload.ipynb"], ["hana", "ivan"]),
        # A folder in which a task appears twice holds several learners: the file names
        # tell them apart; they never merge into the folder's name.
        (["section1/ann_task1.ipynb", "section1/ben_task1.ipynb"], ["ann", "ben"]),
        (["section1/ann/task1.ipynb", "section1/ben/task1.ipynb"], ["ann", "ben"]),
        # A folder whose files name two learners holds two, even with different tasks.
        (["late/ann_task1.ipynb", "late/ben_task2.ipynb"], ["ann", "ben"]),
        # A second copy of a learner's file is the same learner's (reported as a duplicate).
        (["kim/task1.ipynb", "kim/task1 (1).ipynb", "kim/task1 - Copy.ipynb"], ["kim"] * 3),
        (["max/task1.ipynb", "max/task1_final.ipynb"], ["max", "max"]),
        (["lee_task1.ipynb", "lee_task1 (2).ipynb"], ["lee", "lee"]),
        # Numbers are names too (student numbers).
        (["12345_task1.ipynb", "67890_task1.ipynb"], ["12345", "67890"]),
        # Flat, as LMS downloads are.
        (["cat_task1.ipynb", "dan_task1.ipynb", "dan_task2.ipynb"], ["cat", "dan", "dan"]),
        # Files naming no task are told apart by name.
        (["eve.ipynb", "fay.ipynb"], ["eve", "fay"]),
    ],
)
def test_learner_ids_in_a_class_folder(tmp_path, files, learners):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        write_notebook(tmp_path / name, GRADED)
    found = learners_of(tmp_path)
    assert [found[(tmp_path / name).as_posix()] for name in files] == learners


def test_a_missing_path_is_an_error_not_a_learner(tmp_path):
    write_notebook(tmp_path / "alice_task1.ipynb", GRADED)
    with pytest.raises(MissingPaths) as error:
        find_notebooks([tmp_path, tmp_path / "nope", "also-missing"])
    assert error.value.paths == [str(tmp_path / "nope"), "also-missing"]
    # A broken link named directly exists (it gets an invalid record).
    (tmp_path / "gone_task1.ipynb").symlink_to(tmp_path / "nowhere.ipynb")
    assert len(find_notebooks([tmp_path / "gone_task1.ipynb"])) == 1
