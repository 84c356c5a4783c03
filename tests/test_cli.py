"""The command line's own behaviour: help, tasks, progress display, usage errors, and
one real class graded by learner folders (two kernels, shared by the tests below)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest
from class_inputs import ROOT
from kernels import write_notebook
from rich.console import Console

from whipnb import Check, Result
from whipnb.cli import main
from whipnb.cli.grade import GradingDisplay
from whipnb.cli.main import COMMANDS
from whipnb.core.result import failure_result
from whipnb.gradebook.store import Gradebook
from whipnb.headless.batch import Outcome
from whipnb.headless.submissions import Submission


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("grade", ["--jobs", "--timeout", "--memory-mb", "--db", "--force", "--quiet"]),
        ("export", ["--csv-long", "--csv-wide", "--json", "--gradescope", "--visibility"]),
        ("report", ["--output", "--db", "--similarity-threshold"]),
        ("feedback", ["--output", "--learner", "--task", "--db"]),
        ("similarity", ["--threshold", "--min-shared", "--max-common", "--json"]),
        ("gradebook", ["list", "remove"]),
        ("gradescope-bundle", ["--points", "--task", "--visibility", "--test-visibility"]),
        ("gradescope-run", ["--config"]),
        ("tasks", []),
        ("serve", ["--host", "--port", "--jobs", "--kernels-ahead", "--tool-timeout", "--sandbox"]),
    ],
)
def test_every_subcommand_has_help(command, options, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert f"whipnb {command}" in text
    for option in options:
        assert option in text


def test_tasks_lists_the_tasks(capsys):
    assert main(["tasks"]) == 0
    assert "task1" in capsys.readouterr().out


def test_the_progress_bar_counts_statuses_on_a_terminal():
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=120)
    outcome = Outcome(
        Submission(Path("a_task1.ipynb"), "a", "h", "task1"),
        failure_result("task1", "timeout", "stopped"),
    )
    with GradingDisplay(console, 3, quiet=False) as display:
        display(outcome)
        display(outcome)
        assert display.bar is not None
        assert display.bar.tasks[0].completed == 2
    output = screen.getvalue()
    assert "2/3" in output and "timeout 2" in output


def test_a_log_gets_one_line_per_submission_and_quiet_gets_none():
    outcome = Outcome(
        Submission(Path("a_task1.ipynb"), "a", "h", "task1"),
        failure_result("task1", "invalid", "no graded cell"),
    )
    logs = {}
    for quiet in (False, True):
        screen = io.StringIO()
        with GradingDisplay(Console(file=screen), 1, quiet) as display:
            display(outcome)
        logs[quiet] = screen.getvalue().splitlines()
    (line,) = logs[False]
    assert "invalid" in line and "a_task1.ipynb" in line
    assert logs[True] == []


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["grade", str(tmp_path)]) == 2  # an empty folder
    assert main(["export", "--db", str(tmp_path / "none.sqlite"), "--json", "x.json"]) == 2
    assert main(["export", "--db", str(tmp_path / "none.sqlite")]) == 2
    assert main(["report", "--db", str(tmp_path / "none.sqlite")]) == 2
    out = capsys.readouterr().out
    assert "no notebooks found" in out and "no gradebook" in out and "nothing to export" in out
    with pytest.raises(SystemExit):
        main(["grade", str(tmp_path), "--jobs", "0"])


def help_texts() -> dict[str, str]:
    """``whipnb --help`` and every sub-command's (and sub-sub-command's) help."""
    texts = {}
    commands = [[]] + [[name] for name in ("grade", "export", "report", "feedback")]
    commands += [["similarity"], ["gradebook"], ["gradebook", "list"], ["gradebook", "remove"]]
    commands += [["gradescope-bundle"], ["gradescope-run"], ["tasks"], ["serve"]]
    for command in commands:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            main([*command, "--help"])
        texts[" ".join(command)] = out.getvalue()
    return texts


def test_help_is_plain_text_for_every_command():
    texts = help_texts()
    assert len(texts) == 13 and len(COMMANDS) == 9
    for command, text in texts.items():
        assert "``" not in text, command
        assert "usage: whipnb" in text


# ---------------------------------------------------------------- a real class


@dataclass(frozen=True)
class GradedClass:
    folder: Path
    db: Path
    output: str
    records: list[dict]


def run_cli(*args: object) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(arg) for arg in args])
    return code, out.getvalue()


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory) -> GradedClass:
    """``whipnb grade subs/alice subs/bob extra``: alice and bob each hand in
    ``task1.ipynb`` (the shipped solution and the shipped buggy notebook), and an older,
    unreadable ``extra/alice_task1.ipynb`` also maps to alice's task 1."""
    folder = tmp_path_factory.mktemp("class")
    (folder / "subs" / "alice").mkdir(parents=True)
    (folder / "subs" / "bob").mkdir()
    shutil.copy(ROOT / "solutions" / "task1.ipynb", folder / "subs" / "alice" / "task1.ipynb")
    shutil.copy(ROOT / "notebooks" / "task1.ipynb", folder / "subs" / "bob" / "task1.ipynb")
    (folder / "extra").mkdir()
    stale = write_notebook(folder / "extra" / "alice_task1.ipynb", "print('no graded cell')")
    os.utime(stale, (1_000_000_000, 1_000_000_000))
    db = folder / "book.sqlite"
    grades = folder / "grades.json"
    code, output = run_cli(
        "grade", folder / "subs" / "alice", folder / "subs" / "bob", folder / "extra",
        "--db", db, "--json", grades, "--jobs", "2", "--kernels-ahead", "0",
    )  # fmt: skip
    assert code == 0, output
    return GradedClass(folder, db, output, json.loads(grades.read_text()))


