"""``whipnb feedback``: one self-contained HTML file per learner and task, opened in
Debian's Chromium (no network, no Jupyter) to show what a learner would see."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from whipnb import Check, Result
from whipnb.cli import main
from whipnb.gradebook.store import Gradebook
from whipnb.headless.submissions import Submission
from whipnb.tasks import get_task

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "<img src=x onerror=alert(1)> learner's own exception"
FINDING = "loss spiked to 46.5 at step 12, then stayed near 2.3"


def crafted(task: str, score: float, passed: bool, message: str) -> Result:
    checks = [
        Check("runs", "The script runs to the end", True, "no exception was raised"),
        Check("stable", "Training stays stable", passed, FINDING if not passed else "stable"),
    ]
    losses = [2.3 - 0.01 * step for step in range(100)]
    return Result(task, score, "graded", checks, {"heldout_accuracy": 0.41}, message, 2.0,
                  "0.1.0", losses=losses, targets={"heldout_accuracy": ">= 0.9"})  # fmt: skip


@pytest.fixture(scope="module")
def feedback_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("feedback")
    db = folder / "book.sqlite"
    with Gradebook(db) as book:
        for learner, task, score, passed, message in (
            ("alice", "task1", 0.48, False, HOSTILE),
            ("alice", "task2", 0.97, True, "fixed"),
            ("bob/../x", "task1", 0.97, True, "fixed"),
        ):
            submission = Submission(Path(f"{task}.ipynb"), learner, "h" * 64, task)
            result = crafted(task, score, passed, message)
            book.add(submission, result, timeout_s=None, memory_mb=None, started_at="t0")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["feedback", "--db", str(db), "--output", str(folder / "out")])
    assert code == 0 and "3 feedback files for 2 learners" in out.getvalue()
    return folder / "out"


def test_one_file_per_learner_and_task_with_everything_escaped(feedback_folder):
    files = sorted(p.relative_to(feedback_folder).as_posix() for p in feedback_folder.rglob("*"))
    # A learner id is one safe folder name: "bob/../x" cannot climb out.
    assert files == [
        "alice",
        "alice/task1.html",
        "alice/task2.html",
        "bob_.._x",
        "bob_.._x/task1.html",
    ]
    page = (feedback_folder / "alice" / "task1.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    # Self-contained: the plot is inside the file, nothing is fetched.
    assert page.count("data:image/png;base64,") == 1
    assert not re.search(r"(src|href)=['\"](https?:)?//", page)


def test_feedback_for_chosen_learners_and_tasks(feedback_folder, tmp_path):
    db = feedback_folder.parent / "book.sqlite"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        chosen = ["--learner", "alice", "--task", "task2", "--output", str(tmp_path / "a")]
        assert main(["feedback", "--db", str(db), *chosen]) == 0
        assert main(["feedback", "--db", str(db), "--learner", "zed"]) == 1
    assert [p.name for p in (tmp_path / "a").rglob("*.html")] == ["task2.html"]
    assert "no grading matches" in out.getvalue()


def test_feedback_opens_in_chromium_and_shows_the_findings(feedback_folder):
    assert CHROMIUM.exists(), "Debian's chromium is needed (apt-get install chromium)"
    hints = get_task("task1").hints
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        try:
            page = browser.new_page()
            page.goto((feedback_folder / "alice" / "task1.html").as_uri())
            expect(page).to_have_title("whipnb feedback: alice, task1")
            expect(page.locator(".whipnb-score")).to_have_text("0.480")
            expect(page.locator(".whipnb-band")).to_have_text("Partial")
            expect(page.locator(".whipnb-check").first).to_contain_text(FINDING)
            expect(page.locator(".whipnb-message")).to_have_text(HOSTILE)
            plot = page.locator("img.whipnb-plot")
            expect(plot).to_be_visible()
            assert plot.evaluate("image => image.naturalWidth") > 100  # the PNG decoded
            # Hints open one per click: the first, never the second with it.
            first = page.get_by_text(hints[0], exact=False)
            expect(first).to_be_hidden()
            page.locator("summary", has_text=f"Hint 1 of {len(hints)}").click()
            expect(first).to_be_visible()
            expect(page.get_by_text(hints[1], exact=False)).to_be_hidden()
        finally:
            browser.close()
