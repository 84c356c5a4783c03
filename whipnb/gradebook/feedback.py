"""Feedback to hand back: one self-contained HTML file per learner and task.

Like nbgrader's ``generate_feedback``, but from the gradebook: each file shows
the learner's score and band, every finding with its evidence, the targets,
the loss curve (a PNG inside the file as a data URI) and the task's hints,
one more per click (nested ``<details>``, no script).  It is the score panel
the learner saw in JupyterLab (:func:`whipnb.notebook.panel.render_html`), so
feedback and notebook never disagree, on a page that needs no network, no
Jupyter and no widget: it opens in any browser or mail attachment viewer.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

from whipnb.gradebook.exports import safe_name
from whipnb.gradebook.store import Grading
from whipnb.notebook.panel import render_html, task_hints

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em;
       padding: 0 1em; color: #1a1a1a; line-height: 1.4; }}
.whipnb-feedback-meta {{ opacity: 0.75; margin-bottom: 1em; }}
</style></head><body>
<h1>{title}</h1>
<div class="whipnb-feedback-meta">{meta}</div>
{panel}
</body></html>
"""


def feedback_page(grading: Grading) -> str:
    """The whole feedback page for one grading; everything the learner wrote is escaped."""
    result = grading.result
    title = f"whipnb feedback: {grading.learner}, {result.task}"
    meta = " · ".join(
        (
            f"learner <b>{html.escape(grading.learner)}</b>",
            f"file <code>{html.escape(grading.path)}</code>",
            f"graded {html.escape(grading.finished_at)} by whipnb {html.escape(grading.version)}",
        )
    )
    panel = render_html(result, (), task_hints(result.task))
    return PAGE.format(title=html.escape(title), meta=meta, panel=panel)


def write_feedback(folder: str | Path, gradings: Sequence[Grading]) -> list[Path]:
    """``<folder>/<learner>/<task>.html`` for every grading; returns the files written."""
    written = []
    for grading in gradings:
        target = (
            Path(folder) / safe_name(grading.learner) / f"{safe_name(grading.result.task)}.html"
        )
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(feedback_page(grading), encoding="utf-8")
        written.append(target)
    return written
