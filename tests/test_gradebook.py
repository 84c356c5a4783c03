"""The gradebook, its exports and the report, on gradings made up here (no kernel needed)."""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path

import pytest
from gradescope import assert_gradescope_results

from whipnb import Check, Result
from whipnb.gradebook.exports import write_gradescope, write_long_csv, write_wide_csv
from whipnb.gradebook.report import build_report, check_rates
from whipnb.gradebook.store import Gradebook, grader_id
from whipnb.headless.submissions import Submission

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
    assert wide == [
        {"learner": "alice", "task1": "0.95", "total": "0.95"},
        {"learner": "bob", "task1": "0.0", "total": "0.0"},
        {"learner": "carol", "task1": "", "total": "0"},
    ]


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
    assert [(r.id, r.passed, r.total) for r in rates] == [("gradients", 0, 2), ("runs", 2, 2)]
    page = build_report(latest, "book.sqlite")
    assert "<script>" not in page  # learners' text is escaped
    text = html.unescape(page)
    assert hostile in text and "replaced whipnb.core.grading.grade_source" in text
    assert text.index("Each step uses fresh gradients") < text.index("The script runs to the end")
    assert page.count("data:image/png;base64,") == 1
