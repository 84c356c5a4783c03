"""Grading code strings exactly as ``whipnb grade`` grades them, on warm kernels.

A submission (``submit_fix``, a completion to reward) becomes a graded cell and
goes through the headless pipeline's own :func:`~whipnb.headless.pipeline.grade_cell`:
a fresh kernel per submission, the grader's own notebook around the code, the
result read only from the grader's read-out cell, the same limits.  So the
reward is the score ``whipnb grade`` gives a notebook holding that code.

What makes it fast is what makes ``whipnb grade`` fast: kernels booted ahead of
need (:class:`~whipnb.headless.kernels.KernelPool`, whipnb and torch already
imported), and ``jobs`` gradings at once.  The pool here lives as long as the
grader, so kernels for the next batch boot while an agent is still thinking.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from whipnb.core.result import INVALID, KERNEL_DIED, Result, failure_result
from whipnb.headless.kernels import KernelPool, default_ahead
from whipnb.headless.limits import Limits, available_cpus
from whipnb.headless.pipeline import KERNEL_ARGUMENTS, grade_cell, kernel_environment
from whipnb.headless.submissions import GRADED_CELL, GradedCell
from whipnb.tasks import UnknownTaskError, get_task


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
    ) -> None:
        self.jobs = jobs or available_cpus()
        # One thread per kernel when kernels share the CPUs, as `whipnb grade --jobs N`.
        self.limits = limits or Limits(threads=1 if self.jobs > 1 else None)
        ahead = default_ahead(self.jobs) if kernels_ahead is None else kernels_ahead
        self._kernels = (
            KernelPool(
                ahead, sys.maxsize, KERNEL_ARGUMENTS, kernel_environment(self.limits.threads)
            )
            if ahead > 0
            else None
        )
        self._workers = ThreadPoolExecutor(self.jobs, thread_name_prefix="whipnb-reward")
        self._closed = threading.Event()

    def __enter__(self) -> Grader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def grade(self, task_id: str, code: str | None) -> Result:
        """One submission's result; never raises for the code."""
        return self._workers.submit(self._grade_one, task_id, code).result()

    def grade_many(self, submissions: Sequence[tuple[str, str | None]]) -> list[Result]:
        """Results in the order given, ``jobs`` graded at once."""
        futures = [self._workers.submit(self._grade_one, *pair) for pair in submissions]
        return [future.result() for future in futures]

    def _grade_one(self, task_id: str, code: str | None) -> Result:
        task_id = str(task_id).strip()
        try:
            get_task(task_id)
        except UnknownTaskError as error:
            return failure_result(task_id, INVALID, str(error))
        if code is None or not code.strip():
            return failure_result(task_id, INVALID, "no code to grade (no fenced Python block?)")
        if self._closed.is_set():
            return failure_result(task_id, KERNEL_DIED, "the grader was closed")
        kernel = self._kernels.take() if self._kernels is not None else None
        try:
            return grade_cell(GradedCell(task_id, cell_body(code)), self.limits, None, kernel)
        except Exception as error:  # the grader failed, not the submission
            message = f"the grader could not run this code ({type(error).__name__}: {error})"
            return failure_result(task_id, KERNEL_DIED, message)

    def close(self) -> None:
        self._closed.set()
        if self._kernels is not None:
            self._kernels.close()
        self._workers.shutdown(wait=True, cancel_futures=True)


def cell_body(code: str) -> str:
    """The graded cell's body: the code, without a ``%%whip_grade`` line of its own
    (``whipnb grade`` reads a notebook's graded cell the same way)."""
    match = GRADED_CELL.match(code)
    return code[match.end() :] if match else code
