"""Grading code strings exactly as ``whipnb grade`` grades them, on warm kernels.

A submission (``submit_fix``, a completion to reward) becomes a graded cell and
goes through the headless pipeline's own steps (:func:`~whipnb.headless.pipeline.run_steps`
over :data:`~whipnb.headless.pipeline.STEPS`): a fresh kernel per submission in the
bubblewrap sandbox, the grader's own notebook around the code, the result read
only from the grader's read-out cell, the same limits and the same checks after.
So the reward is the score ``whipnb grade`` gives a notebook holding that code.

What makes it fast is what makes ``whipnb grade`` fast: kernels booted ahead of
need (:class:`~whipnb.headless.kernels.KernelPool`, whipnb and torch already
imported), and ``jobs`` gradings at once.  The pool here lives as long as the
grader, so kernels for the next batch boot while an agent is still thinking.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import queue
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager

from whipnb.core.result import KERNEL_DIED, Result, failure_result
from whipnb.headless.kernels import GradingKernel, KernelSetup, default_ahead, start_kernel
from whipnb.headless.limits import Limits, available_cpus
from whipnb.headless.pipeline import Grading, kernel_setup, run_steps
from whipnb.headless.sandbox import BWRAP, unavailable
from whipnb.headless.submissions import GRADED_CELL, GradedCell, Submission
from whipnb.tasks import UnknownTaskError, get_task


class WarmKernels:
    """Keeps ``ahead`` grading kernels booting or ready for as long as it lives.

    Like :class:`~whipnb.headless.kernels.KernelPool` (same boot, same warm-up, one
    fresh kernel per submission), but for an open-ended stream of submissions: a
    batch's pool knows how many are to come, a server's and a trainer's do not.  So
    there is always a kernel booting, and :meth:`close` must not wait for it: it kills
    the booting processes and lets their boot threads end on their own.

    Kernels boot on ``ahead`` long-lived daemon threads: bubblewrap's
    ``--die-with-parent`` kills a sandbox when the *thread* that started it ends, so a
    kernel must be started by a thread that outlives it.
    """

    def __init__(self, ahead: int, setup: KernelSetup) -> None:
        self.ahead = ahead
        self._setup = setup
        self._waiting: deque[Future[GradingKernel]] = deque()
        self._booting: set[AsyncKernelManager] = set()
        self._requests: queue.SimpleQueue[Future[GradingKernel] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        for number in range(ahead):
            name = f"whipnb-warm-kernel-{number}"
            threading.Thread(target=self._booter, name=name, daemon=True).start()
        with self._lock:
            self._fill()

    def _fill(self) -> None:
        while not self._closed and len(self._waiting) < self.ahead:
            future: Future[GradingKernel] = Future()
            self._waiting.append(future)
            self._requests.put(future)

    def _booter(self) -> None:
        while (future := self._requests.get()) is not None:
            self._boot(future)

    def _boot(self, future: Future[GradingKernel]) -> None:
        if self._closed:
            future.set_exception(RuntimeError("closed"))
            return
        try:
            kernel = start_kernel(self._setup, self._booting)
        except BaseException as error:  # reported by take() as "no kernel"
            future.set_exception(error)
            return
        with self._lock:
            closed = self._closed
        if closed:
            kernel.discard()
            future.set_exception(RuntimeError("closed"))
        else:
            future.set_result(kernel)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the kernels now booting are ready (or failed): a trainer or a
        benchmark starts timing with its pool warm."""
        with self._lock:
            waiting = list(self._waiting)
        concurrent.futures.wait(waiting, timeout=timeout)

    def take(self) -> GradingKernel | None:
        """The oldest kernel, waiting for its boot if need be; None if its boot failed
        or the pool is closed (the pipeline then starts a kernel itself)."""
        with self._lock:
            future = self._waiting.popleft() if self._waiting and not self._closed else None
            self._fill()
        if future is None:
            return None
        try:
            kernel = future.result()
        except Exception:
            return None
        if not kernel.alive():
            kernel.discard()
            return None
        return kernel

    def close(self) -> None:
        with self._lock:
            self._closed = True
            waiting = list(self._waiting)
            self._waiting.clear()
            for manager in list(self._booting):
                process = getattr(manager.provisioner, "process", None)
                if process is not None:
                    with contextlib.suppress(OSError):
                        process.kill()
        for future in waiting:
            if future.done() and future.exception() is None:
                future.result().discard()
        for _ in range(self.ahead):
            self._requests.put(None)


