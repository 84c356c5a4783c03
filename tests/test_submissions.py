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
    # Absent key: the file name decides.
    missing = LearnerNaming(metadata_key="lms.email")
    assert load_submission(path, tmp_path, missing).learner == "task1"


def test_folders_are_searched_recursively_for_notebooks_only(tmp_path):
    (tmp_path / "b" / "deep").mkdir(parents=True)
    write_notebook(tmp_path / "b" / "deep" / "x_task1.ipynb", GRADED)
    write_notebook(tmp_path / "a_task1.ipynb", GRADED)
    (tmp_path / "notes.txt").write_text("not a notebook")
    (tmp_path / ".ipynb_checkpoints").mkdir()
    write_notebook(tmp_path / ".ipynb_checkpoints" / "a_task1-checkpoint.ipynb", GRADED)
    found = [path.relative_to(tmp_path).as_posix() for path, _ in find_notebooks([tmp_path])]
    assert found == ["a_task1.ipynb", "b/deep/x_task1.ipynb"]


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
