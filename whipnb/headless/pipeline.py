"""Headless grading of a submission: one ordered list of steps, :data:`STEPS`.

The submitted notebook is data, never truth: its stored outputs are ignored and
the file is only read (once, by :mod:`whipnb.headless.submissions`).  The grader
builds a notebook of its own (load the extension, run the body under
``%%whip_grade``, read the result out), executes it in a fresh kernel (in the
sandbox, :mod:`whipnb.headless.sandbox`) and takes the result only from the
read-out cell it appended itself.  Then the checks that need no kernel run on
the result: forged displays, stored outputs that claim more than the code
earns, a copy of the shipped reference solution.

As nbgrader lists its preprocessors, every grading runs the same list of steps
(:data:`STEPS`), each a small function of the :class:`Grading` it passes along:
``whipnb grade`` (through :mod:`whipnb.headless.batch`), :func:`grade_notebook`
(the Python API for one file) and the tests all go through :func:`run_steps`.
"""

from __future__ import annotations

import builtins
import difflib
import io
import keyword
import os
import signal
import subprocess
import threading
import time
import tokenize
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

from whipnb.core.result import (
    GRADED,
    INVALID,
    KERNEL_DIED,
    MEMORY,
    RESULT_MIME,
    TIMEOUT,
    Result,
    failure_result,
)
from whipnb.headless.kernels import GradingKernel, KernelSetup
from whipnb.headless.limits import STOPPED, KernelWatch, Limits
from whipnb.headless.sandbox import BWRAP
from whipnb.headless.submissions import (  # reading submissions lives there
    GRADED_CELL,
    GradedCell,
    Submission,
    find_graded_cell,  # noqa: F401  (re-exported for callers of the earlier layout)
    load_submission,
)
from whipnb.notebook.magic import HEADLESS_ENV
from whipnb.tasks import UnknownTaskError, get_task

#: Extra seconds nbclient waits past the watch's deadline: the watch is the
#: limit; nbclient's own cell timeout only backs it up.
BACKUP_TIMEOUT_S = 30
#: Started with every grading kernel: exit() and quit() must not end it (see the module).
KERNEL_ARGUMENTS = ["--IPKernelApp.extensions=whipnb.notebook.grading_kernel"]
#: Numeric libraries read these at import: one thread each when kernels share the CPUs.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
READ_OUT = "from whipnb.notebook.magic import display_last_result\ndisplay_last_result()"
#: Output the grader keeps of one submission's own cells (what it prints and displays):
#: beyond it, further outputs are dropped, so printing gigabytes grows no grader.
MAX_KEPT_OUTPUT = 4 * 2**20
#: The read-out cell's one result bundle may be this large.
MAX_READ_OUT = 16 * 2**20
#: bwrap's exit status when its command was killed by signal N: SIGNALLED + N.
SIGNALLED = 128
#: Stored outputs may claim this much above the graded score before it is reported.
CLAIM_MARGIN = 0.05
#: Normalised-token similarity to the shipped reference solution from which a
#: submission is reported as a copy of it: 1.0, the same program token for token
#: (every shipped solution is its buggy script plus a few changed tokens, so the
#: buggy script itself is about 0.99 alike: anything below identity proves nothing).
COPY_SIMILARITY = 1.0
#: Words in a submission that reach for the reference solution shipped in the package.
SOLUTION_REFERENCES = ("solution.py", "solution_source", ".solution")


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


