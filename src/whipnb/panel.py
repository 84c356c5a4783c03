"""The score panel: an ipywidgets view for JupyterLab, with HTML and plain-text
renderings of the same content for nbconvert, GitHub previews and terminals.

Every colour is paired with a symbol or a word, so nothing is told by colour
alone (the palette is Okabe-Ito, readable with the common colour-blindnesses).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from typing import Any

from whipnb.result import RESULT_MIME, Result

BAND_COLOURS = {
    "Excellent": "#0072B2",
    "Good": "#009E73",
    "Partial": "#E69F00",
    "Minimal": "#D55E00",
    "Failed": "#D55E00",
}
PASS_MARK, FAIL_MARK = "✔", "✘"


def format_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return "n/a" if value is None else str(value)


def loss_plot_png(losses: Sequence[float]) -> bytes | None:
    """The loss of every backward pass, with a running mean; log scale when it spans decades."""
    finite = [(i, loss) for i, loss in enumerate(losses) if math.isfinite(loss)]
    if not finite:
        return None
    from matplotlib.figure import Figure  # Figure, not pyplot: the learner's backend is untouched

    figure = Figure(figsize=(5.2, 2.4), dpi=100)
    axes = figure.subplots()
    steps, values = zip(*finite, strict=True)
    axes.plot(steps, values, color="#999999", linewidth=0.6, label="loss per step")
    window = max(1, len(values) // 25)
    running = [_mean(values[max(0, i - window + 1) : i + 1]) for i in range(len(values))]
    axes.plot(steps, running, color="#0072B2", linewidth=1.8, label="running mean")
    bad = [i for i, loss in enumerate(losses) if not math.isfinite(loss)]
    if bad:
        label = f"first NaN/inf (step {bad[0]})"
        axes.axvline(bad[0], color="#D55E00", linestyle="--", label=label)
    if min(values) > 0 and max(values) / min(values) > 100:
        axes.set_yscale("log")
    axes.set_xlabel("training step (backward pass)")
    axes.set_ylabel("loss")
    axes.legend(fontsize=7, loc="upper right")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def render_text(result: Result) -> str:
    lines = [
        f"whipnb {result.task}: score {result.score:.3f} ({result.band}) - {result.status}",
        result.message,
    ]
    if result.rubric_row:
        lines.append(f"rubric row: {result.rubric_row}")
    for check in result.checks:
        mark = PASS_MARK if check.passed else FAIL_MARK
        lines.append(f"  {mark} {check.title}: {check.detail}")
    for name, target in result.targets.items():
        lines.append(f"  {name}: {format_metric(result.metrics.get(name))} (target {target})")
    return "\n".join(lines)


def _checks_html(result: Result) -> str:
    rows = "".join(
        f"<tr><td style='color:{'#0072B2' if c.passed else '#D55E00'};font-weight:bold'>"
        f"{PASS_MARK + ' pass' if c.passed else FAIL_MARK + ' fix'}</td>"
        f"<td><b>{html.escape(c.title)}</b><br><span style='opacity:0.8'>"
        f"{html.escape(c.detail)}</span></td></tr>"
        for c in result.checks
    )
    return f"<table class='whipnb-checks'>{rows}</table>" if rows else ""


def _metrics_html(result: Result) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(name)}</td><td>{html.escape(format_metric(result.metrics.get(name)))}"
        f"</td><td>{html.escape(target)}</td></tr>"
        for name, target in result.targets.items()
    )
    if not rows:
        return ""
    return (
        "<table class='whipnb-metrics'><tr><th>metric</th><th>achieved</th><th>target</th></tr>"
        f"{rows}</table>"
    )


def _attempts_html(attempts: Sequence[Result]) -> str:
    if not attempts:
        return ""
    cells = " · ".join(
        f"#{number}: {attempt.score:.3f} {attempt.band}"
        for number, attempt in enumerate(attempts, start=1)
    )
    return f"<div class='whipnb-attempts'><b>Attempts this session:</b> {cells}</div>"


def render_header_html(result: Result) -> str:
    colour = BAND_COLOURS.get(result.band, "#555555")
    width = int(round(result.score * 100))
    return (
        f"<div class='whipnb-header' style='border-left:6px solid {colour};padding:4px 10px'>"
        f"<span style='font-size:1.6em;font-weight:bold'>{result.score:.3f}</span> "
        f"<span style='font-size:1.1em;color:{colour};font-weight:bold'>{result.band}</span> "
        f"<span style='opacity:0.7'>"
        f"({html.escape(result.task)}, {html.escape(result.status)})</span>"
        f"<div style='background:#eee;height:8px;width:100%;max-width:420px'>"
        f"<div style='background:{colour};height:8px;width:{width}%'></div></div>"
        f"<div>{html.escape(result.message)}</div>"
        f"<div style='opacity:0.7'>{html.escape(result.rubric_row)}</div></div>"
    )


def render_html(result: Result, attempts: Sequence[Result] = ()) -> str:
    """The whole panel as static HTML (hints excepted: they are revealed on request)."""
    png = loss_plot_png(result.losses)
    plot = (
        f"<img alt='loss curve' src='data:image/png;base64,{base64.b64encode(png).decode()}'>"
        if png
        else ""
    )
    return (
        "<div class='whipnb-panel'>"
        + render_header_html(result)
        + _checks_html(result)
        + _metrics_html(result)
        + plot
        + _attempts_html(attempts)
        + "</div>"
    )


def build_widget(result: Result, hints: Sequence[str], attempts: Sequence[Result]):
    """The live panel: the HTML sections plus the loss plot and a hint button."""
    import ipywidgets as widgets

    png = loss_plot_png(result.losses)
    sections: list[Any] = [
        widgets.HTML(render_header_html(result)),
        widgets.HTML(_checks_html(result) + _metrics_html(result)),
    ]
    if png:
        sections.append(widgets.Image(value=png, format="png"))
    sections.append(HintBox(hints).widget)
    sections.append(widgets.HTML(_attempts_html(attempts)))
    panel = widgets.VBox(sections)
    panel.add_class("whipnb-panel")
    return panel


class HintBox:
    """Progressive hints: each click reveals exactly one more."""

    def __init__(self, hints: Sequence[str]) -> None:
        import ipywidgets as widgets

        self.hints = list(hints)
        self.shown = 0
        self.button = widgets.Button(description="Show a hint", icon="lightbulb-o")
        self.button.add_class("whipnb-hint-button")
        self.text = widgets.HTML("")
        self.text.add_class("whipnb-hints")
        self.button.on_click(lambda _button: self.reveal())
        self.widget = widgets.VBox([self.button, self.text])
        self.button.disabled = not self.hints

    def reveal(self) -> None:
        if self.shown < len(self.hints):
            self.shown += 1
        items = "".join(f"<li>{html.escape(hint)}</li>" for hint in self.hints[: self.shown])
        self.text.value = f"<ol class='whipnb-hint-list'>{items}</ol>"
        remaining = len(self.hints) - self.shown
        self.button.description = (
            f"Another hint ({remaining} left)" if remaining else "No more hints"
        )
        self.button.disabled = remaining == 0


def mime_bundle(result: Result, attempts: Sequence[Result] = ()) -> dict[str, Any]:
    """The display data of a graded run: the result bundle plus its readable forms."""
    return {
        RESULT_MIME: result.to_bundle(),
        "text/html": render_html(result, attempts),
        "text/plain": render_text(result),
    }
