"""The score panel: what a learner reads, in every front end.

Most tests build a :class:`Result` by hand (fast, and every field under
control); the nbconvert test grades the shipped notebook in a real kernel.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as widgets
import nbformat
import pytest
from nbclient import NotebookClient
from nbconvert import HTMLExporter

from whipnb import failure_result
from whipnb.core.result import BAND_LABELS, RESULT_MIME, Check, Result
from whipnb.notebook.panel import (
    BAND_COLOURS,
    FAIL_COLOUR,
    PASS_COLOUR,
    REVEALED_HINTS,
    HintBox,
    build_widget,
    contrast_ratio,
    loss_plot_png,
    loss_sparkline,
    mime_bundle,
    render_hints_html,
    render_html,
    render_text,
    target_met,
    text_colour_on,
)

ROOT = Path(__file__).resolve().parent.parent
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class VisibleText(HTMLParser):
    """The text a reader sees: everything outside ``<script>`` and ``<style>``."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.hidden = 0

    def handle_starttag(self, tag: str, attrs) -> None:
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.parts.append(data)


def visible_text(markup: str) -> str:
    parser = VisibleText()
    parser.feed(markup)
    return " ".join(" ".join(parser.parts).split())


def make_result(score: float = 0.55, **changes) -> Result:
    fields = {
        "task": "task1",
        "score": score,
        "status": "graded",
        "checks": [
            Check("runs", "The script runs to the end", True, "no exception was raised"),
            Check("lr", "The learning rate trains stably", False, "loss spiked to 19.9 at step 12"),
        ],
        "metrics": {"heldout_loss": 0.42, "heldout_accuracy": 0.93, "optimizer_steps": 120},
        "message": "One bug left: training is unstable.",
        "duration_s": 1.25,
        "version": "test",
        "rubric_row": "One bug fixed, some improvement",
        "targets": {"heldout_loss": "< 0.3", "heldout_accuracy": "> 0.90"},
        "losses": [2.0 / (step + 1) for step in range(60)],
    }
    return Result(**{**fields, **changes})


@pytest.mark.parametrize(
    ("value", "target", "met"),
    [
        (0.29, "< 0.3", True),
        (0.3, "< 0.3", False),
        (0.91, "> 0.90", True),
        (0.3, "<= 0.3", True),
        (4, "4 of 4", True),
        (3, "4 of 4", False),
        (None, "> 0.9", False),  # nothing measured: not met, never "unknown"
        (math.nan, "< 0.3", False),
        (0.5, "finite", None),  # a target in words cannot be checked
        ("64x3x28x28", "> 0.9", None),
    ],
)
def test_target_met_reads_written_targets(value, target, met):
    assert target_met(value, target) is met


@pytest.mark.parametrize("colour", [*BAND_COLOURS.values(), PASS_COLOUR, FAIL_COLOUR])
def test_badge_text_meets_wcag_contrast(colour):
    assert contrast_ratio(text_colour_on(colour), colour) >= 4.5


def test_every_band_has_its_own_colour():
    labels = [label for _, label in BAND_LABELS]
    assert set(BAND_COLOURS) == set(labels)
    assert len(set(BAND_COLOURS.values())) == len(labels)


def test_html_says_score_band_findings_and_targets_in_words():
    text = visible_text(render_html(make_result()))
    assert "0.550" in text and "Partial" in text
    assert "One bug left: training is unstable." in text
    # each finding is marked by a symbol and a word, never by colour alone
    assert "✘ fix The learning rate trains stably loss spiked to 19.9 at step 12" in text
    assert "✔ ok The script runs to the end no exception was raised" in text
    assert "Still to fix (1)" in text and "Working (1)" in text
    assert "held-out loss 0.42 < 0.3 ✘ not yet" in text
    assert "held-out accuracy 0.93 > 0.90 ✔ met" in text
    assert "1 of 2 checks pass" in text


def test_failed_checks_come_before_passing_ones():
    text = visible_text(render_html(make_result()))
    assert text.index("The learning rate trains stably") < text.index("The script runs")


def test_learner_text_is_escaped():
    hostile = Check("runs", "The script runs", False, "it raised <script>alert(1)</script>")
    markup = render_html(make_result(checks=[hostile]))
    assert "<script>alert" not in markup
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markup


def test_plain_text_reads_like_the_panel():
    attempts = [make_result(0.2), make_result(0.55)]
    text = render_text(attempts[-1], attempts)
    lines = text.splitlines()
    assert lines[0] == "whipnb task1 · Broken training loop"
    assert lines[1].startswith("Score 0.550 / 1") and "Partial" in lines[1]
    assert "  ✘ The learning rate trains stably\n      loss spiked to 19.9 at step 12" in text
    assert "held-out accuracy" in text and "(target > 0.90)  ✔ met" in text
    assert "Attempts: #1 0.200 -> #2 0.550" in text
    assert "Loss: █" in text  # the curve, falling, as a sparkline