class CappedClient(NotebookClient):
    """nbclient keeping at most :data:`MAX_KEPT_OUTPUT` of the learner's cells' outputs,
    and of the read-out cell (the last) only an output of at most :data:`MAX_READ_OUT`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept_bytes = 0

    def output(
        self,
        outs: list[nbformat.NotebookNode],
        msg: dict[str, Any],
        display_id: str | None,
        cell_index: int,
    ) -> nbformat.NotebookNode | None:
        size = _content_size(msg.get("content", {}))
        if cell_index == len(self.nb.cells) - 1:
            if size > MAX_READ_OUT:
                return None
        else:
            self.kept_bytes += size
            if self.kept_bytes > MAX_KEPT_OUTPUT:
                return None
        return super().output(outs, msg, display_id, cell_index)


def _content_size(content: dict[str, Any]) -> int:
    data = content.get("data")
    parts = data.values() if isinstance(data, dict) else [content.get("text", "")]
    return sum(len(part) if isinstance(part, str) else len(repr(part)) for part in parts)


class GradingStopped(RuntimeError):
    """The batch was stopped (Ctrl-C) while this submission ran: no grade to record."""


@dataclass
class Grading:
    """One submission on its way through :data:`STEPS`: what it is, how it runs, and
    what has been found so far (``result`` is set once the submission is scored or
    has failed)."""

    submission: Submission
    setup: KernelSetup
    limits: Limits = field(default_factory=Limits)
    stop: threading.Event | None = None
    #: A kernel booted ahead of need (:mod:`whipnb.headless.kernels`); else one is started.
    kernel: GradingKernel | None = None
    notebook: nbformat.NotebookNode | None = None
    result: Result | None = None
    started: float = field(default_factory=time.perf_counter)

    @property
    def cell(self) -> GradedCell:
        assert self.submission.cell is not None, "an invalid submission has no cell to run"
        return self.submission.cell

    def fail(self, status: str, message: str) -> None:
        task = self.submission.task
        self.result = failure_result(task, status, message, time.perf_counter() - self.started)


#: When a step runs: until the submission has a result, or on a graded result only.
PENDING = "pending"
ON_GRADED = "graded"


@dataclass(frozen=True)
class Step:
    """One stage of every grading."""

    name: str
    run: Callable[[Grading], None]
    when: str = PENDING

    def applies(self, grading: Grading) -> bool:
        if self.when == PENDING:
            return grading.result is None
        return grading.result is not None and grading.result.status == GRADED


def refuse_invalid(grading: Grading) -> None:
    """An unusable notebook (unreadable, no graded cell, unknown task...) gets no kernel."""
    if grading.submission.cell is None:
        grading.fail(INVALID, grading.submission.problem)


def build_notebook(grading: Grading) -> None:
    grading.notebook = grading_notebook(grading.cell)


def execute_in_kernel(grading: Grading) -> None:
    """Run the grader's notebook in a fresh (sandboxed) kernel under the limits.

    The kernel's process tree is watched (:class:`~whipnb.headless.limits.KernelWatch`):
    past the wall-clock or memory limit it is killed and the result says
    ``timeout`` or ``memory``; a kernel that dies by itself is ``kernel_died``.
    The clock starts with the graded cell, so the grader's own imports in a
    fresh kernel do not eat into the submission's time.  The kernel serves this
    submission only and is discarded with its folder and uid afterwards.
    """
    limits, cell = grading.limits, grading.cell
    timeout = limits.timeout_s if limits.timeout_s is not None else get_task(cell.task).timeout_s
    kernel = grading.kernel or grading.setup.new_kernel()
    grading.kernel = None
    process: dict[str, subprocess.Popen[bytes]] = {}
    try:
        with KernelWatch(timeout, limits.memory_mb, grading.stop) as watch:

            def kernel_started(**_: Any) -> None:
                provisioner = client.km.provisioner
                process["kernel"] = provisioner.process
                watch.start(provisioner.pid)

            def cell_starts(cell: nbformat.NotebookNode, **_: Any) -> None:
                if GRADED_CELL.match(cell.source):
                    watch.start_clock()

            client = CappedClient(
                grading.notebook,
                km=kernel.manager,
                timeout=timeout + BACKUP_TIMEOUT_S,
                kernel_name="python3",
                allow_errors=True,
                store_widget_state=False,
                record_timing=False,
                shutdown_kernel="immediate",
                extra_arguments=grading.setup.arguments,
                on_notebook_start=kernel_started,
                on_cell_execute=cell_starts,
            )
            client.owns_km = True  # a started kernel is shut down after, like nbclient's own
            try:
                client.execute(cwd=str(kernel.workdir), **grading.setup.launch())
                died = None
            except CellTimeoutError:
                died = TIMEOUT
            except DeadKernelError:
                died = KERNEL_DIED
    finally:
        kernel.discard()
    if died is None:
        return
    if watch.reason == STOPPED:  # the watch's reason, if it killed the kernel, says why
        raise GradingStopped(f"stopped while grading a {cell.task} submission")
    reason = watch.reason or died
    sandboxed = grading.setup.sandbox == BWRAP
    kernel_process = process.get("kernel")
    grading.fail(*_failure(reason, timeout, watch.peak_bytes, limits, kernel_process, sandboxed))


def read_out(grading: Grading) -> None:
    """The result from the grader's own read-out cell, never from anything else."""
    assert grading.notebook is not None
    result = read_result(grading.notebook)
    if result is None:
        message = (
            "the grader's read-out cell produced no usable result (the kernel may have been reset)"
        )
        grading.fail(KERNEL_DIED, message)
        return
    result.duration_s = round(time.perf_counter() - grading.started, 3)
    grading.result = result


