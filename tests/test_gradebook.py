"""The gradebook, its exports and the report, on gradings made up here (no kernel needed)."""

from __future__ import annotations

import csv
import html
import json
import os
import re
import sqlite3
from pathlib import Path

import pytest
from gradescope import assert_gradescope_results

from whipnb import Check, Result
from whipnb.gradebook.exports import write_gradescope, write_long_csv, write_wide_csv
from whipnb.gradebook.report import build_report, check_rates
from whipnb.gradebook.store import ADDED_COLUMNS, SCHEMA, Gradebook, grader_id
from whipnb.headless.submissions import GradedCell, Submission

CHECKS = [
    Check("runs", "The script runs to the end", True, "no exception was raised"),
    Check("gradients", "Each step uses fresh gradients", False, "step() before backward()"),
]


def result(score: float, status: str = "graded", **extra) -> Result:
    fields = {
        "task": "task1",
        "score": score,
        "status": status,
        "checks": CHECKS if status == "graded" else [],
        "metrics": {"heldout_accuracy": 0.5},
        "message": "made up for a test",
        "duration_s": 1.5,
        "version": "0.1.0",
        **extra,
    }
    return Result(**fields)


def submission(learner: str, content: str = "a", task: str = "task1") -> Submission:
    return Submission(Path(f"{learner}_{task}.ipynb"), learner, content * 64, task)


@pytest.fixture
def book(tmp_path):
    with Gradebook(tmp_path / "book.sqlite") as gradebook:
        yield gradebook


def add(book: Gradebook, sub: Submission, res: Result, timeout_s=120.0, memory_mb=2048):
    return book.add(sub, res, timeout_s=timeout_s, memory_mb=memory_mb, started_at="t0")


def test_a_grading_is_kept_whole_and_found_again(book, tmp_path):
    stored = add(book, submission("alice"), result(0.97, tampering=["patched grade_source"]))
    assert stored.result.tampering == ["patched grade_source"]
    assert stored.grader == grader_id("task1") and stored.grader.startswith("0.1.0+")
    # Committed: another connection sees it at once.
    with Gradebook(tmp_path / "book.sqlite") as other:
        (again,) = list(other.gradings())
    assert again.result == stored.result and again.learner == "alice"


def test_reuse_needs_the_same_learner_and_content(book):
    add(book, submission("alice", "a"), result(0.97))
    assert book.reusable(submission("alice", "a"), 120.0, 2048).result.score == 0.97
    assert book.reusable(submission("alice", "b"), 120.0, 2048) is None  # resubmitted
    assert book.reusable(submission("bob", "a"), 120.0, 2048) is None  # another learner
    assert book.reusable(Submission(Path("x.ipynb"), "alice", "", "task1"), 120.0, 2048) is None


def test_a_submission_stopped_by_a_limit_is_graded_again_when_the_limit_changes(book):
    add(book, submission("slow", "s"), result(0.0, "timeout"), timeout_s=30.0)
    add(book, submission("big", "b"), result(0.0, "memory"), memory_mb=1024)
    add(book, submission("fine", "f"), result(0.9), timeout_s=30.0, memory_mb=1024)
    assert book.reusable(submission("slow", "s"), 30.0, 2048) is not None
    assert book.reusable(submission("slow", "s"), 300.0, 2048) is None
    assert book.reusable(submission("big", "b"), 30.0, 1024) is not None
    assert book.reusable(submission("big", "b"), 30.0, 4096) is None
    assert book.reusable(submission("fine", "f"), 300.0, 4096) is not None


