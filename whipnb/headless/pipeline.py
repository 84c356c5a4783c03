"""Headless grading of a submitted notebook in a fresh kernel, through nbclient.

The submitted notebook is data, never truth: its stored outputs are ignored and
the file is only read.  The grader extracts the graded cell's body, builds a
notebook of its own (load the extension, run the body under ``%%whip_grade``,
read the result out), executes it in a new kernel and takes the result only
from the read-out cell it appended itself.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from whipnb.core.result import (
    INVALID,
    KERNEL_DIED,
    MEMORY,
    RESULT_MIME,
    TIMEOUT,
    Result,
    failure_result,
)
from whipnb.headless.kernels import StartedKernel
from whipnb.headless.limits import STOPPED, KernelWatch, Limits
from whipnb.headless.measure import SECRET_ENV, grading_secret, measure_export
from whipnb.headless.readout import (
    ExportRecord,
    ReadoutError,
    displayed_bundle,
    parse_bundle,
    read_record,
)
from whipnb.headless.submissions import (  # reading submissions lives there; re-exported here
    GRADED_CELL,
    GradedCell,
    InvalidSubmission,
    find_graded_cell,  # noqa: F401
    guess_task,
    read_submission,
)
from whipnb.headless.verdict import decide
from whipnb.notebook.export import EXPORT_FOLDER
from whipnb.notebook.magic import HEADLESS_ENV
from whipnb.tasks import get_task

#: Extra seconds nbclient waits past the watch's deadline: the watch is the
#: limit; nbclient's own cell timeout only backs it up.
BACKUP_TIMEOUT_S = 30
#: Started with every grading kernel: exit() and quit() must not end it (see the module).
KERNEL_ARGUMENTS = ["--IPKernelApp.extensions=whipnb.notebook.grading_kernel"]
#: Numeric libraries read these at import: one thread each when kernels share the CPUs.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
READ_OUT = "from whipnb.notebook.magic import display_last_result\ndisplay_last_result()"
#: The set-up cell: load the magic and name the export folder before the learner's code runs.
SET_UP = "%load_ext whipnb\nfrom whipnb.notebook.magic import export_here\nexport_here()"


def grading_notebook(cell: GradedCell) -> nbformat.NotebookNode:
    """The notebook the grader actually runs: its own cells around the learner's body."""
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(SET_UP),
        nbformat.v4.new_code_cell(f"%%whip_grade {cell.task}\n{cell.body}"),
        nbformat.v4.new_code_cell(READ_OUT),
    ]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


class GradingStopped(RuntimeError):
    """The batch was stopped (Ctrl-C) while this submission ran: no grade to record."""


def grade_notebook(
    path: str | Path,
    timeout: float | None = None,
    *,
    limits: Limits | None = None,
    stop: threading.Event | None = None,
) -> Result:
    """Grade one submitted notebook; always returns a result, never raises for the submission.

    ``timeout`` (seconds) overrides the limits' timeout, kept for callers of the
    original signature.  Raises :class:`GradingStopped` only when ``stop`` is set.
    """
    started = time.perf_counter()
    limits = limits or Limits()
    if timeout is not None:
        limits = dataclasses.replace(limits, timeout_s=timeout)
    try:
        cell = read_submission(Path(path))
    except InvalidSubmission as error:
        return failure_result(guess_task(path), INVALID, str(error), time.perf_counter() - started)
    result = grade_cell(cell, limits, stop)
    result.tampering += stored_claims(Path(path), result.score)
    return result