def flag_forged_outputs(grading: Grading) -> None:
    """Result bundles or panels the learner's cell displayed itself (see :func:`forged_outputs`)."""
    assert grading.result is not None and grading.notebook is not None
    grading.result.tampering += forged_outputs(grading.notebook.cells[1].get("outputs", []))


def flag_stored_claims(grading: Grading) -> None:
    """Stored outputs of the submitted file claiming more than the code earns (ignored)."""
    assert grading.result is not None
    claimed, graded = grading.submission.stored_score, grading.result.score
    if claimed is not None and claimed > graded + CLAIM_MARGIN:
        grading.result.tampering.append(
            f"stored outputs in the submitted notebook claim a score of {claimed:.3f}; "
            f"they were ignored and the code scores {graded:.3f}"
        )


def flag_reference_copy(grading: Grading) -> None:
    """A submission that is the shipped reference solution, or reaches for it, is reported.

    Two signs, each read by the grader from the submission's source (never run):
    the task's ``solution.py`` token for token (:data:`COPY_SIMILARITY`; comments,
    blank lines, layout and names do not count; a learner whose fix is word for
    word the reference's gets the same report: an instructor judges), and code
    that names the solution file or the task's ``solution_source``.  The findings
    go to the record's ``copying`` field, not ``tampering``: they change no score.
    Inside the sandbox the shipped solutions read as empty files, so reaching for
    one runs no solution and earns nothing by itself.
    """
    assert grading.result is not None
    grading.result.copying += copy_findings(grading.cell)


#: Every grading, in order.  A step that does not apply to where a grading stands
#: (see :class:`Step`) is skipped.
STEPS: tuple[Step, ...] = (
    Step("refuse invalid notebooks", refuse_invalid),
    Step("build the grader's notebook", build_notebook),
    Step("execute in a fresh sandboxed kernel", execute_in_kernel),
    Step("read the result out", read_out),
    Step("flag forged displays", flag_forged_outputs, ON_GRADED),
    Step("flag stored claims", flag_stored_claims, ON_GRADED),
    Step("flag copies of the reference solution", flag_reference_copy, ON_GRADED),
)


def run_steps(grading: Grading, steps: tuple[Step, ...] = STEPS) -> Result:
    """Take ``grading`` through ``steps``; always a result, never raises for the submission
    (only :class:`GradingStopped` when the batch is being stopped)."""
    try:
        for step in steps:
            if step.applies(grading):
                step.run(grading)
    finally:
        if grading.kernel is not None:  # a kernel booted for an invalid submission
            grading.kernel.discard()
    assert grading.result is not None
    return grading.result


def grade_notebook(
    path: str | Path,
    timeout: float | None = None,
    *,
    limits: Limits | None = None,
    stop: threading.Event | None = None,
    sandbox: str = BWRAP,
) -> Result:
    """Grade one submitted notebook file through :data:`STEPS` (the API for one file).

    ``timeout`` (seconds) overrides the limits' timeout, kept for callers of the
    original signature.  Raises :class:`GradingStopped` only when ``stop`` is set.
    """
    limits = limits or Limits()
    if timeout is not None:
        limits = Limits(timeout, limits.memory_mb, limits.threads)
    setup = kernel_setup(limits.threads, sandbox)
    return run_steps(Grading(load_submission(Path(path)), setup, limits, stop))


def kernel_setup(threads: int | None, sandbox: str = BWRAP) -> KernelSetup:
    """How the kernels of a grading start: the grader's arguments and environment, the sandbox."""
    return KernelSetup(KERNEL_ARGUMENTS, kernel_environment(threads), sandbox)


