"""``%%whip_grade taskN``: a thin IPython front end over :func:`whipnb.grade_source`.

The body runs through ``shell.run_cell`` in the notebook's own namespace, so
prints stream live, variables stay inspectable and a learner's exception shows
its usual traceback; then the score panel is displayed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from whipnb.api import grade_source
from whipnb.core.result import INVALID, RESULT_MIME, Result, failure_result
from whipnb.core.runner import Executor
from whipnb.notebook.panel import build_widget, mime_bundle, render_text
from whipnb.tasks import UnknownTaskError, get_task

#: Set by the headless grader: no widgets (nobody is there to click them).
HEADLESS_ENV = "WHIPNB_HEADLESS"


class Session:
    """The attempts made in this kernel, so the panel can show progress."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[Result]] = defaultdict(list)
        self.last: Result | None = None

    def record(self, result: Result) -> list[Result]:
        self.attempts[result.task].append(result)
        self.last = result
        return self.attempts[result.task]


SESSION = Session()


def ipython_executor(shell: Any) -> Executor:
    def execute(source: str, namespace: dict[str, Any]) -> BaseException | None:
        outcome = shell.run_cell(source, store_history=False)
        return outcome.error_before_exec or outcome.error_in_exec

    return execute


def grade_cell(shell: Any, line: str, cell: str) -> Result:
    """Grade a cell body in ``shell``'s namespace; an unknown task becomes ``invalid``."""
    task_id = line.strip()
    try:
        get_task(task_id)
    except UnknownTaskError as error:
        return failure_result(task_id or "(none)", INVALID, str(error))
    return grade_source(task_id, cell, namespace=shell.user_ns, executor=ipython_executor(shell))


def show(result: Result, attempts: list[Result]) -> None:
    """Display one output: the result bundle, its HTML and text, and the live panel.

    Headless, nobody looks at this cell (the grader reads its own read-out cell),
    so the bundle and text suffice and the plot is never drawn.
    """
    if os.environ.get(HEADLESS_ENV):
        display({RESULT_MIME: result.to_bundle(), "text/plain": render_text(result)}, raw=True)
        return
    data = mime_bundle(result, attempts)
    if result.checks:
        hints = get_task(result.task).hints
        widget_data = build_widget(result, hints, attempts)._repr_mimebundle_()
        data.update({k: v for k, v in widget_data.items() if k != "text/plain"})
    display(data, raw=True)


def display_last_result() -> None:
    """The headless grader's read-out cell: re-display the last grading, bundle only."""
    result = SESSION.last or failure_result("(none)", INVALID, "the graded cell produced no result")
    display({RESULT_MIME: result.to_bundle(), "text/plain": render_text(result)}, raw=True)


@magics_class
class WhipMagics(Magics):
    @cell_magic
    def whip_grade(self, line: str, cell: str) -> None:
        """Run this cell as a whipnb exercise and grade it: ``%%whip_grade task1``."""
        result = grade_cell(self.shell, line, cell)
        show(result, SESSION.record(result))


def register(ipython: Any) -> None:
    ipython.register_magics(WhipMagics)