def test_attempts_history_lists_every_attempt_and_the_change():
    attempts = [make_result(0.2), make_result(0.1), make_result(0.95)]
    text = visible_text(render_html(attempts[-1], attempts))
    assert "Your attempts this session (3)" in text
    assert "0.200 Minimal 0.100 Failed 0.950 Excellent ▲ +0.850 (this run)" in text
    assert "attempt 3" in text


def test_result_without_checks_still_reads():
    result = failure_result("task1", "timeout", "The cell ran for more than 120 s and was stopped.")
    text = visible_text(render_html(result))
    assert "0.000" in text and "Failed" in text and "timeout" in text
    assert "The cell ran for more than 120 s" in text
    assert "timeout" in render_text(result)


def test_loss_plot_draws_finite_losses_and_marks_nan():
    assert loss_plot_png([1.0, 0.5, 0.25]).startswith(PNG_SIGNATURE)
    assert loss_plot_png([1.0, math.nan, 0.4], {"heldout_loss": "< 0.3"}).startswith(PNG_SIGNATURE)
    assert loss_plot_png([math.nan, math.inf]) is None
    assert loss_plot_png([]) is None


def test_html_without_a_finite_loss_says_so():
    text = visible_text(render_html(make_result(losses=[math.nan] * 5)))
    assert "all 5 recorded losses are NaN or inf" in text


def test_sparkline_shows_the_shape_of_the_curve():
    assert loss_sparkline([3.0] * 60) == "█" * 30  # flat reads flat, not as noise
    falling = loss_sparkline([10.0 - step for step in range(10)], width=10)
    assert falling[0] == "█" and falling[-1] < falling[0]
    assert "!" in loss_sparkline([1.0, 1.0, math.nan, 1.0], width=4)


def test_static_hints_open_one_at_a_time():
    hints = ["first", "second", "third"]
    markup = render_hints_html(hints)
    # nested, each inside the one before: only hint 1 shows until it is opened
    tags = re.findall(r"</?details", markup)
    assert tags == ["<details"] * 3 + ["</details"] * 3
    assert markup.index("Hint 1 of 3") < markup.index("first") < markup.index("Hint 2 of 3")


def test_hint_box_reveals_one_hint_per_click_and_remembers_them():
    REVEALED_HINTS.pop("task-under-test", None)
    box = HintBox(["a", "b", "c"], remember_as="task-under-test")
    assert box.text.value == "" and box.button.description == "Show a hint (3 available)"
    box.button.click()
    assert (
        box.text.value.count("<li") == 1 and box.button.description == "Show another hint (2 left)"
    )
    box.button.click()
    box.button.click()
    box.button.click()  # past the end: nothing more to show
    assert box.text.value.count("<li") == 3 and box.button.disabled
    again = HintBox(["a", "b", "c"], remember_as="task-under-test")
    assert again.text.value.count("<li") == 3, "a re-run keeps the hints already asked for"
    assert HintBox(["a", "b", "c"]).text.value == ""


def test_widget_holds_header_findings_plot_hints_and_attempts():
    result = make_result()
    panel = build_widget(result, ["one hint"], [result])
    assert isinstance(panel, widgets.VBox) and "whipnb-panel" in panel._dom_classes
    html_parts = " ".join(
        child.value for child in panel.children if isinstance(child, widgets.HTML)
    )
    assert "0.550" in html_parts and "loss spiked to 19.9 at step 12" in html_parts
    images = [child for child in panel.children if isinstance(child, widgets.Image)]
    assert len(images) == 1 and bytes(images[0].value).startswith(PNG_SIGNATURE)
    buttons = [w for child in panel.children for w in getattr(child, "children", ())]
    assert any(isinstance(w, widgets.Button) for w in buttons)


def test_mime_bundle_carries_result_html_and_text():
    result = make_result()
    data = mime_bundle(result, [result])
    assert set(data) == {RESULT_MIME, "text/html", "text/plain"}
    assert Result.from_bundle(data[RESULT_MIME]).score == result.score
    assert "Hint 1 of" in data["text/html"], "the task's own hints, folded, for static viewers"


def test_graded_notebook_reads_in_nbconvert_html():
    """A learner's notebook as JupyterLab saves it (widget state not stored, its
    default), rendered by nbconvert: the panel's HTML fallback shows the score,
    the band and every finding."""
    notebook = nbformat.read(ROOT / "notebooks" / "task1.ipynb", as_version=4)
    client = NotebookClient(
        notebook, timeout=300, kernel_name="python3", allow_errors=True, store_widget_state=False
    )
    client.execute()
    (display,) = [
        output for output in notebook.cells[-1].outputs if RESULT_MIME in output.get("data", {})
    ]
    bundle = display["data"][RESULT_MIME]
    body, _ = HTMLExporter().from_notebook_node(notebook)
    text = visible_text(body)
    assert f"{bundle['score']:.3f}" in text and bundle["band"] in text
    for check in bundle["checks"]:
        assert check["title"] in text and " ".join(check["detail"].split()) in text
    assert "Still to fix" in text and "Targets" in text
    assert "alt='training loss curve" in body or 'alt="training loss curve' in body