def _failure(
    reason: str,
    timeout: float,
    peak_bytes: int,
    limits: Limits,
    process: subprocess.Popen[bytes] | None,
    sandboxed: bool = False,
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
    reason = _exit_reason(process, sandboxed)
    return KERNEL_DIED, f"the kernel died while running the code ({reason})"


def _exit_reason(process: subprocess.Popen[bytes] | None, sandboxed: bool = False) -> str:
    code = process.returncode if process is not None else None
    if code is None:
        return "exit status unknown"
    if sandboxed and code > SIGNALLED:  # bwrap exits 128 + N when its command died by signal N
        code = SIGNALLED - code
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


def read_result(notebook: nbformat.NotebookNode) -> Result | None:
    """The result bundle from the grader's own read-out cell (the last one), if any.

    Only the read-out cell counts.  A bundle that is not a well-formed result (a
    kernel whose learner code rewrote it) is no result: ``None``, never a crash.
    """
    bundles = [
        output["data"][RESULT_MIME]
        for output in notebook.cells[-1].get("outputs", [])
        if isinstance(output.get("data", {}).get(RESULT_MIME), dict)
    ]
    if len(bundles) != 1:
        return None
    try:
        return Result.from_bundle(bundles[0])
    except (TypeError, ValueError, KeyError, AttributeError):
        return None


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


def copy_findings(cell: GradedCell) -> list[str]:
    """What in ``cell`` copies or reaches for the task's shipped reference solution."""
    findings = []
    named = [word for word in SOLUTION_REFERENCES if word in cell.body]
    if named:
        findings.append(
            f"the code reaches for whipnb's shipped reference solution ({', '.join(named)}); "
            "inside the sandbox those files are empty"
        )
    try:
        reference = get_task(cell.task).solution_source
    except (UnknownTaskError, OSError, AttributeError):
        return findings
    similarity = token_similarity(cell.body, reference)
    if similarity >= COPY_SIMILARITY:
        findings.append(
            f"the code is the shipped reference solution (normalised-token similarity "
            f"{similarity:.2f}): copied, or a fix word for word the reference's"
        )
    return findings


def token_similarity(source: str, reference: str) -> float:
    """How alike two programs are, 0..1, on their :func:`normalised_tokens`."""
    ours, theirs = normalised_tokens(source), normalised_tokens(reference)
    if not ours or not theirs:
        return 0.0
    return difflib.SequenceMatcher(None, ours, theirs, autojunk=False).ratio()


def normalised_tokens(source: str) -> list[str]:
    """The program's tokens without comments, layout or the names the author chose
    (every identifier that is not a keyword, builtin or attribute becomes ``NAME``).
    Code that does not tokenise gives what was read up to there."""
    tokens: list[str] = []
    previous = ""
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type in SKIPPED_TOKENS:
                continue
            text = token.string
            if token.type == tokenize.NAME and previous != "." and not _known_name(text):
                text = "NAME"
            tokens.append(text)
            previous = token.string
    except (tokenize.TokenError, IndentationError, SyntaxError):
        pass
    return tokens


SKIPPED_TOKENS = frozenset(
    {
        tokenize.COMMENT,
        tokenize.NL,
        tokenize.NEWLINE,
        tokenize.INDENT,
        tokenize.DEDENT,
        tokenize.ENCODING,
        tokenize.ENDMARKER,
    }
)


def _known_name(text: str) -> bool:
    return keyword.iskeyword(text) or hasattr(builtins, text) or text in {"torch", "nn", "np"}


def kernel_environment(threads: int | None = None) -> dict[str, str]:
    """The grading kernel's environment: headless, no GUI backend, string hashing fixed
    (the same submission iterates sets in the same order on every run), and with
    ``threads`` set, numeric libraries limited so parallel kernels do not oversubscribe."""
    env = dict(os.environ)
    env[HEADLESS_ENV] = "1"
    env["MPLBACKEND"] = "Agg"
    env["PYTHONHASHSEED"] = "0"
    if threads is not None:
        env.update(dict.fromkeys(THREAD_VARIABLES, str(threads)))
    return env
