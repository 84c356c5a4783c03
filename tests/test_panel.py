"""The score panel: what a learner reads, in every front end.

Most tests build a :class:`Result` by hand (fast, and every field under
control); the nbconvert test grades the shipped notebook in a real kernel.
"""

from __future__ import annotations

import base64
import colorsys
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import ipywidgets as widgets
import nbformat
import numpy as np
import pytest
from helpers import edit
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from PIL import Image

from whipnb import failure_result, grade_source
from whipnb.core.result import BAND_LABELS, RESULT_MIME, Check, Result, as_record
from whipnb.notebook.panel import (
    BAND_COLOURS,
    FAIL_COLOUR,
    FIX_STEP,
    NONFINITE_COLOUR,
    PANEL_STYLE,
    PASS_COLOUR,
    PLOT_BACKGROUND,
    PLOT_INK,
    RUNNING_MEAN_COLOUR,
    STEP_LOSS_COLOUR,
    HintBox,
    build_widget,
    contrast_ratio,
    loss_figure,
    loss_plot_png,
    loss_sparkline,
    mime_bundle,
    render_hints_html,
    render_html,
    render_text,
    target_met,
    text_colour_on,
)
from whipnb.tasks import all_tasks, get_task

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
            Check(
                "lr",
                "The learning rate trains stably",
                False,
                "loss spiked to 19.9 at step 12",
                diagnosis="lr=10 is far too high: try lr=0.01",
            ),
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


def test_contrast_ratio_matches_wcag_reference_values():
    # WCAG 2.x: black on white is 21:1; #767676 is the lightest grey passing 4.5:1 on white
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)
    assert contrast_ratio("#777777", "#ffffff") < 4.5


