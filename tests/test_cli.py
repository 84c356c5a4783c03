"""The command line's own behaviour: help, tasks, progress display, usage errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from whipnb.cli import main
from whipnb.cli.grade import GradingDisplay
from whipnb.core.result import failure_result
from whipnb.headless.batch import Outcome
from whipnb.headless.submissions import Submission


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("grade", ["--jobs", "--timeout", "--memory-mb", "--db", "--force", "--quiet"]),
        ("export", ["--csv-long", "--csv-wide", "--json", "--gradescope", "--visibility"]),
        ("report", ["--output", "--db"]),
        ("tasks", []),
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