def grade_cell(
    cell: GradedCell,
    limits: Limits | None = None,
    stop: threading.Event | None = None,
    started_kernel: StartedKernel | None = None,
) -> Result:
    """Run a graded cell in a fresh kernel, in an empty working folder, under ``limits``.

    The kernel's process tree is watched (:class:`~whipnb.headless.limits.KernelWatch`):
    past the wall-clock or memory limit it is killed and the result says
    ``timeout`` or ``memory``; a kernel that dies by itself is ``kernel_died``.
    The clock starts with the graded cell, so the grader's own imports in a
    fresh kernel do not eat into the submission's time.  ``started_kernel``, one
    booted ahead of need (:mod:`whipnb.headless.kernels`), is used instead of starting one;
    nbclient shuts it down afterwards like one of its own.
    """
    started = time.perf_counter()
    limits = limits or Limits()
    timeout = limits.timeout_s if limits.timeout_s is not None else get_task(cell.task).timeout_s
    notebook = grading_notebook(cell)
    kernel: dict[str, subprocess.Popen[bytes]] = {}
    folder = (
        started_kernel.workdir if started_kernel else tempfile.TemporaryDirectory(prefix="whipnb-")
    )
    with (
        folder as workdir,
        KernelWatch(timeout, limits.memory_mb, stop) as watch,
    ):

        def kernel_started(**_: Any) -> None:
            provisioner = client.km.provisioner
            kernel["process"] = provisioner.process
            watch.start(provisioner.pid)

        def cell_starts(cell: nbformat.NotebookNode, **_: Any) -> None:
            if GRADED_CELL.match(cell.source):
                watch.start_clock()

        client = NotebookClient(
            notebook,
            km=started_kernel.manager if started_kernel else None,
            timeout=timeout + BACKUP_TIMEOUT_S,
            kernel_name="python3",
            allow_errors=True,
            store_widget_state=False,
            record_timing=False,
            shutdown_kernel="immediate",
            extra_arguments=KERNEL_ARGUMENTS,
            on_notebook_start=kernel_started,
            on_cell_execute=cell_starts,
        )
        client.owns_km = True  # a started kernel is shut down after, like nbclient's own
        try:
            client.execute(
                env=kernel_environment(limits.threads),
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            died = None
        except CellTimeoutError:
            died = TIMEOUT
        except DeadKernelError:
            died = KERNEL_DIED
        if died is None:  # the kernel is shut down: measure what it exported, outside it
            result = decided_result(cell.task, notebook, Path(workdir), limits)
    elapsed = time.perf_counter() - started
    if died is not None:  # the watch's reason, if it killed the kernel, says why
        if watch.reason == STOPPED:
            raise GradingStopped(f"stopped while grading a {cell.task} submission")
        reason = watch.reason or died
        status, message = _failure(reason, timeout, watch.peak_bytes, limits, kernel.get("process"))
        return failure_result(cell.task, status, message, elapsed)
    result.duration_s = round(elapsed, 3)
    return result


def decided_result(
    task_id: str, notebook: nbformat.NotebookNode, workdir: Path, limits: Limits
) -> Result:
    """The grader's verdict on what the kernel left: its read-out and export, validated,
    and the exported model measured in a fresh process (:mod:`whipnb.headless.verdict`)."""
    task = get_task(task_id)
    folder = workdir / EXPORT_FOLDER
    try:
        shown: Result | ReadoutError = parse_bundle(
            displayed_bundle(notebook.cells[-1].get("outputs", [])), task
        )
    except ReadoutError as error:
        shown = error
    try:
        record: ExportRecord | ReadoutError = read_record(folder, task)
    except ReadoutError as error:
        record = error
    shape = record.input_shape if isinstance(record, ExportRecord) else None
    measured = measure_export(task.id, folder, shape, grading_secret(limits.secret))
    result = decide(task, shown, record, measured)
    result.tampering += forged_outputs(notebook.cells[1].get("outputs", []))
    return result


def _failure(
    reason: str,
    timeout: float,
    peak_bytes: int,
    limits: Limits,
    process: subprocess.Popen[bytes] | None,
) -> tuple[str, str]:
    """The status and message of a submission the kernel did not survive."""
    if reason == TIMEOUT:
        return TIMEOUT, (
            f"stopped after {timeout:g} s: the code did not finish in time (endless loop?)"
        )
    if reason == MEMORY:
        return MEMORY, (
            f"stopped at {peak_bytes / 2**20:.0f} MB: the kernel used more than "
            f"{limits.memory_mb} MB of memory (a tensor or list that keeps growing?)"
        )
    return KERNEL_DIED, f"the kernel died while running the code ({_exit_reason(process)})"


def _exit_reason(process: subprocess.Popen[bytes] | None) -> str:
    code = process.returncode if process is not None else None
    if code is None:
        return "exit status unknown"
    if code >= 0:
        return f"exit code {code}: os._exit() or a crash in native code?"
    try:
        name = signal.Signals(-code).name
    except ValueError:
        name = f"signal {-code}"
    explanation = {
        "SIGSEGV": "a segmentation fault in native code",
        "SIGABRT": "aborted by native code",
        "SIGKILL": "killed from outside, perhaps by the system when memory ran out",
        "SIGBUS": "a bus error in native code",
    }.get(name, "killed by a signal")
    return f"{name}: {explanation}"


def forged_outputs(outputs: list[dict[str, Any]]) -> list[str]:
    """Result bundles and panels in the graded cell that the magic did not display.

    The magic displays exactly one output, after the learner's code has finished,
    so it is the last output carrying the result MIME type; anything before is forged.
    """
    displays = [output.get("data", {}) for output in outputs]
    genuine = max((i for i, data in enumerate(displays) if RESULT_MIME in data), default=None)
    forged_bundles = sum(RESULT_MIME in data for data in displays) - (genuine is not None)
    forged_panels = sum(
        "whipnb-panel" in str(data.get("text/html", ""))
        for i, data in enumerate(displays)
        if i != genuine and RESULT_MIME not in data
    )
    findings = []
    if forged_bundles:
        findings.append(f"the cell displayed {forged_bundles} whipnb result bundle(s) of its own")
    if forged_panels:
        findings.append(f"the cell displayed {forged_panels} imitation score panel(s)")
    return findings


def stored_claims(path: Path, graded_score: float) -> list[str]:
    """A submission's stored outputs claiming more than the code earns (they are ignored)."""
    try:
        notebook = nbformat.read(path, as_version=nbformat.NO_CONVERT)
        claims = [
            float(output["data"][RESULT_MIME]["score"])
            for cell in notebook.get("cells", [])
            for output in cell.get("outputs", [])
            if isinstance(output.get("data", {}).get(RESULT_MIME), dict)
        ]
    except Exception:  # unreadable claims prove nothing either way
        return []
    best = max(claims, default=None)
    if best is None or best <= graded_score + 0.05:
        return []
    return [
        f"stored outputs in the submitted notebook claim a score of {best:.3f}; "
        f"they were ignored and the code scores {graded_score:.3f}"
    ]


def kernel_environment(threads: int | None = None) -> dict[str, str]:
    """The grading kernel's environment: headless, no GUI backend, string hashing fixed
    (the same submission iterates sets in the same order on every run), and with
    ``threads`` set, numeric libraries limited so parallel kernels do not oversubscribe."""
    env = {name: value for name, value in os.environ.items() if name != SECRET_ENV}
    env[HEADLESS_ENV] = "1"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONHASHSEED"] = "0"
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env
