"""``%%whip_grade taskN``: a thin IPython front end over :func:`whipnb.grade_source`.

The body runs through ``shell.run_cell`` in the notebook's own namespace, so
prints stream live, variables stay inspectable and a learner's exception shows
its usual traceback; then the score panel is displayed.

The kernel's state (this session's attempts, the last result, the hints already
revealed) lives on the registered :class:`WhipMagics` instance, as IPython's
autoreload keeps its state on its magics: two shells never share attempts, and
nothing of it is a module global.
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from IPython.core.getipython import get_ipython
from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.display import display

from whipnb.api import grade_source
from whipnb.core.result import INVALID, RESULT_MIME, Check, Result, failure_result
from whipnb.core.runner import Executor, Run
from whipnb.notebook.export import EXPORT_FOLDER, Exporter
from whipnb.notebook.panel import WIDGET_MIME, build_widget, mime_bundle, render_text
from whipnb.tasks import UnknownTaskError, get_task

#: Set by the headless grader: no widgets (nobody is there to click them).
HEADLESS_ENV = "WHIPNB_HEADLESS"
#: The widget's own output in a saved notebook, where nbconvert and GitHub show it:
#: nothing (the static panel in the output before it says it all).
WIDGET_TEXT = ""
INTEGRITY_TITLE = "The code leaves the grader alone"


class Session:
    """One kernel's attempts (so the panel shows progress), its last result (for the
    headless read-out) and how many hints each task has revealed (so a re-run's
    panel keeps the hints already asked for).

    Slots: learner code that reaches the session cannot hide a method behind an
    instance attribute of the same name.
    """

    __slots__ = ("attempts", "export_folder", "last", "revealed_hints")

    def __init__(self) -> None:
        self.attempts: dict[str, list[Result]] = defaultdict(list)
        self.last: Result | None = None
        self.revealed_hints: dict[str, int] = {}
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
        """Keep ``result`` as the last one; an attempt only when it graded a real task
        (a mistyped task name is not an attempt at anything)."""
        self.last = result
        if result.status == INVALID and not result.checks:
            return []
        self.attempts[result.task].append(result)
        return self.attempts[result.task]


def ipython_executor(shell: Any) -> Executor:
    def execute(source: str, namespace: dict[str, Any]) -> BaseException | None:
        outcome = shell.run_cell(source, store_history=False)
        return outcome.error_before_exec or outcome.error_in_exec

    return execute


def grade_cell(
    shell: Any, line: str, cell: str, on_assessed: Callable[[Run], None] | None = None
) -> Result:
    """Grade a cell body in ``shell``'s namespace; an unknown task becomes ``invalid``.

    With the diagnosis: the panel's last hint step shows it, and the headless
    grader strips it from records unless an instructor asks for it.  ``on_assessed``
    sees the finished run (the headless export picks the model there)."""
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
        diagnosis=True,
    )


def show(result: Result, attempts: list[Result], revealed_hints: dict[str, int]) -> None:
    """Display the graded run.

    Headless, nobody looks at this cell (the grader reads its own read-out cell),
    so one output with the bundle and text suffices and the plot is never drawn.

    Live, two outputs: first the static panel (the result bundle, HTML, text),
    then the ipywidgets panel in an output of its own. A widget output whose model
    is gone (the notebook reopened, the kernel restarted) can only show "Error
    displaying widget: model not found": JupyterLab always prefers the widget MIME
    type in an output that has one. Kept apart, the static panel survives every
    reopening, and each hides the other by CSS (see ``panel.PANEL_STYLE``): the
    static one while the live widget is there, the dead widget once it is not.
    """
    if os.environ.get(HEADLESS_ENV):
        display({RESULT_MIME: result.to_bundle(), "text/plain": render_text(result)}, raw=True)
        return
    display(mime_bundle(result, attempts), raw=True)
    if result.checks:
        hints = get_task(result.task).hints
        widget = build_widget(result, hints, attempts, revealed_hints)
        view = widget._repr_mimebundle_()[WIDGET_MIME]
        display({WIDGET_MIME: view, "text/plain": WIDGET_TEXT}, raw=True)


def active_magics(shell: Any = None) -> WhipMagics | None:
    """The ``WhipMagics`` instance behind ``%%whip_grade`` in ``shell`` (default: the
    running one), found through the magics table the integrity guard restores."""
    shell = shell if shell is not None else get_ipython()
    if shell is None:
        return None
    method = shell.magics_manager.magics["cell"].get("whip_grade")
    owner = getattr(method, "__self__", None)
    return owner if isinstance(owner, WhipMagics) else None


def export_here() -> None:
    """The headless grader's set-up cell: export every grading below the working folder
    (named now, before the learner's code can change the working directory)."""
    magics = active_magics()
    if magics is None:
        raise RuntimeError("the whipnb extension is not loaded: %load_ext whipnb first")
    magics.session.export_folder = Path.cwd() / EXPORT_FOLDER


def display_last_result() -> None:
    """The headless grader's read-out cell: re-display the last grading, bundle only.

    The grader compares it with the exported record and trusts neither beyond what
    the outside measurement supports (:mod:`whipnb.headless.readout`).
    """
    magics = active_magics()
    last = magics.session.last if magics is not None else None
    result = last or failure_result("(none)", INVALID, "the graded cell produced no result")
    display({RESULT_MIME: result.to_bundle(), "text/plain": render_text(result)}, raw=True)


@magics_class
class WhipMagics(Magics):
    """``%%whip_grade``, with this kernel's grading session on the instance."""

    def __init__(self, shell: Any = None) -> None:
        super().__init__(shell)
        self.session = Session()

    @cell_magic
    def whip_grade(self, line: str, cell: str) -> None:
        """Run this cell as a whipnb exercise and grade it: ``%%whip_grade task1``."""
        session = self.session  # held before the learner's code runs, which could replace it
        exporter = session.exporter(line.strip())
        result = grade_cell(self.shell, line, cell, exporter.pick if exporter else None)
        if self.session is not session:
            self.session = session
            _flag(result, "replaced the %%whip_grade magic's session")
        if exporter is not None:
            exporter.write(result)
        show(result, session.record(result), session.revealed_hints)


def _flag(result: Result, finding: str) -> None:
    """Record a change the learner's code made to the magic, as the grader records tampering."""
    result.tampering.append(finding)
    integrity = Check("integrity", INTEGRITY_TITLE, False, "; ".join(result.tampering))
    result.checks[:] = [check for check in result.checks if check.id != "integrity"] + [integrity]


def register(ipython: Any) -> None:
    ipython.register_magics(WhipMagics)
