"""``whipnb grade --scheduler``: the same grading on a Dask distributed cluster.

The cluster here runs its worker threads inside the test process (over TCP, as
a remote one would be reached); the grader is a separate process that only
knows the scheduler's address.  Limits are enforced on the worker."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from class_inputs import MEMORY_BOMB, graded_notebook, valid_bodies
from helpers import grade_quietly
from processes import MARK, marked_processes

distributed = pytest.importorskip("distributed")


def test_a_dask_cluster_grades_with_the_same_scores_and_limits(tmp_path, monkeypatch):
    mark = uuid.uuid4().hex
    monkeypatch.setenv(MARK, mark)  # the worker's kernels inherit it
    solution, _ = valid_bodies()["alice_task1.ipynb"]
    graded_notebook(tmp_path / "alice_task1.ipynb", solution)
    graded_notebook(tmp_path / "bomb_task1.ipynb", MEMORY_BOMB)
    out = tmp_path / "grades.json"
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=2,
        processes=False,
        protocol="tcp://",
        dashboard_address=None,
    ) as cluster:
        finished = subprocess.run(
            [sys.executable, "-m", "whipnb", "grade", str(tmp_path), "--memory-mb", "1024",
             "--scheduler", cluster.scheduler_address, "--db", str(tmp_path / "book.sqlite"),
             "--json", str(out)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert finished.returncode == 0, finished.stdout + finished.stderr
    records = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert records["bomb_task1.ipynb"]["status"] == "memory"
    assert records["alice_task1.ipynb"]["status"] == "graded"
    assert records["alice_task1.ipynb"]["score"] == grade_quietly("task1", solution).score
    assert marked_processes(mark) == []
