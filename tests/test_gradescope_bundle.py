"""The Gradescope autograder bundle, run as Gradescope runs it: its ``run_autograder``
on a folder laid out like ``/autograder`` (source/, submission/, results/), grading
one real notebook in a fresh kernel and writing a valid ``results.json``."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

from class_inputs import ROOT
from gradescope import assert_gradescope_results

from whipnb.cli import main
from whipnb.version import __version__


def bundle(path: Path, *options: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["gradescope-bundle", str(path), *options]) == 0, out.getvalue()


def test_the_bundle_holds_the_scripts_pinned_dependencies_and_this_whipnb(tmp_path):
    path = tmp_path / "autograder.zip"
    bundle(path)
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        modes = {info.filename: info.external_attr >> 16 for info in archive.infolist()}
        requirements = archive.read("requirements.txt").decode().split()
        setup = archive.read("setup.sh").decode()
        version = archive.read("whipnb/version.py").decode()
    assert {"setup.sh", "run_autograder", "whipnb-gradescope.json"} <= names
    assert {"whipnb/cli/gradescope.py", "whipnb/tasks/task1/buggy.py"} <= names
    for script in ("setup.sh", "run_autograder"):
        assert modes[script] & stat.S_IXUSR, script
    assert __version__ in version
    # Every dependency pinned to one version; torch from PyTorch's CPU index.
    assert requirements and all("==" in line for line in requirements)
    assert any(line.startswith("nbclient==") for line in requirements)
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.13.0" in setup
    # The Python the pinned packages were installed for, whatever Ubuntu ships.
    assert f"uv venv --python {sys.version_info.major}.{sys.version_info.minor} " in setup


def test_run_autograder_grades_a_submission_into_results_json(tmp_path):
    path = tmp_path / "autograder.zip"
    bundle(path, "--task", "task1", "--task", "task2", "--points", "10",
           "--test-visibility", "after_published")  # fmt: skip
    root = tmp_path / "autograder"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(root / "source")
    # Gradescope copies run_autograder to the root and runs it from there.
    shutil.copy(root / "source" / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    shutil.copy(ROOT / "notebooks" / "task1.ipynb", root / "submission" / "task1.ipynb")
    metadata = {"users": [{"email": "alice@example.edu", "name": "Alice"}]}
    (root / "submission_metadata.json").write_text(json.dumps(metadata))
    environment = {key: value for key, value in os.environ.items() if key not in {"PYTHONPATH"}}
    environment |= {"WHIPNB_AUTOGRADER_ROOT": str(root), "WHIPNB_PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(root / "run_autograder")],
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads((root / "results" / "results.json").read_text())
    assert_gradescope_results(results)
    task1, *checks, task2 = results["tests"]
    # The shipped buggy notebook: the seed's "both bugs" row, 0.15-0.25 of 10 points.
    assert task1["name"].startswith("task1") and 1.5 <= task1["score"] <= 2.5
    assert task1["max_score"] == 10 and task1["status"] == "failed"
    assert checks and {test["visibility"] for test in checks} == {"after_published"}
    assert any(test["status"] == "failed" for test in checks)
    assert task2["name"].startswith("task2") and task2["score"] == 0 and task2["max_score"] == 10
    assert results["score"] == task1["score"]
    assert results["extra_data"]["learner"] == "alice@example.edu"
    assert results["extra_data"]["whipnb_version"] == __version__
    # Nothing but the results was written next to the submission.
    assert sorted(p.name for p in (root / "submission").iterdir()) == ["task1.ipynb"]


def test_a_submission_without_a_notebook_gets_results_saying_so(tmp_path, monkeypatch):
    """No kernel needed: nothing to grade, yet Gradescope gets a valid results.json
    with every task of the assignment failed at 0 of its points."""
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "submission" / "notes.txt").write_text("I could not finish")
    config = root / "whipnb-gradescope.json"
    config.write_text(json.dumps({"tasks": ["task1", "task3"], "points": 5}))
    monkeypatch.setenv("WHIPNB_AUTOGRADER_ROOT", str(root))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["gradescope-run", "--config", str(config)]) == 0
    results = json.loads((root / "results" / "results.json").read_text())
    assert_gradescope_results(results)
    assert [(t["name"].split(":")[0], t["score"], t["max_score"]) for t in results["tests"]] == [
        ("task1", 0.0, 5),
        ("task3", 0.0, 5),
    ]
    assert results["score"] == 0 and "No gradable notebook" in results["output"]
    assert results["extra_data"]["learner"] == "submission"  # no submission_metadata.json
