"""``%%whip_grade taskN``: a thin IPython front end over :func:`whipnb.grade_source`.

The body runs through ``shell.run_cell`` in the notebook's own namespace, so
prints stream live, variables stay inspectable and a learner's exception shows
its usual traceback; then the score panel is displayed.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from whipnb.api import grade_source
from whipnb.core.result import INVALID, RESULT_MIME, Result, failure_result
from whipnb.core.runner import Executor, Run
from whipnb.notebook.export import EXPORT_FOLDER, Exporter
from whipnb.notebook.panel import build_widget, mime_bundle, render_text
from whipnb.tasks import UnknownTaskError, get_task

#: Set by the headless grader: no widgets (nobody is there to click them).
HEADLESS_ENV = "WHIPNB_HEADLESS"


class Session:
    """The attempts made in this kernel, so the panel can show progress."""

    def __init__(self) -> None:
        self.attempts: dict[str, list[Result]] = defaultdict(list)
        self.last: Result | None = None
        #: Set by the headless grader before the learner's code runs: where each
        #: grading exports its model and record (see :mod:`whipnb.notebook.export`).
        self.export_folder: Path | None = None

    def exporter(self, task_id: str) -> Exporter | None:
        """An exporter for a grading of ``task_id``, when the grader asked for exports."""
        if self.export_folder is None:
            return None
        try:
            return Exporter(self.export_folder, get_task(task_id))
        except UnknownTaskError:
            return None

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


def grade_cell(
    shell: Any, line: str, cell: str, on_assessed: Callable[[Run], None] | None = None
) -> Result:
    """Grade a cell body in ``shell``'s namespace; an unknown task becomes ``invalid``."""
    task_id = line.strip()
    try:
        get_task(task_id)
    except UnknownTaskError as error:
        return failure_result(task_id or "(none)", INVALID, str(error))
    return grade_source(
        task_id,
        cell,
        namespace=shell.user_ns,
        executor=ipython_executor(shell),
        on_assessed=on_assessed,
    )


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


def export_here() -> None:
    """The headless grader's set-up cell: export every grading below the working folder
    (named now, before the learner's code can change the working directory)."""
    SESSION.export_folder = Path.cwd() / EXPORT_FOLDER


def display_last_result() -> None:
    """The headless grader's read-out cell: re-display the last grading, bundle only.

    The grader compares it with the exported record and trusts neither beyond what
    the outside measurement supports (:mod:`whipnb.headless.readout`).
    """
    result = SESSION.last or failure_result("(none)", INVALID, "the graded cell produced no result")
    display({RESULT_MIME: result.to_bundle(), "text/plain": render_text(result)}, raw=True)


@magics_class
class WhipMagics(Magics):
    @cell_magic
    def whip_grade(self, line: str, cell: str) -> None:
        """Run this cell as a whipnb exercise and grade it: ``%%whip_grade task1``."""
        exporter = SESSION.exporter(line.strip())
        result = grade_cell(self.shell, line, cell, exporter.pick if exporter else None)
        if exporter is not None:
            exporter.write(result)
        show(result, SESSION.record(result))


def register(ipython: Any) -> None:
    ipython.register_magics(WhipMagics)