class Grader:
    """Grades ``(task_id, code)`` pairs, ``jobs`` at a time, on kernels booted ahead.

    Thread-safe: episodes and reward calls may grade from many threads at once; at
    most ``jobs`` kernels grade at any moment.  Close it (or use it as a context
    manager) to stop the kernels still waiting.
    """

    def __init__(
        self,
        jobs: int | None = None,
        kernels_ahead: int | None = None,
        limits: Limits | None = None,
        sandbox: str = BWRAP,
    ) -> None:
        if sandbox == BWRAP and (reason := unavailable()) is not None:
            raise RuntimeError(f"cannot sandbox submissions: {reason}")
        self.jobs = jobs or available_cpus()
        self.sandbox = sandbox
        # One thread per kernel when kernels share the CPUs, as `whipnb grade --jobs N`.
        self.limits = limits or Limits(threads=1 if self.jobs > 1 else None)
        self.setup = kernel_setup(self.limits.threads, sandbox)
        ahead = default_ahead(self.jobs) if kernels_ahead is None else kernels_ahead
        self._kernels = WarmKernels(ahead, self.setup) if ahead > 0 else None
        self._workers = ThreadPoolExecutor(self.jobs, thread_name_prefix="whipnb-reward")
        self._closed = threading.Event()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout: float | None = None) -> None:
        """Block until the kernels booted ahead are ready (see :meth:`WarmKernels.wait_ready`)."""
        if self._kernels is not None:
            self._kernels.wait_ready(timeout)

    def grade(self, task_id: str, code: str | None) -> Result:
        """One submission's result; never raises for the code."""
        return self._workers.submit(self._grade_one, task_id, code).result()

    def grade_many(self, submissions: Sequence[tuple[str, str | None]]) -> list[Result]:
        """Results in the order given, ``jobs`` graded at once."""
        futures = [self._workers.submit(self._grade_one, *pair) for pair in submissions]
        return [future.result() for future in futures]

    def _grade_one(self, task_id: str, code: str | None) -> Result:
        if self._closed.is_set():
            return failure_result(str(task_id), KERNEL_DIED, "the grader was closed")
        graded = submission(str(task_id).strip(), code)
        gradable = graded.cell is not None and self._kernels is not None
        kernel = self._kernels.take() if gradable else None
        try:
            return run_steps(Grading(graded, self.setup, self.limits, None, kernel))
        except Exception as error:  # the grader failed, not the submission
            message = f"the grader could not run this code ({type(error).__name__}: {error})"
            return failure_result(graded.task, KERNEL_DIED, message)

    def close(self) -> None:
        self._closed.set()
        if self._kernels is not None:
            self._kernels.close()
        self._workers.shutdown(wait=True, cancel_futures=True)


def submission(task_id: str, code: str | None) -> Submission:
    """The code as the submission a notebook holding it would be (no file, no learner):
    an unknown task or no code is ``invalid``, as ``whipnb grade`` records such a notebook."""
    path = Path(f"<{task_id} code>")
    try:
        get_task(task_id)
    except UnknownTaskError as error:
        return Submission(path, "agent", "", task_id, problem=str(error))
    body = cell_body(code or "")
    if not body.strip():
        problem = "no code to grade (no fenced Python block?)"
        return Submission(path, "agent", "", task_id, problem=problem)
    return Submission(path, "agent", "", task_id, GradedCell(task_id, body))


def cell_body(code: str) -> str:
    """The graded cell's body: the code, without a ``%%whip_grade`` line of its own
    (``whipnb grade`` reads a notebook's graded cell the same way)."""
    match = GRADED_CELL.match(code)
    return code[match.end() :] if match else code
