"""The score panel: an ipywidgets view for JupyterLab, with HTML and plain-text
renderings of the same content for nbconvert, GitHub previews and terminals.

The panel answers a learner's questions in reading order: how did I do (score,
band, one sentence), what is still wrong (failed checks first, each with its
evidence), how far am I from the targets, what did training look like (the
loss curve), what should I try (hints, one per click) and am I getting closer
(this session's attempts).

Nothing is told by colour alone: every coloured badge also carries a word and
a symbol, the palette is Okabe-Ito (distinct under the common colour-blindnesses)
and badge text is black or white, whichever contrasts more. The HTML keeps
its meaning when a viewer strips styles (GitHub's preview does): the words,
marks and tables carry it; the styles only make it quicker to read.

A live run displays the static panel and the widget as two outputs (see
``magic.show``); :data:`PANEL_STYLE` shows exactly one of them: the widget while
its model lives, the static panel once it is gone (a reopened notebook, a new
kernel). The same style turns the loss plot dark in a dark JupyterLab theme.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from whipnb.core.result import (
    BAND_LABELS,
    GRADED,
    INVALID,
    KERNEL_DIED,
    MEMORY,
    RESULT_MIME,
    TIMEOUT,
    Check,
    Result,
)
from whipnb.tasks import UnknownTaskError, get_task

#: Okabe-Ito colours per band, best to worst.
BAND_COLOURS = {
    "Excellent": "#0072B2",
    "Good": "#009E73",
    "Partial": "#F0E442",
    "Minimal": "#E69F00",
    "Failed": "#D55E00",
}
PASS_COLOUR, FAIL_COLOUR = "#0072B2", "#D55E00"
PASS_MARK, FAIL_MARK = "✔", "✘"
PLOT_WIDTH_PX = 600
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: Plot colours, drawn on white (a dark theme inverts the picture, see PANEL_STYLE).
PLOT_BACKGROUND, PLOT_INK, STEP_LOSS_COLOUR = "#ffffff", "#000000", "#8c8c8c"
RUNNING_MEAN_COLOUR, NONFINITE_COLOUR = "#0072B2", "#D55E00"
#: JupyterLab's output areas: one child per output, its rendered data inside.
_CHILD = ".jp-OutputArea-child"
_STATIC = f"{_CHILD}:has(.whipnb-static-panel)"
_LIVE = ".widget-vbox.whipnb-panel"
_DARK = "body[data-jp-theme-light='false']"
#: Which of a run's two outputs shows (see the module docstring): the static panel
#: hides while the live widget follows it; the output right after it (the widget's,
#: which JupyterLab gives no MIME type attribute) hides while it holds no live panel
#: (its model gone: "Error displaying widget"). And the plot in a dark theme:
#: inverted with its hues turned back, white becomes black, black text white, the
#: blues and oranges stay blue and orange.
PANEL_STYLE = (
    "<style>"
    f"{_STATIC}:has(~ {_CHILD} {_LIVE}){{display:none}}"
    f"{_STATIC} + {_CHILD}:not(:has({_LIVE})){{display:none}}"
    f"{_DARK} img.whipnb-plot{{filter:invert(1) hue-rotate(180deg)}}"
    "</style>"
)
#: How each status reads in the header, before its duration.
STATUS_WORDS = {
    GRADED: "graded",
    TIMEOUT: "stopped at the time limit",
    MEMORY: "stopped: out of memory",
    KERNEL_DIED: "stopped: the kernel died",
    INVALID: "not graded",
}
#: Theme-aware greys: JupyterLab's variables, with fallbacks for nbconvert pages.
MUTED_BACKGROUND = "var(--jp-layout-color2, #f2f2f2)"
TRACK_COLOUR = "var(--jp-layout-color3, #c8c8c8)"
MUTED = "opacity:0.75"
CELL = "text-align:left;vertical-align:top;padding:3px 8px"
TABLE = "border-collapse:collapse;margin:2px 0 8px 0;table-layout:auto"


# ---------------------------------------------------------------- numbers


def format_metric(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "n/a" if value is None else str(value)


#: Metric keys as a learner reads them; any other key reads as its words.
METRIC_LABELS = {
    "heldout_accuracy": "accuracy on fresh data",
    "heldout_loss": "loss on fresh data",
    "heldout_f1": "micro-F1 of the trained model on fresh data (each tag on its own)",
    "predict_f1": "micro-F1 of your predict() on fresh data",
    "heldout_bce": "binary cross-entropy on fresh data",
    "nan_steps": "steps whose loss was NaN or inf",
    "first_nan_step": "first step with a NaN or inf loss",
    "nan_weights": "weights that are NaN or inf",
    "peak_graph_memory_MiB": "most memory held by autograd graphs (MiB)",
    "leaked_validation_share": "share of validation images copied from training",
    "frozen_params_in_optimizer": "frozen parameters in the optimizer",
    "trainable_params_outside_optimizer": "trainable parameters missing from the optimizer",
    "bugs_fixed": "bugs fixed",
}


def metric_label(name: str) -> str:
    """``heldout_accuracy`` -> ``accuracy on fresh data``: metric keys read as words."""
    if name in METRIC_LABELS:
        return METRIC_LABELS[name]
    words = name.replace("heldout", "held-out").replace("_", " ")
    return re.sub(r"\bnan\b", "NaN", re.sub(r"\bf1\b", "F1", words))


_TARGET = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*([-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$")
_COUNT_TARGET = re.compile(r"^\s*(\d+)\s+of\s+\d+\s*$")
_COMPARE = {
    "<": lambda value, bound: value < bound,
    ">": lambda value, bound: value > bound,
    "<=": lambda value, bound: value <= bound,
    "≤": lambda value, bound: value <= bound,
    ">=": lambda value, bound: value >= bound,
    "≥": lambda value, bound: value >= bound,
}


def parse_target(target: str) -> tuple[str, float] | None:
    """``"< 0.3"`` -> ``("<", 0.3)``; ``"4 of 4"`` (a count to reach) -> ``(">=", 4)``."""
    if match := _TARGET.match(target):
        return match.group(1), float(match.group(2))
    if match := _COUNT_TARGET.match(target):
        return ">=", float(match.group(1))
    return None


def target_met(value: Any, target: str) -> bool | None:
    """Whether ``value`` meets ``target``; a missing or non-finite value has not met it.

    ``None`` when it cannot be told: a target written in words, a non-numeric value.
    """
    parsed = parse_target(target)
    if parsed is None:
        return None
    if value is None:
        return False
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    operator, bound = parsed
    return math.isfinite(value) and _COMPARE[operator](value, bound)


@dataclass(frozen=True)
class TargetRow:
    """One success criterion next to what the submission achieved."""

    label: str
    achieved: str
    target: str
    met: bool | None


def target_rows(result: Result) -> list[TargetRow]:
    return [
        TargetRow(
            metric_label(name),
            format_metric(result.metrics.get(name)),
            target,
            target_met(result.metrics.get(name), target),
        )
        for name, target in result.targets.items()
    ]


def task_title(task_id: str) -> str:
    try:
        return get_task(task_id).title
    except UnknownTaskError:
        return ""


def task_hints(task_id: str) -> tuple[str, ...]:
    try:
        return get_task(task_id).hints
    except UnknownTaskError:
        return ()


# ---------------------------------------------------------------- colour


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a ``#rrggbb`` colour."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    light, dark = sorted((_luminance(first), _luminance(second)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def text_colour_on(background: str) -> str:
    """Black or white, whichever reads better on ``background``."""
    return max(("#000000", "#ffffff"), key=lambda text: contrast_ratio(text, background))


def badge(text: str, colour: str, css_class: str = "") -> str:
    style = (
        f"background:{colour};color:{text_colour_on(colour)};font-weight:700;"
        "padding:1px 8px;border-radius:9px;white-space:nowrap;display:inline-block"
    )
    return f"<span class='whipnb-badge {css_class}' style='{style}'>{html.escape(text)}</span>"


def check_badge(passed: bool) -> str:
    if passed:
        return badge(f"{PASS_MARK} ok", PASS_COLOUR, "whipnb-pass")
    return badge(f"{FAIL_MARK} fix", FAIL_COLOUR, "whipnb-fail")


def target_badge(met: bool | None) -> str:
    if met is None:
        return ""
    if met:
        return badge(f"{PASS_MARK} met", PASS_COLOUR, "whipnb-pass")
    return badge(f"{FAIL_MARK} not yet", FAIL_COLOUR, "whipnb-fail")


# ---------------------------------------------------------------- loss curve


def loss_plot_png(losses: Sequence[float], targets: dict[str, str] | None = None) -> bytes | None:
    """The loss of every backward pass and its running mean, with any loss target
    as a dotted line; log scale when the loss spans decades. ``None`` when no
    finite loss was recorded (there is nothing to draw).

    The static HTML and the live widget of one run show the same plot: it is drawn
    once (drawing costs a good part of the magic's own time) and reused."""
    return _loss_plot_png(tuple(losses), tuple((targets or {}).items()))


@functools.lru_cache(maxsize=2)
def _loss_plot_png(
    losses: tuple[float, ...], target_items: tuple[tuple[str, str], ...]
) -> bytes | None:
    figure = loss_figure(losses, dict(target_items))
    if figure is None:
        return None
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", facecolor=PLOT_BACKGROUND)
    return buffer.getvalue()


def loss_figure(losses: Sequence[float], targets: dict[str, str]) -> Any:
    """The loss plot as a matplotlib ``Figure`` (``None`` without a finite loss).

    The x-axis covers every recorded step, so a run that went NaN and trained on
    shows how long it did: the NaN/inf steps are shaded, the first one marked.
    Black ink on white: a dark theme inverts the picture (see PANEL_STYLE)."""
    finite = [(i, loss) for i, loss in enumerate(losses) if math.isfinite(loss)]
    if not finite:
        return None
    from matplotlib.figure import Figure  # Figure, not pyplot: the learner's backend is untouched

    figure = Figure(figsize=(PLOT_WIDTH_PX / 100, 2.7), dpi=100, facecolor=PLOT_BACKGROUND)
    axes = figure.subplots()
    axes.set_facecolor(PLOT_BACKGROUND)
    steps, values = zip(*finite, strict=True)
    axes.plot(steps, values, color=STEP_LOSS_COLOUR, linewidth=0.7, label="loss of each step")
    window = max(1, len(values) // 25)
    running = [_mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
    axes.plot(steps, running, color=RUNNING_MEAN_COLOUR, linewidth=2.0, label="running mean")
    for label, bound in _loss_targets(targets):
        axes.axhline(bound, color=PLOT_INK, linestyle=":", linewidth=1.2, label=label)
    _mark_nonfinite(axes, losses)
    if min(values) > 0 and max(values) / min(values) > 100:
        axes.set_yscale("log")
    axes.set_xlim(0, max(1, len(losses) - 1))
    axes.set_xlabel("training step (one per backward pass)", fontsize=8, color=PLOT_INK)
    axes.set_ylabel("training loss", fontsize=8, color=PLOT_INK)
    axes.tick_params(labelsize=7, colors=PLOT_INK)
    axes.spines[["top", "right"]].set_visible(False)
    # Above the axes, in one row: a legend inside would hide the curve.
    handles = axes.get_legend_handles_labels()[0]
    axes.legend(
        fontsize=7,
        loc="lower left",
        bbox_to_anchor=(0, 1),
        ncols=len(handles),
        frameon=False,
        labelcolor=PLOT_INK,
    )
    figure.tight_layout()
    return figure


def _mark_nonfinite(axes: Any, losses: Sequence[float]) -> None:
    """Shade the steps whose loss was NaN or inf, and mark the first one."""
    bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
    if not bad:
        return
    label = f"first NaN/inf (step {bad[0]})"
    axes.axvline(bad[0], color=NONFINITE_COLOUR, linestyle="--", linewidth=1.5, label=label)
    for start, end in _runs(bad):
        axes.axvspan(start - 0.5, end + 0.5, color=NONFINITE_COLOUR, alpha=0.12, linewidth=0)


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive indices as (first, last) ranges: [3, 4, 5, 9] -> [(3, 5), (9, 9)]."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and index == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _loss_targets(targets: dict[str, str]) -> list[tuple[str, float]]:
    """Targets on a loss (``heldout_loss: "< 0.3"``) that the curve can be read against."""
    found = []
    for name, target in targets.items():
        parsed = parse_target(target)
        if "loss" in name and parsed:
            found.append((f"target: {metric_label(name)} {target}", parsed[1]))
    return found


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


SPARK_BARS = "▁▂▃▄▅▆▇█"


def loss_sparkline(losses: Sequence[float], width: int = 30) -> str:
    """The loss curve in one line of text: window means, scaled to eight bar heights;
    ``!`` marks a window holding a NaN or inf."""
    if not losses:
        return ""
    size = math.ceil(len(losses) / width)
    windows = [losses[start : start + size] for start in range(0, len(losses), size)]
    means = [
        _mean(window) if all(math.isfinite(v) for v in window) else math.nan for window in windows
    ]
    finite = [m for m in means if math.isfinite(m)]
    # From zero when the loss is positive, so a flat curve looks flat, not noisy.
    low, high = (min(0.0, *finite), max(finite)) if finite else (0.0, 0.0)
    spread = (high - low) or 1.0
    return "".join(
        SPARK_BARS[round((m - low) / spread * (len(SPARK_BARS) - 1))] if math.isfinite(m) else "!"
        for m in means
    )


def loss_summary(losses: Sequence[float]) -> str:
    finite = [loss for loss in losses if math.isfinite(loss)]
    if not losses:
        return "no loss was recorded (no backward pass ran)"
    if not finite:
        return f"all {len(losses)} recorded losses are NaN or inf"
    summary = f"{len(losses)} steps, first {finite[0]:.3g}, last {finite[-1]:.3g}"
    bad = len(losses) - len(finite)
    return summary + (f", {bad} NaN/inf" if bad else "")


# ---------------------------------------------------------------- plain text


def render_text(result: Result, attempts: Sequence[Result] = (), diagnosis: bool = False) -> str:
    """The panel as plain text: terminals, logs and viewers without HTML; each
    failed check's cause and fix too with ``diagnosis``."""
    title = task_title(result.task)
    lines = [
        f"whipnb {result.task}" + (f" · {title}" if title else ""),
        f"Score {result.score:.3f} / 1  {_text_bar(result.score)}  {result.band}"
        f"  ({_status_text(result)})",
        result.message,
    ]
    if result.rubric_row:
        lines.append(f"Rubric: {result.rubric_row}")
    if note := top_band_note(result):
        lines.append(note)
    if result.tampering:
        lines.append(f"! tampering: {'; '.join(result.tampering)}")
    failed = [c for c in result.checks if not c.passed]
    passed = [c for c in result.checks if c.passed]
    for heading, group, mark in (
        ("Still to fix", failed, FAIL_MARK),
        ("Working", passed, PASS_MARK),
    ):
        if group:
            lines.append(f"{heading} ({len(group)}):")
            for check in group:
                lines.append(f"  {mark} {check.title}\n      {check.detail}")
                if diagnosis and check.diagnosis and not check.passed:
                    lines.append(f"      Fix: {check.diagnosis}")
    rows = target_rows(result)
    if rows:
        lines.append("Targets:")
        width = max(len(row.label) for row in rows)
        for row in rows:
            verdict = {True: f"{PASS_MARK} met", False: f"{FAIL_MARK} not yet", None: ""}[row.met]
            lines.append(
                f"  {row.label:<{width}}  {row.achieved:>8}  (target {row.target})  {verdict}"
            )
    if result.losses:
        lines.append(f"Loss: {loss_sparkline(result.losses)}  {loss_summary(result.losses)}")
    if len(attempts) > 1:
        history = " -> ".join(f"#{n} {a.score:.3f}" for n, a in enumerate(attempts, start=1))
        lines.append(f"Attempts: {history}")
    return "\n".join(lines)


def _text_bar(score: float, width: int = 20) -> str:
    filled = round(max(0.0, min(1.0, score)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def _status_text(result: Result) -> str:
    words = STATUS_WORDS.get(result.status, result.status)
    return f"{words} {'in' if result.status == GRADED else 'after'} {result.duration_s:.1f} s"


def top_band_note(result: Result) -> str:
    """What would still raise a score whose checks all pass (no word would leave a
    learner at 0.970 wondering what is wrong)."""
    if not result.passed_all or result.score >= 1.0:
        return ""
    return (
        "Every check passes: nothing is left to fix. Within this band the score grows "
        "with how far the measurements on fresh data beat their targets (see Targets)."
    )


# ---------------------------------------------------------------- HTML sections


def render_header_html(result: Result, attempt: int = 0) -> str:
    """Score, band, one-sentence verdict and a bar with the band boundaries."""
    colour = BAND_COLOURS.get(result.band, "#555555")
    title = task_title(result.task)
    context = " · ".join(
        part
        for part in (
            html.escape(result.task) + (f": {html.escape(title)}" if title else ""),
            f"attempt {attempt}" if attempt else "",
            html.escape(_status_text(result)),
        )
        if part
    )
    passed = sum(c.passed for c in result.checks)
    summary = f"{passed} of {len(result.checks)} checks pass" if result.checks else ""
    rubric = f"rubric: {html.escape(result.rubric_row)}" if result.rubric_row else ""
    tampering = (
        f"<div class='whipnb-tampering'>{badge('⚠ tampering', FAIL_COLOUR)} "
        f"{html.escape('; '.join(result.tampering))}</div>"
        if result.tampering
        else ""
    )
    return (
        f"<div class='whipnb-header' style='border-left:8px solid {colour};padding:6px 12px;"
        f"background:{MUTED_BACKGROUND};border-radius:4px'>"
        "<div style='display:flex;flex-wrap:wrap;align-items:center;gap:6px 14px'>"
        f"<span style='font-size:1.9em;font-weight:700;line-height:1.1'>"
        f"<span class='whipnb-score'>{result.score:.3f}</span>"
        "<span style='font-size:0.5em;font-weight:400'> / 1</span></span>"
        f"<span style='font-size:1.15em'>{badge(result.band, colour, 'whipnb-band')}</span>"
        f"<span class='whipnb-context' style='{MUTED}'>{context}</span></div>"
        f"{_score_bar(result.score, colour)}"
        f"<div class='whipnb-message' style='font-size:1.1em;font-weight:600;margin:4px 0'>"
        f"{html.escape(result.message)}</div>"
        f"<div style='{MUTED}'>{' · '.join(p for p in (summary, rubric) if p)}</div>"
        f"{_note_html(result)}{tampering}</div>"
    )


def _note_html(result: Result) -> str:
    note = top_band_note(result)
    return (
        f"<div class='whipnb-note' style='margin-top:2px'>{html.escape(note)}</div>" if note else ""
    )


def _score_bar(score: float, colour: str) -> str:
    """A bar filled to the score, with a tick where each band starts (its name as tooltip)."""
    ticks = "".join(
        f"<div title='{label} from {lowest:g}' style='position:absolute;left:{lowest * 100:g}%;"
        f"top:-2px;height:14px;border-left:2px solid {MUTED_BACKGROUND}'></div>"
        for lowest, label in BAND_LABELS
        if lowest > 0
    )
    width = round(max(0.0, min(1.0, score)) * 100, 1)
    return (
        "<div class='whipnb-bar' role='img' "
        f"aria-label='score {score:.3f} of 1' style='position:relative;max-width:460px;"
        f"height:10px;margin:6px 0;background:{TRACK_COLOUR};border-radius:5px'>"
        f"<div style='width:{width:g}%;height:10px;background:{colour};border-radius:5px'></div>"
        f"{ticks}</div>"
    )


def render_checks_html(result: Result, diagnosis: bool = False) -> str:
    """Failed checks first (what to fix next), then the ones that already pass;
    with ``diagnosis``, each failed check's cause and fix under its evidence."""
    failed = [c for c in result.checks if not c.passed]
    passed = [c for c in result.checks if c.passed]
    sections = []
    for heading, group in (("Still to fix", failed), ("Working", passed)):
        if not group:
            continue
        rows = "".join(
            f"<tr class='whipnb-check'><td style='{CELL};width:1%'>{check_badge(c.passed)}</td>"
            f"<td style='{CELL}'><b>{html.escape(c.title)}</b><br>"
            f"<span style='{MUTED}'>{html.escape(c.detail)}</span>"
            f"{_diagnosis_html(c) if diagnosis else ''}</td></tr>"
            for c in group
        )
        sections.append(
            f"<div class='whipnb-heading' style='font-weight:700;margin-top:8px'>"
            f"{heading} ({len(group)})</div><table class='whipnb-checks' style='{TABLE}'>"
            f"{rows}</table>"
        )
    return "".join(sections)


def _diagnosis_html(check: Check) -> str:
    if check.passed or not check.diagnosis:
        return ""
    return f"<div class='whipnb-diagnosis'><b>Fix:</b> {html.escape(check.diagnosis)}</div>"


def render_metrics_html(result: Result) -> str:
    """The success criteria against what was achieved, then every measurement."""
    rows = "".join(
        f"<tr><td style='{CELL}'>{html.escape(row.label)}</td>"
        f"<td style='{CELL};font-variant-numeric:tabular-nums'><b>{html.escape(row.achieved)}</b>"
        f"</td><td style='{CELL}'>{html.escape(row.target)}</td>"
        f"<td style='{CELL}'>{target_badge(row.met)}</td></tr>"
        for row in target_rows(result)
    )
    header = "".join(
        f"<th style='{CELL}'>{name}</th>" for name in ("target metric", "yours", "target", "")
    )
    targets = (
        f"<table class='whipnb-metrics' style='{TABLE}'><tr>{header}</tr>{rows}</table>"
        if rows
        else ""
    )
    others = "".join(
        f"<tr><td style='{CELL}'>{html.escape(metric_label(name))}</td>"
        f"<td style='{CELL}'>{html.escape(format_metric(value))}</td></tr>"
        for name, value in result.metrics.items()
    )
    details = (
        f"<details class='whipnb-measurements'><summary style='cursor:pointer'>"
        f"All measurements ({len(result.metrics)})</summary>"
        f"<table style='{TABLE}'>{others}</table></details>"
        if others
        else ""
    )
    if not (targets or details):
        return ""
    return f"<div class='whipnb-heading' style='font-weight:700'>Targets</div>{targets}{details}"


def render_plot_html(result: Result) -> str:
    png = loss_plot_png(result.losses, result.targets)
    if png is None:
        return (
            f"<div class='whipnb-plot' style='{MUTED}'>Loss curve: "
            f"{html.escape(loss_summary(result.losses))}</div>"
            if result.checks
            else ""
        )
    data = base64.b64encode(png).decode()
    alt = f"training loss curve: {loss_summary(result.losses)}"
    return (
        f"<img class='whipnb-plot' alt='{html.escape(alt)}' style='max-width:100%' "
        f"src='data:image/png;base64,{data}'>"
    )


def render_attempts_html(attempts: Sequence[Result]) -> str:
    """This session's scores, oldest first, the latest with its change."""
    if not attempts:
        return ""
    items = []
    for number, attempt in enumerate(attempts, start=1):
        text = f"{attempt.score:.3f} {html.escape(attempt.band)}"
        if number == len(attempts):
            change = ""
            if number > 1:
                delta = attempt.score - attempts[-2].score
                arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
                change = f" {arrow} {delta:+.3f}"
            text = f"<b>{text}</b>{change} (this run)"
        items.append(f"<li class='whipnb-attempt'>{text}</li>")
    return (
        "<div class='whipnb-attempts'><div class='whipnb-heading' style='font-weight:700'>"
        f"Your attempts this session ({len(attempts)})</div>"
        "<ol class='whipnb-attempt-list' style='margin:2px 0;padding-left:2em'>"
        f"{''.join(items)}</ol></div>"
    )


FIX_STEP = "Show the fix"
NOTHING_TO_FIX = "Every check passes: there is nothing left to fix."
NO_DIAGNOSIS = "The findings above name what is still wrong, and the hints how to fix it."


def fix_items(result: Result) -> list[tuple[str, str]]:
    """The hints' last step: (finding, cause and fix) for every failed check that
    has a diagnosis."""
    return [(c.title, c.diagnosis) for c in result.checks if not c.passed and c.diagnosis]


def render_fix_html(result: Result) -> str:
    items = fix_items(result)
    if not items:
        text = NO_DIAGNOSIS if any(not c.passed for c in result.checks) else NOTHING_TO_FIX
        return f"<div class='whipnb-fix'>{html.escape(text)}</div>"
    rows = "".join(
        f"<li><b>{html.escape(title)}</b>: {html.escape(diagnosis)}</li>"
        for title, diagnosis in items
    )
    return f"<ul class='whipnb-fix' style='margin:4px 0;padding-left:1.5em'>{rows}</ul>"


def render_hints_html(hints: Sequence[str], result: Result | None = None) -> str:
    """Static hints for viewers without widgets: nested ``<details>``, so each
    opens the next one only (one more per click, never all at once), the fix
    (from ``result``'s failed checks) last."""
    steps = [html.escape(hint) for hint in hints]
    labels = [f"Hint {number} of {len(hints)}" for number in range(1, len(hints) + 1)]
    if result is not None and result.checks:
        steps.append(render_fix_html(result))
        labels.append(FIX_STEP)
    nested = ""
    for label, step in reversed(list(zip(labels, steps, strict=True))):
        nested = (
            f"<details class='whipnb-static-hint'><summary style='cursor:pointer'>"
            f"{label}</summary><div style='margin-left:1em'>{step}{nested}</div></details>"
        )
    return nested


def render_html(
    result: Result,
    attempts: Sequence[Result] = (),
    hints: Sequence[str] = (),
    diagnosis: bool = False,
) -> str:
    """The whole panel as static HTML, hints and the fix folded away (the fix shown
    with each finding too when ``diagnosis`` is asked for)."""
    return (
        PANEL_STYLE
        + "<div class='whipnb-panel whipnb-static-panel' style='max-width:860px'>"
        + render_header_html(result, len(attempts))
        + render_checks_html(result, diagnosis)
        + render_metrics_html(result)
        + render_plot_html(result)
        + render_hints_html(hints, result)
        + render_attempts_html(attempts)
        + "</div>"
    )


# ---------------------------------------------------------------- widget


def build_widget(
    result: Result,
    hints: Sequence[str],
    attempts: Sequence[Result],
    revealed_hints: dict[str, int] | None = None,
):
    """The live panel: the same sections as the HTML, with a hint button whose last
    step shows the fix. ``revealed_hints``: the session's counts, so a re-run keeps
    the hints already asked for."""
    import ipywidgets as widgets

    sections = [
        html_widget(PANEL_STYLE + render_header_html(result, len(attempts))),
        html_widget(render_checks_html(result) + render_metrics_html(result)),
    ]
    plot = render_plot_html(result)
    if plot:
        sections.append(html_widget(plot))
    hint_box = HintBox(hints, render_fix_html(result), result.task, revealed_hints)
    sections += [hint_box.widget, html_widget(render_attempts_html(attempts))]
    panel = widgets.VBox(sections, layout=widgets.Layout(max_width="860px", padding="2px"))
    panel.add_class("whipnb-panel")
    return panel


def html_widget(markup: str):
    """An HTML widget at reading line height (ipywidgets' own suits one-line controls)."""
    import ipywidgets as widgets

    return widgets.HTML(f"<div style='line-height:1.4'>{markup}</div>")


class HintBox:
    """Progressive hints: each click reveals exactly one more, and one click past the
    last hint shows the fix (``fix_html``, when given). With ``memory``, the count
    is kept there under ``key`` and survives into the next panel of the same task."""

    def __init__(
        self,
        hints: Sequence[str],
        fix_html: str = "",
        key: str = "",
        memory: dict[str, int] | None = None,
    ) -> None:
        import ipywidgets as widgets

        self.hints = list(hints)
        self.fix_html = fix_html
        self.key = key
        self.memory = memory if memory is not None else {}
        self.steps = len(self.hints) + bool(fix_html)
        self.shown = min(self.memory.get(key, 0), self.steps)
        self.button = widgets.Button(icon="lightbulb", layout=widgets.Layout(width="auto"))
        self.button.add_class("whipnb-hint-button")
        self.text = widgets.HTML("")
        self.text.add_class("whipnb-hints")
        self.button.on_click(lambda _button: self.reveal())
        self.widget = widgets.VBox(
            [self.button, self.text], layout=widgets.Layout(align_items="flex-start")
        )
        self._show()

    @property
    def fix_shown(self) -> bool:
        return bool(self.fix_html) and self.shown > len(self.hints)

    def reveal(self) -> None:
        self.shown = min(self.shown + 1, self.steps)
        self.memory[self.key] = max(self.memory.get(self.key, 0), self.shown)
        self._show()

    def _show(self) -> None:
        items = "".join(
            f"<li class='whipnb-hint'>{html.escape(hint)}</li>" for hint in self.hints[: self.shown]
        )
        listing = (
            "<ol class='whipnb-hint-list' style='margin:4px 0;padding-left:2em;line-height:1.4'>"
            f"{items}</ol>"
            if items
            else ""
        )
        fix = (
            f"<div class='whipnb-fix-step' style='line-height:1.4'><b>The fix</b>{self.fix_html}"
            "</div>"
            if self.fix_shown
            else ""
        )
        self.text.value = listing + fix
        self.button.description, self.button.disabled = self._button_state()

    def _button_state(self) -> tuple[str, bool]:
        remaining = len(self.hints) - self.shown
        if not self.steps:
            return "No hints for this task", True
        if remaining > 0:
            if self.shown == 0:
                return f"Show a hint ({remaining} available)", False
            return f"Show another hint ({remaining} left)", False
        if self.fix_html and not self.fix_shown:
            return FIX_STEP, False
        if self.fix_html:
            return "The fix is shown", True
        return f"All {len(self.hints)} hints shown", True


# ---------------------------------------------------------------- display data


def mime_bundle(
    result: Result,
    attempts: Sequence[Result] = (),
    hints: Sequence[str] | None = None,
    diagnosis: bool = False,
) -> dict[str, Any]:
    """The display data of a graded run: the result bundle plus its readable forms.
    ``hints`` default to the task's own."""
    shown_hints = task_hints(result.task) if hints is None else hints
    return {
        RESULT_MIME: result.to_bundle(),
        "text/html": render_html(result, attempts, shown_hints, diagnosis),
        "text/plain": render_text(result, attempts, diagnosis),
    }