def css_invert_hue_rotate(colour: str) -> str:
    """What a dark theme's ``filter: invert(1) hue-rotate(180deg)`` makes of a colour,
    by the matrices of the CSS Filter Effects spec (an independent implementation)."""
    r, g, b = (1 - int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    cos, sin = -1.0, 0.0  # 180 degrees
    matrix = [
        [0.213 + cos * 0.787 - sin * 0.213, 0.715 - cos * 0.715 - sin * 0.715,
         0.072 - cos * 0.072 + sin * 0.928],
        [0.213 - cos * 0.213 + sin * 0.143, 0.715 + cos * 0.285 + sin * 0.140,
         0.072 - cos * 0.072 - sin * 0.283],
        [0.213 - cos * 0.213 - sin * 0.787, 0.715 - cos * 0.715 + sin * 0.715,
         0.072 + cos * 0.928 + sin * 0.072],
    ]  # fmt: skip
    channels = [min(1.0, max(0.0, row[0] * r + row[1] * g + row[2] * b)) for row in matrix]
    return "#" + "".join(f"{round(c * 255):02x}" for c in channels)


def contrast_failures(palette: dict[str, str], background: str, minimum: float) -> list[str]:
    """The names of the colours in ``palette`` below ``minimum`` contrast on ``background``."""
    return [
        name for name, colour in palette.items() if contrast_ratio(colour, background) < minimum
    ]


PLOT_PALETTE = {
    "ink": PLOT_INK,
    "loss of each step": STEP_LOSS_COLOUR,
    "running mean": RUNNING_MEAN_COLOUR,
    "NaN marker": NONFINITE_COLOUR,
}
BADGE_COLOURS = [*BAND_COLOURS.values(), PASS_COLOUR, FAIL_COLOUR]


def test_plot_colours_stand_out_in_light_and_dark_themes():
    """WCAG 1.4.11: lines and marks need 3:1 against their background; the ink (axis
    text) 4.5:1. In a dark theme the plot is inverted and hue-rotated."""
    assert contrast_failures(PLOT_PALETTE, PLOT_BACKGROUND, 3.0) == []
    dark = {name: css_invert_hue_rotate(colour) for name, colour in PLOT_PALETTE.items()}
    dark_background = css_invert_hue_rotate(PLOT_BACKGROUND)
    assert contrast_ratio(dark_background, "#000000") < 1.1, "white turns (nearly) black"
    assert contrast_failures(dark, dark_background, 3.0) == []
    assert contrast_ratio(dark["ink"], dark_background) >= 4.5
    assert contrast_ratio(PLOT_INK, PLOT_BACKGROUND) >= 4.5


def test_the_palette_check_rejects_too_little_contrast():
    """The check above can fail: a pale line on white, yellow on white."""
    pale = {"pale grey": "#dddddd", "yellow": "#F0E442", "blue": RUNNING_MEAN_COLOUR}
    assert contrast_failures(pale, "#ffffff", 3.0) == ["pale grey", "yellow"]


@pytest.mark.parametrize("colour", BADGE_COLOURS)
def test_badge_text_meets_wcag_contrast(colour):
    text = text_colour_on(colour)
    assert contrast_failures({"badge": text}, colour, 4.5) == []


def test_badges_use_both_text_colours_and_distinct_hues():
    """Dark and light badges both occur, so the chosen text colour is tested both ways,
    and the band colours differ in hue, not only lightness (colour-blind readers)."""
    assert {text_colour_on(colour) for colour in BADGE_COLOURS} == {"#000000", "#ffffff"}
    hues = sorted(
        round(colorsys.rgb_to_hls(*(int(c[i : i + 2], 16) / 255 for i in (1, 3, 5)))[0], 2)
        for c in BAND_COLOURS.values()
    )
    assert len(set(hues)) == len(hues)


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
    assert "loss on fresh data 0.42 < 0.3 ✘ not yet" in text
    assert "accuracy on fresh data 0.93 > 0.90 ✔ met" in text
    assert "1 of 2 checks pass" in text
    assert "graded in 1.2 s" in text


def test_findings_hold_back_the_diagnosis_until_asked():
    result = make_result()
    shown = visible_text(render_html(result).split(FIX_STEP)[0])  # before the fix step
    assert "loss spiked to 19.9 at step 12" in shown and "lr=0.01" not in shown
    assert "lr=0.01" not in render_text(result)
    asked = visible_text(render_html(result, diagnosis=True).split(FIX_STEP)[0])
    assert "loss spiked to 19.9 at step 12 Fix: lr=10 is far too high: try lr=0.01" in asked
    assert "      Fix: lr=10 is far too high: try lr=0.01" in render_text(result, diagnosis=True)


@pytest.mark.parametrize(
    ("status", "words"),
    [("memory", "stopped: out of memory after 1.2 s"), ("timeout", "stopped at the time limit")],
)
def test_header_says_how_a_run_ended_in_words(status, words):
    text = visible_text(render_html(make_result(status=status)))
    assert words in text and f"{status} in" not in text


def test_raw_metric_names_read_as_words():
    result = make_result(metrics={"nan_steps": 3, "heldout_f1": 0.5}, targets={"nan_steps": "< 1"})
    text = visible_text(render_html(result))
    assert "steps whose loss was NaN or inf 3 < 1 ✘ not yet" in text
    assert "nan steps" not in text and "micro-F1 of the trained model on fresh data" in text


def test_a_full_fix_below_one_says_what_would_raise_it():
    passing = [Check("runs", "The script runs to the end", True, "no exception was raised")]
    text = visible_text(render_html(make_result(0.97, checks=passing)))
    assert "Every check passes: nothing is left to fix." in text
    assert "beat their targets" in text
    assert "beat their targets" not in visible_text(render_html(make_result(0.55)))
    assert "beat their targets" not in visible_text(render_html(make_result(1.0, checks=passing)))


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
    assert lines[1].endswith("(graded in 1.2 s)")
    assert "  ✘ The learning rate trains stably\n      loss spiked to 19.9 at step 12" in text
    assert "accuracy on fresh data" in text and "(target > 0.90)  ✔ met" in text
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
    assert "0.000" in text and "Failed" in text and "stopped at the time limit" in text
    assert "The cell ran for more than 120 s" in text
    assert "stopped at the time limit after 0.0 s" in render_text(result)


def decode(png: bytes) -> Image.Image:
    assert png.startswith(PNG_SIGNATURE)
    return Image.open(io.BytesIO(png)).convert("RGB")


def rgb(colour: str) -> tuple[int, int, int]:
    return tuple(int(colour[i : i + 2], 16) for i in (1, 3, 5))


def pixels_near(image: Image.Image, colour: str, box=None, tolerance: int = 40) -> int:
    """How many pixels (in ``box``, default all) are within ``tolerance`` of ``colour``."""
    region = np.asarray(image.crop(box) if box else image, dtype=int)
    return int((np.abs(region - rgb(colour)).max(axis=-1) <= tolerance).sum())


def test_loss_plot_draws_the_curve_on_white_with_dark_ink():
    image = decode(loss_plot_png([2.0 / (step + 1) for step in range(60)]))
    assert image.size == (600, 270)
    corners = [image.getpixel(xy) for xy in ((0, 0), (599, 0), (0, 269), (599, 269))]
    assert corners == [rgb(PLOT_BACKGROUND)] * 4  # opaque white: a dark theme inverts it
    assert pixels_near(image, RUNNING_MEAN_COLOUR) > 300, "the running mean is drawn"
    assert pixels_near(image, PLOT_INK, tolerance=60) > 300, "axes and labels in dark ink"
    assert pixels_near(image, NONFINITE_COLOUR) == 0, "no NaN marker without a NaN"


def test_loss_plot_spans_every_step_and_shades_the_nan_ones():
    """Task 2's buggy run: NaN from step 40 on, training ran to step 99."""
    losses = [1.0 - step / 100 for step in range(40)] + [math.nan] * 60
    figure = loss_figure(losses, {})
    (axes,) = figure.axes
    assert axes.get_xlim() == (0, 99), "the x-axis runs to the last step, not the first NaN"
    spans = [patch for patch in axes.patches if patch.get_x() >= 39]
    assert len(spans) == 1 and spans[0].get_width() == pytest.approx(60)
    assert any("first NaN/inf (step 40)" in text.get_text() for text in axes.get_legend().texts)
    image = decode(loss_plot_png(losses))
    # the shaded NaN region fills the right part of the plot area in a pale vermilion
    right = np.asarray(image.crop((420, 120, 560, 200)), dtype=int)
    assert not (right == rgb(PLOT_BACKGROUND)).all(axis=-1).any()
    assert loss_plot_png([math.nan, math.inf]) is None
    assert loss_plot_png([]) is None


def test_loss_target_is_drawn_as_a_line():
    figure = loss_figure([1.0, 0.5, 0.25], {"heldout_loss": "< 0.3"})
    (axes,) = figure.axes
    labels = [line.get_label() for line in axes.lines]
    assert "target: loss on fresh data < 0.3" in labels
    (target,) = [line for line in axes.lines if line.get_label().startswith("target")]
    assert list(target.get_ydata()) == [0.3, 0.3]


def test_html_without_a_finite_loss_says_so():
    text = visible_text(render_html(make_result(losses=[math.nan] * 5)))
    assert "all 5 recorded losses are NaN or inf" in text


def test_sparkline_shows_the_shape_of_the_curve():
    assert loss_sparkline([3.0] * 60) == "█" * 30  # flat reads flat, not as noise
    falling = loss_sparkline([10.0 - step for step in range(10)], width=10)
    assert falling[0] == "█" and falling[-1] < falling[0]
    assert "!" in loss_sparkline([1.0, 1.0, math.nan, 1.0], width=4)


def test_static_hints_open_one_at_a_time_and_end_with_the_fix():
    hints = ["first", "second", "third"]
    markup = render_hints_html(hints, make_result())
    # nested, each inside the one before: only hint 1 shows until it is opened
    tags = re.findall(r"</?details", markup)
    assert tags == ["<details"] * 4 + ["</details"] * 4
    assert markup.index("Hint 1 of 3") < markup.index("first") < markup.index("Hint 2 of 3")
    fix = markup.index(FIX_STEP)
    assert markup.index("third") < fix < markup.index("lr=10 is far too high: try lr=0.01")
    assert "lr=0.01" not in render_hints_html(hints), "no result, no fix step"


def test_hint_box_reveals_one_hint_per_click_then_the_fix_and_remembers_them():
    memory: dict[str, int] = {}
    box = HintBox(["a", "b", "c"], "<p>the fix</p>", "task1", memory)
    assert box.text.value == "" and box.button.description == "Show a hint (3 available)"
    box.button.click()
    assert box.text.value.count("<li") == 1
    assert box.button.description == "Show another hint (2 left)"
    box.button.click()
    box.button.click()
    assert box.text.value.count("<li") == 3 and "the fix" not in box.text.value
    assert box.button.description == FIX_STEP and not box.button.disabled
    box.button.click()
    assert "the fix" in box.text.value and box.button.disabled
    box.button.click()  # past the end: nothing more to show
    assert memory == {"task1": 4}
    again = HintBox(["a", "b", "c"], "<p>the fix</p>", "task1", memory)
    assert "the fix" in again.text.value, "a re-run keeps the hints already asked for"
    assert HintBox(["a", "b", "c"], "<p>the fix</p>", "task1", {}).text.value == ""
    plain = HintBox(["a"])
    plain.button.click()
    assert plain.button.description == "All 1 hints shown" and plain.button.disabled


def test_widget_holds_header_findings_plot_hints_and_attempts():
    result = make_result()
    memory: dict[str, int] = {}
    panel = build_widget(result, ["one hint"], [result], memory)
    assert isinstance(panel, widgets.VBox) and "whipnb-panel" in panel._dom_classes
    html_parts = " ".join(
        child.value for child in panel.children if isinstance(child, widgets.HTML)
    )
    assert "0.550" in html_parts and "loss spiked to 19.9 at step 12" in html_parts
    assert "lr=0.01" not in html_parts, "the fix waits for the hints' last step"
    assert PANEL_STYLE in html_parts, "the live panel hides its static twin"
    (png,) = re.findall(r"src='data:image/png;base64,([^']+)'", html_parts)
    assert decode(base64.b64decode(png)).size == (600, 270)
    (button,) = [w for child in panel.children for w in getattr(child, "children", ())
                 if isinstance(w, widgets.Button)]  # fmt: skip
    button.click()
    button.click()
    assert memory == {"task1": 2}, "the clicks are counted in the session's memory"


def test_mime_bundle_carries_result_html_and_text():
    result = make_result()
    data = mime_bundle(result, [result])
    assert set(data) == {RESULT_MIME, "text/html", "text/plain"}
    assert Result.from_bundle(data[RESULT_MIME]).score == result.score
    assert "Hint 1 of" in data["text/html"], "the task's own hints, folded, for static viewers"
    assert "whipnb-static-panel" in data["text/html"] and PANEL_STYLE in data["text/html"]


def test_the_bundle_mime_type_is_the_contracts():
    """PRODUCT.md and docs/CONTRACTS.md, 2: other tools look for this exact name."""
    assert RESULT_MIME == "application/vnd.whipnb.result+json"
    assert f"`{RESULT_MIME}`" in (ROOT / "docs" / "CONTRACTS.md").read_text(encoding="utf-8")


def test_bundle_sends_nan_and_inf_as_null_and_reads_them_back():
    losses = [0.9, math.nan, math.inf, 0.4]
    metrics = {"heldout_loss": math.inf, "max_logit": math.nan, "nan_steps": 2, "note": None}
    bundle = make_result(losses=losses, metrics=metrics).to_bundle()
    text = json.dumps(bundle, allow_nan=False)  # raises on any NaN or inf float
    assert json.loads(text)["losses"] == [0.9, None, None, 0.4]
    assert bundle["metrics"] == {
        "heldout_loss": None,
        "max_logit": None,
        "nan_steps": 2,
        "note": None,
    }
    back = Result.from_bundle(bundle)
    assert back.losses[0] == 0.9 and math.isnan(back.losses[1]) and back.losses[3] == 0.4
    assert back.metrics["heldout_loss"] == math.inf and math.isnan(back.metrics["max_logit"])
    assert back.metrics["note"] is None and back.metrics["nan_steps"] == 2


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


@pytest.mark.parametrize("task_id", sorted(all_tasks()))
def test_the_panel_and_the_notebook_carry_the_same_title(task_id):
    task = get_task(task_id)
    heading = task.description.splitlines()[0]
    assert heading.startswith("# ") and heading.endswith(f": {task.title}"), heading


def test_the_api_gives_the_diagnosis_only_when_asked(capsys):
    """Task 1's buggy loop, one epoch: the findings state the symptom either way; the
    cause and the fix come with ``diagnosis=True``, at the same score."""
    source = edit(get_task("task1").buggy_source, ("range(20)", "range(1)"))
    plain = grade_source("task1", source)
    asked = grade_source("task1", source, diagnosis=True)
    assert plain.score == asked.score
    assert all(check.diagnosis == "" for check in plain.checks)
    gradients = next(check for check in asked.checks if check.id == "gradients")
    assert not gradients.passed and "the weights never moved" in gradients.detail
    assert "step() runs before loss.backward()" in gradients.diagnosis
    assert "step() runs before" not in render_text(plain)
    assert "Fix: " in render_text(asked, diagnosis=True)
    record = as_record("x.ipynb", asked)
    assert all("diagnosis" not in check for check in record["checks"])
    assert "diagnosis" in as_record("x.ipynb", asked, diagnosis=True)["checks"][0]
