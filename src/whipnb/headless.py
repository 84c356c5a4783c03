"""Headless grading of a submitted notebook in a fresh kernel, through nbclient.

The submitted notebook is data, never truth: its stored outputs are ignored and
the file is only read.  The grader extracts the graded cell's body, builds a
notebook of its own (load the extension, run the body under ``%%whip_grade``,
read the result out), executes it in a new kernel and takes the result only
from the read-out cell it appended itself.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from whipnb.core import failure_result
from whipnb.magic import HEADLESS_ENV
from whipnb.result import INVALID, KERNEL_DIED, RESULT_MIME, TIMEOUT, Result
from whipnb.tasks import UnknownTaskError, get_task

GRADED_CELL = re.compile(r"\A\s*%%whip_grade[ \t]*(?P<task>[^\n]*)(?:\n|\Z)")
READ_OUT = "from whipnb.magic import display_last_result\ndisplay_last_result()"


class InvalidSubmission(ValueError):
    """The notebook cannot be graded at all; the message says why."""


@dataclass(frozen=True)
class GradedCell:
    task: str
    body: str


def find_graded_cell(notebook: nbformat.NotebookNode) -> GradedCell:
    """The one ``%%whip_grade taskN`` cell of a notebook."""
    found = []
    for cell in notebook.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        match = GRADED_CELL.match(source)
        if match:
            found.append(GradedCell(match.group("task").strip(), source[match.end() :]))
    if not found:
        raise InvalidSubmission("no graded cell: no code cell starts with '%%whip_grade taskN'")
    if len(found) > 1:
        tasks = ", ".join(cell.task or "(none)" for cell in found)
        raise InvalidSubmission(f"{len(found)} graded cells ({tasks}); exactly one is allowed")
    cell = found[0]
    if not cell.task:
        raise InvalidSubmission("the graded cell names no task: write '%%whip_grade taskN'")
    try:
        get_task(cell.task)
    except UnknownTaskError as error:
        raise InvalidSubmission(str(error)) from None
    if not cell.body.strip():
        raise InvalidSubmission(f"the graded cell for {cell.task} is empty")
    return cell


def read_submission(path: Path) -> GradedCell:
    try:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
    except Exception as error:  # JSON errors, non-notebooks, unreadable files
        raise InvalidSubmission(f"not a readable notebook: {_first_line(error)}") from None
    if notebook.get("nbformat") != 4:
        raise InvalidSubmission(
            f"nbformat {notebook.get('nbformat')} is not supported; save it as nbformat 4"
        )
    return find_graded_cell(notebook)


def grading_notebook(cell: GradedCell) -> nbformat.NotebookNode:
    """The notebook the grader actually runs: its own cells around the learner's body."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("%load_ext whipnb"),
        nbformat.v4.new_code_cell(f"%%whip_grade {cell.task}\n{cell.body}"),
        nbformat.v4.new_code_cell(READ_OUT),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


def grade_notebook(path: str | Path, timeout: float | None = None) -> Result:
    """Grade one submitted notebook; always returns a result, never raises for the submission."""
    started = time.perf_counter()
    try:
        cell = read_submission(Path(path))
    except InvalidSubmission as error:
        return failure_result(_guess_task(path), INVALID, str(error), time.perf_counter() - started)
    task = get_task(cell.task)
    limit = timeout if timeout is not None else task.timeout_s
    notebook = grading_notebook(cell)
    client = NotebookClient(
        notebook,
        timeout=limit,
        kernel_name="python3",
        allow_errors=True,
        store_widget_state=False,
        record_timing=False,
    )
    try:
        client.execute(env=kernel_environment())
    except CellTimeoutError:
        message = f"stopped after {limit:g} s: the code did not finish in time (endless loop?)"
        return failure_result(cell.task, TIMEOUT, message, time.perf_counter() - started)
    except DeadKernelError as error:
        message = f"the kernel died while running the code ({_first_line(error)})"
        return failure_result(cell.task, KERNEL_DIED, message, time.perf_counter() - started)
    result = read_result(notebook)
    if result is None:
        message = "the grader's read-out cell produced no result (the kernel may have been reset)"
        return failure_result(cell.task, KERNEL_DIED, message, time.perf_counter() - started)
    result.duration_s = round(time.perf_counter() - started, 3)
    return result


def read_result(notebook: nbformat.NotebookNode) -> Result | None:
    """The result bundle from the grader's own read-out cell (the last one), if any."""
    for output in notebook.cells[-1].get("outputs", []):
        bundle = output.get("data", {}).get(RESULT_MIME)
        if isinstance(bundle, dict):
            return Result.from_bundle(bundle)
    return None


def kernel_environment() -> dict[str, str]:
    env = dict(os.environ)
    env[HEADLESS_ENV] = "1"
    env["MPLBACKEND"] = "Agg"
    return env


def as_record(path: str | Path, result: Result) -> dict[str, Any]:
    """The JSON record of contract 3."""
    bundle = result.to_bundle()
    keys = ("task", "score", "band", "status", "checks", "metrics", "message", "duration_s")
    return {"path": str(path), **{key: bundle[key] for key in keys}}


def _guess_task(path: str | Path) -> str:
    match = re.search(r"task\d+", Path(path).stem)
    return match.group(0) if match else "(unknown)"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