def test_exports_report_the_newest_grading_per_learner_and_task(book, tmp_path):
    add(book, submission("alice", "a"), result(0.2))
    add(book, submission("alice", "b"), result(0.95))  # resubmitted, better
    add(book, submission("bob"), result(0.0, "timeout", message="stopped after 30 s"))
    add(book, submission("carol", task="(unknown)"), result(0.0, "invalid", task="(unknown)"))
    latest = book.latest()
    assert [(g.learner, g.result.score) for g in latest] == [
        ("alice", 0.95),
        ("bob", 0.0),
        ("carol", 0.0),
    ]

    write_long_csv(tmp_path / "long.csv", latest)
    write_wide_csv(tmp_path / "wide.csv", latest)
    with open(tmp_path / "long.csv", newline="") as handle:
        long_rows = list(csv.DictReader(handle))
    assert [(r["learner"], r["task"], r["status"]) for r in long_rows] == [
        ("alice", "task1", "graded"),
        ("bob", "task1", "timeout"),
        ("carol", "(unknown)", "invalid"),
    ]
    with open(tmp_path / "wide.csv", newline="") as handle:
        wide = list(csv.DictReader(handle))
    # Per check: 1 passed, 0 not (bob's timeout never showed either), empty for carol,
    # whose unreadable notebook has no task1 submission at all.
    assert wide == [
        {
            "learner": "alice",
            "task1": "0.95",
            "task1:runs": "1",
            "task1:gradients": "0",
            "total": "0.95",
            "chosen": "",
        },
        {
            "learner": "bob",
            "task1": "0.0",
            "task1:runs": "0",
            "task1:gradients": "0",
            "total": "0.0",
            "chosen": "",
        },
        {
            "learner": "carol",
            "task1": "",
            "task1:runs": "",
            "task1:gradients": "",
            "total": "0.0",
            "chosen": "",
        },
    ]
    assert [(r["check:runs"], r["check:gradients"]) for r in long_rows] == [
        ("1", "0"),
        ("0", "0"),
        ("", ""),
    ]
    assert {r["chosen_because"] for r in long_rows} == {"the only file for this learner and task"}


def test_gradescope_results_follow_the_documented_fields(book, tmp_path):
    add(book, submission("ann/o'neil"), result(0.8))
    add(book, submission("bob"), result(0.0, "kernel_died", message="the kernel died"))
    written = write_gradescope(
        tmp_path / "gs", book.latest(), points=5, visibility="after_due_date"
    )
    assert [path.parent.name for path in written] == ["ann_o_neil", "bob"]
    ann, bob = (json.loads(path.read_text()) for path in written)
    for document in (ann, bob):
        assert_gradescope_results(document)
        assert document["visibility"] == "after_due_date"
    assert ann["score"] == 4.0 and ann["extra_data"]["learner"] == "ann/o'neil"
    assert [test["status"] for test in ann["tests"]] == ["failed", "passed", "failed"]
    assert ann["tests"][2]["output"] == "step() before backward()"
    assert bob["score"] == 0.0 and "the kernel died" in bob["tests"][0]["output"]
    with pytest.raises(ValueError, match="visibility"):
        write_gradescope(tmp_path / "gs", book.latest(), visibility="public")


def test_the_report_ranks_checks_lists_failures_and_tampering(book):
    add(book, submission("alice"), result(0.97))
    add(
        book,
        submission("bob"),
        result(0.5, tampering=["replaced whipnb.core.grading.grade_source"]),
    )
    hostile = "<script>alert('x')</script> never finished"
    add(book, submission("eve"), result(0.0, "timeout", message=hostile))
    latest = book.latest()
    rates = check_rates(latest)
    # eve's timeout counts too: it passed no check.
    assert [(r.id, r.passed, r.total) for r in rates] == [("gradients", 0, 3), ("runs", 2, 3)]
    page = build_report(latest, "book.sqlite")
    assert "<script>" not in page  # learners' text is escaped
    text = html.unescape(page)
    assert hostile in text and "replaced whipnb.core.grading.grade_source" in text
    assert text.index("Each step uses fresh gradients") < text.index("The script runs to the end")
    assert page.count("data:image/png;base64,") == 1