def test_learner_folders_grade_as_two_learners_and_export_two_rows(graded_class):
    by_path = {Path(r["path"]).relative_to(graded_class.folder).as_posix(): r for r in
               graded_class.records}  # fmt: skip
    assert {path: r["learner"] for path, r in by_path.items()} == {
        "subs/alice/task1.ipynb": "alice",
        "subs/bob/task1.ipynb": "bob",
        "extra/alice_task1.ipynb": "alice",
    }
    # The shipped solution lands in the top band, the buggy script in the seed's
    # "step before backward" row (0.15-0.25, as tests/class_inputs.py states).
    assert by_path["subs/alice/task1.ipynb"]["score"] >= 0.85
    assert 0.15 <= by_path["subs/bob/task1.ipynb"]["score"] <= 0.25
    wide = graded_class.folder / "wide.csv"
    code, _ = run_cli("export", "--db", graded_class.db, "--csv-wide", wide)
    assert code == 0
    with open(wide, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["learner"] for row in rows] == ["alice", "bob"]
    alice, bob = rows
    assert float(alice["task1"]) == by_path["subs/alice/task1.ipynb"]["score"]
    assert float(bob["task1"]) == by_path["subs/bob/task1.ipynb"]["score"]
    # Which bug bob missed: the check his record fails is 0 in his row, 1 in alice's.
    failed = [c["id"] for c in by_path["subs/bob/task1.ipynb"]["checks"] if not c["passed"]]
    assert failed and all(bob[f"task1:{key}"] == "0" and alice[f"task1:{key}"] == "1"
                          for key in failed)  # fmt: skip


def test_duplicates_are_reported_kept_and_the_choice_explained(graded_class):
    alice_paths = sorted(r["path"] for r in graded_class.records if r["learner"] == "alice")
    assert "duplicate: 2 files for learner 'alice', task1" in graded_class.output
    for record in graded_class.records:
        if record["learner"] == "alice":
            assert record["duplicates"] == [p for p in alice_paths if p != record["path"]]
    with sqlite3.connect(graded_class.db) as connection:
        stored = connection.execute("SELECT learner, path FROM gradings").fetchall()
    assert sorted(path for learner, path in stored if learner == "alice") == alice_paths
    long = graded_class.folder / "long.csv"
    assert run_cli("export", "--db", graded_class.db, "--csv-long", long)[0] == 0
    with open(long, newline="") as handle:
        alice = next(row for row in csv.DictReader(handle) if row["learner"] == "alice")
    # The newer file (the real notebook, not the stale unreadable one) is used.
    assert alice["path"].endswith("subs/alice/task1.ipynb") and alice["status"] == "graded"
    assert alice["other_files"].endswith("extra/alice_task1.ipynb")
    assert "newest of 2 files" in alice["chosen_because"]


def test_the_summary_mean_counts_every_submission(graded_class):
    scores = [r["score"] for r in graded_class.records]  # the invalid one scores 0
    line = next(line for line in graded_class.output.splitlines() if line.startswith("│ task1"))
    cells = [cell.strip() for cell in line.strip("│").split("│")]
    assert cells[1] == "3" and cells[-1] == f"{sum(scores) / 3:.3f}"


def test_a_missing_path_is_an_error_and_records_nothing(tmp_path):
    write_notebook(tmp_path / "alice_task1.ipynb", "%%whip_grade task1\nprint(1)\n")
    db = tmp_path / "book.sqlite"
    code, output = run_cli("grade", tmp_path, tmp_path / "nope", "--db", db)
    assert code == 2
    assert f"no such file or folder: {tmp_path / 'nope'}" in output
    assert "nothing was graded" in output
    assert not db.exists()


# ---------------------------------------------------------------- gradebook list / remove


def crafted_gradebook(path: Path) -> None:
    check = Check("runs", "The script runs", True, "ran")
    with Gradebook(path) as book:
        for learner, score in (("alice", 0.9), ("nope", 0.0), ("bob", 0.5)):
            result = Result("task1", score, "graded", [check], {}, "made up", 1.0, "0.1.0")
            submission = Submission(Path(f"{learner}_task1.ipynb"), learner, "h" * 64, "task1")
            book.add(submission, result, timeout_s=None, memory_mb=None, started_at="t0")


def test_gradebook_list_and_remove(tmp_path, monkeypatch):
    db = tmp_path / "book.sqlite"
    crafted_gradebook(db)
    code, listing = run_cli("gradebook", "list", "--db", db)
    assert code == 0 and all(name in listing for name in ("alice", "nope", "bob"))
    code, listing = run_cli("gradebook", "list", "--db", db, "--learner", "bob")
    assert code == 0 and "bob" in listing and "alice" not in listing
    # Without --yes and without a terminal to ask on, nothing is removed.
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    code, output = run_cli("gradebook", "remove", "--db", db, "--learner", "nope")
    assert code == 1 and "nothing removed" in output
    assert run_cli("gradebook", "remove", "--db", db)[0] == 2  # no filter: refused
    code, output = run_cli("gradebook", "remove", "--db", db, "--learner", "nope", "--yes")
    assert code == 0 and "removed 1 records" in output
    with Gradebook(db) as book:
        assert sorted(g.learner for g in book.gradings()) == ["alice", "bob"]
    code, output = run_cli("gradebook", "remove", "--db", db, "--id", "999", "--yes")
    assert code == 1 and "no record matches" in output
