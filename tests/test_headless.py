"""``whipnb grade``: records and statuses per docs/CONTRACTS.md (3, 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from kernels import write_notebook

from whipnb.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_grade_writes_one_json_record_per_notebook(tmp_path, capsys):
    shutil.copy(ROOT / "notebooks" / "task1.ipynb", tmp_path / "buggy.ipynb")
    shutil.copy(ROOT / "solutions" / "task1.ipynb", tmp_path / "fixed.ipynb")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    out = tmp_path / "grades.json"
    db = str(tmp_path / "gradebook.sqlite")
    assert main(["grade", str(tmp_path), "--jobs", "2", "--json", str(out), "--db", db]) == 0
    records = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert set(records) == {"buggy.ipynb", "fixed.ipynb"}
    expected = {
        "path",
        "task",
        "score",
        "band",
        "status",
        "checks",
        "metrics",
        "message",
        "duration_s",
    }
    for record in records.values():
        assert expected <= set(record)
        assert record["status"] == "graded" and record["task"] == "task1"
    assert 0.15 <= records["buggy.ipynb"]["score"] <= 0.25
    assert records["fixed.ipynb"]["score"] >= 0.85
    assert "whipnb grades" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix == ".ipynb"} == before


def test_stored_outputs_of_the_submission_are_ignored(tmp_path):
    import nbformat

    notebook = nbformat.read(ROOT / "notebooks" / "task1.ipynb", as_version=4)
    graded = notebook.cells[-1]
    graded.outputs = [
        nbformat.v4.new_output(
            "display_data",
            data={
                "application/vnd.whipnb.result+json": {"task": "task1", "score": 1.0},
                "text/plain": "score 1.0",
            },
        )
    ]
    path = tmp_path / "claims.ipynb"
    nbformat.write(notebook, path)
    out = tmp_path / "grades.json"
    main(["grade", str(path), "--json", str(out), "--db", str(tmp_path / "gradebook.sqlite")])
    (record,) = json.loads(out.read_text())
    assert 0.15 <= record["score"] <= 0.25


def _grade_one(tmp_path: Path, path: Path, *extra: str) -> dict:
    out = tmp_path / "grades.json"
    db = str(tmp_path / f"{path.stem}.sqlite")
    assert main(["grade", str(path), "--json", str(out), "--db", db, *extra]) == 0
    (record,) = json.loads(out.read_text())
    return record


def test_endless_loop_is_a_timeout(tmp_path):
    path = write_notebook(tmp_path / "loop.ipynb", "%%whip_grade task1\nwhile True:\n    pass\n")
    record = _grade_one(tmp_path, path, "--timeout", "4")
    assert record["status"] == "timeout" and record["score"] == 0.0
    assert "did not finish" in record["message"]


def test_kernel_exit_is_kernel_died(tmp_path):
    path = write_notebook(tmp_path / "exit.ipynb", "%%whip_grade task1\nimport os\nos._exit(3)\n")
    record = _grade_one(tmp_path, path)
    assert record["status"] == "kernel_died" and record["score"] == 0.0
    assert "kernel died" in record["message"]


def test_unusable_notebooks_are_invalid(tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [', encoding="utf-8")
    no_cell = write_notebook(tmp_path / "nocell.ipynb", "print('no graded cell here')")
    unknown = write_notebook(tmp_path / "unknown.ipynb", "%%whip_grade task42\npass\n")
    for path, words in (
        (broken, "not a readable notebook"),
        (no_cell, "no graded cell"),
        (unknown, "unknown task"),
    ):
        record = _grade_one(tmp_path, path)
        assert record["status"] == "invalid" and record["score"] == 0.0
        assert words in record["message"], record["message"]


def test_the_diagnosis_is_in_the_records_only_when_asked_for(tmp_path):
    """``--diagnosis`` adds each check's cause and fix; the score is the same, and without
    it a record is what it always was (the gradebook keeps both: the re-run reuses it)."""
    path = tmp_path / "task1.ipynb"
    shutil.copy(ROOT / "notebooks" / "task1.ipynb", path)
    db = str(tmp_path / "gradebook.sqlite")
    asked, plain = tmp_path / "asked.json", tmp_path / "plain.json"
    assert main(["grade", str(path), "--json", str(asked), "--db", db, "--diagnosis"]) == 0
    assert main(["grade", str(path), "--json", str(plain), "--db", db]) == 0
    (with_diagnosis,) = json.loads(asked.read_text())
    (without,) = json.loads(plain.read_text())
    gradients = next(c for c in with_diagnosis["checks"] if c["id"] == "gradients")
    assert "step() runs before loss.backward()" in gradients["diagnosis"]
    assert "step() runs before" not in gradients["detail"], "the finding is the symptom only"
    assert all(set(c) == {"id", "title", "passed", "detail"} for c in without["checks"])
    assert without["score"] == with_diagnosis["score"]