def test_two_files_of_one_learner_and_task_are_both_kept_and_the_newest_file_is_used(
    book, tmp_path
):
    old, new = tmp_path / "alice" / "task1.ipynb", tmp_path / "alice" / "task1 (copy).ipynb"
    old.parent.mkdir()
    for path, mtime in ((new, 2_000_000_000), (old, 1_000_000_000)):
        path.write_text("{}")
        os.utime(path, (mtime, mtime))
    # The newer file is graded first: grading order must not decide, the files' age does.
    add(book, Submission(new, "alice", "n" * 64, "task1"), result(0.3))
    add(book, Submission(old, "alice", "o" * 64, "task1"), result(0.9))
    assert len(list(book.gradings())) == 2  # both kept
    (chosen,) = book.latest()
    assert chosen.path == str(new) and chosen.result.score == 0.3
    assert chosen.other_files == (str(old),)
    assert "newest of 2 files" in chosen.chosen_because
    assert "2033-05-18T03:33:20+00:00" in chosen.chosen_because  # 2e9 s after 1970, UTC

    write_long_csv(tmp_path / "long.csv", book.latest())
    write_wide_csv(tmp_path / "wide.csv", book.latest())
    with open(tmp_path / "long.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["files"], row["other_files"], row["score"]) == ("2", str(old), "0.3")
    assert "newest of 2 files" in row["chosen_because"]
    with open(tmp_path / "wide.csv", newline="") as handle:
        (wide,) = csv.DictReader(handle)
    assert wide["chosen"].startswith(f"task1: {new} (the newest of 2 files")
    record = chosen.record()
    assert record["other_files"] == [str(old)] and record["id"] == chosen.id


def test_records_can_be_removed(book):
    kept = add(book, submission("alice"), result(0.9))
    typo = add(book, submission("nope"), result(0.0, "invalid"))
    assert book.remove([typo.id, 12345]) == 1
    assert [g.id for g in book.gradings()] == [kept.id]


def test_an_older_gradebook_gains_the_new_columns(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:  # the first release's table
        connection.executescript(SCHEMA)
        for column in ADDED_COLUMNS:
            connection.execute(f"ALTER TABLE gradings DROP COLUMN {column}")
    with Gradebook(path) as book:
        cell = GradedCell("task1", "print('fixed')\n")
        stored = add(
            book, Submission(Path("a_task1.ipynb"), "a", "h" * 64, "task1", cell), result(1)
        )
    assert stored.source == "print('fixed')\n" and stored.file_mtime is None


def task3_grading(learner: str, score: float, status: str, leak_passed: bool) -> Result:
    checks = [
        Check("trains", "The model trains", True, "loss fell"),
        Check("memory", "Memory stays bounded", leak_passed, "graph memory 250 MiB"),
    ]
    return result(score, status, task="task3", checks=checks, message=f"{learner}'s run")


def test_every_submission_counts_in_the_report_means_and_pass_rates(book):
    """Task 3's unfixed notebook stops with status memory at 0.048: it counts."""
    add(book, submission("ann", task="task3"), task3_grading("ann", 0.981, "graded", True))
    add(book, submission("ben", task="task3"), task3_grading("ben", 0.048, "memory", False))
    stopped = result(0.0, "timeout", task="task3", message="stopped after 60 s")
    add(book, submission("cat", task="task3"), stopped)
    latest = book.latest()
    rates = {rate.id: (rate.passed, rate.total) for rate in check_rates(latest)}
    # ben ran and trained, so he passed "trains"; cat was stopped and passed nothing.
    assert rates == {"memory": (1, 3), "trains": (2, 3)}
    text = " ".join(html.unescape(build_report(latest, "book.sqlite")).split())
    mean = (0.981 + 0.048 + 0.0) / 3
    assert re.findall(r'mean score <b class="mean">([\d.]+)</b>', text) == [f"{mean:.3f}"]
    assert "1 / 3" in text and "33%" in text
    assert "mean of the graded only 0.981" in text


def test_the_report_shows_which_learner_missed_which_check(book):
    add(book, submission("alice"), result(0.5))
    add(book, submission("alice", task="task3"), task3_grading("alice", 0.98, "graded", True))
    add(book, submission("bob", task="task3"), task3_grading("bob", 0.05, "memory", False))
    page = build_report(book.latest(), "book.sqlite")
    section = html.unescape(page[page.index('id="learners"') : page.index('id="similarity"')])
    rows = [" ".join(row.split()) for row in section.split('<tr class="learner">')[1:]]
    alice, bob = rows
    assert alice.startswith("<td>alice</td>") and "missed: Each step uses fresh gradients" in alice
    assert "Memory stays bounded" not in alice
    assert bob.startswith("<td>bob</td>") and "(memory)" in bob
    assert "missed: Memory stays bounded" in bob and "The model trains" not in bob


def test_a_task_whose_every_submission_stopped_still_has_its_column(book, tmp_path):
    add(book, submission("alice"), result(0.9))
    add(book, submission("alice", task="task3"), result(0.0, "timeout", task="task3"))
    write_wide_csv(tmp_path / "wide.csv", book.latest())
    with open(tmp_path / "wide.csv", newline="") as handle:
        (row,) = csv.DictReader(handle)
    assert (row["task1"], row["task3"], row["total"]) == ("0.9", "0.0", "0.9")
    assert "task3:runs" not in row  # no task 3 submission shows which checks task 3 has
