"""Grading a class: N fresh kernels at a time, nothing lost, nothing left running.

Submissions the gradebook already holds (same learner, same content, same
grader) are not graded again; unusable ones are recorded as ``invalid``
without a kernel; the rest go to a pool of N workers, each driving one kernel
under the per-submission limits (:mod:`whipnb.headless.limits`).  Every result is
committed to the gradebook from the calling thread the moment it arrives.

On Ctrl-C the batch sets a stop flag: each running kernel's watch kills its
process tree at once, queued submissions are dropped, results that finished
meanwhile are still committed, and :class:`BatchInterrupted` says how much was
kept.  Re-running the same command then grades only what is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from whipnb.core.result import KERNEL_DIED, Result, failure_result
from whipnb.gradebook.store import Gradebook, grading_record, now
from whipnb.headless.kernels import KernelPool, KernelSetup, default_ahead
from whipnb.headless.limits import Limits
from whipnb.headless.pipeline import Grading, GradingStopped, kernel_setup, run_steps
from whipnb.headless.sandbox import BWRAP
from whipnb.headless.submissions import Submission
from whipnb.tasks import UnknownTaskError, get_task


@dataclass(frozen=True)
class Outcome:
    """What the batch concluded about one submission."""

    submission: Submission
    result: Result
    #: Taken from the gradebook: this exact file was graded before.
    reused: bool = False
    #: False only when the grader itself failed (not a grading of the submission,
    #: so it is not recorded and the next run tries again).
    stored: bool = True
    #: The sandbox its code ran under (``bwrap`` or ``none``; see :mod:`whipnb.headless.sandbox`).
    sandbox: str = BWRAP

    def record(self) -> dict[str, Any]:
        """Contract 3's record, plus the learner, the content hash and the sandbox."""
        return grading_record(
            self.result,
            self.submission.path,
            learner=self.submission.learner,
            content_hash=self.submission.content_hash,
            reused=self.reused,
            sandbox=self.sandbox,
        )


class BatchInterrupted(KeyboardInterrupt):
    """The batch was stopped; ``finished`` submissions have their record."""

    def __init__(self, finished: int, total: int) -> None:
        super().__init__(f"stopped after {finished} of {total} submissions")
        self.finished = finished
        self.total = total


def grade_submission(
    submission: Submission,
    limits: Limits,
    setup: KernelSetup,
    stop: threading.Event | None = None,
    kernels: KernelPool | None = None,
) -> tuple[Result, str]:
    """One submission through the pipeline's steps in one fresh kernel, and when it
    started (a worker's job; a plain function so that a distributed executor can ship
    it).  With ``kernels`` the kernel is one started ahead of need."""
    kernel = kernels.take() if kernels is not None else None
    if stop is not None and stop.is_set():  # picked from the queue as the batch stops
        if kernel is not None:
            kernel.discard()
        raise GradingStopped("the batch was stopped before this submission started")
    started_at = now()
    grading = Grading(submission, setup, limits, stop, kernel)
    return _in_fresh_context(run_steps, grading), started_at


def _in_fresh_context(function: Callable[[Grading], Result], grading: Grading) -> Result:
    """Run ``function`` in an empty context.  jupyter_client's synchronous calls use the
    event loop that jupyter_core keeps in a context variable; a Dask worker runs tasks in
    a copy of its own context, whose loop belongs to another thread ("This event loop is
    already running").  An empty context gets a loop of its own, closed afterwards."""
    context = contextvars.Context()
    try:
        return context.run(function, grading)
    finally:
        for value in context.values():
            if isinstance(value, asyncio.AbstractEventLoop) and not value.is_running():
                value.close()


@dataclass
class Batch:
    gradebook: Gradebook
    limits: Limits
    jobs: int
    #: Grade again even what the gradebook already holds.
    force: bool = False
    #: Where submissions run; default a pool of ``jobs`` threads on this machine.
    #: Executors that cannot share a stop flag (another process) get none.
    executor: Executor | None = None
    #: Kernels booted ahead of need on this machine (default: :func:`default_ahead`;
    #: 0 starts each kernel when its submission comes up).  Not with ``executor``.
    kernels_ahead: int | None = None
    #: The sandbox of every kernel (:data:`~whipnb.headless.sandbox.BWRAP` or ``NONE``).
    sandbox: str = BWRAP

    @property
    def setup(self) -> KernelSetup:
        return kernel_setup(self.limits.threads, self.sandbox)

    def run(
        self,
        submissions: Sequence[Submission],
        on_outcome: Callable[[Outcome], None] = lambda outcome: None,
    ) -> list[Outcome]:
        """Grade ``submissions``; outcomes come back in input order."""
        outcomes: dict[int, Outcome] = {}

        def conclude(index: int, outcome: Outcome) -> None:
            outcomes[index] = outcome
            on_outcome(outcome)

        pending = []
        try:
            for index, submission in enumerate(submissions):
                known = self._known(submission)
                if known is not None:
                    conclude(index, known)
                else:
                    pending.append(index)
            self._grade(submissions, pending, conclude)
        except KeyboardInterrupt:
            raise BatchInterrupted(len(outcomes), len(submissions)) from None
        return [outcomes[index] for index in range(len(submissions))]

    def _known(self, submission: Submission) -> Outcome | None:
        """The outcome of a submission that needs no kernel: already graded, or invalid."""
        if not self.force:
            stored = self.gradebook.reusable(
                submission, *self._limits_of(submission), sandbox=self.sandbox
            )
            if stored is not None:
                return Outcome(submission, stored.result, reused=True, sandbox=stored.sandbox)
        if submission.cell is None:  # the pipeline's first step, without a worker
            started_at = now()
            result = run_steps(Grading(submission, self.setup, self.limits))
            return self._store(submission, result, started_at)
        return None

    def _grade(
        self,
        submissions: Sequence[Submission],
        pending: list[int],
        conclude: Callable[[int, Outcome], None],
    ) -> None:
        stop = threading.Event()
        local = self.executor is None
        pool = self.executor or ThreadPoolExecutor(self.jobs, thread_name_prefix="whipnb-grade")
        kernels = self._kernel_pool(len(pending)) if local else None
        futures: dict[Future[tuple[Result, str]], int] = {}
        setup = self.setup
        try:
            for index in pending:
                args = (submissions[index], self.limits, setup)
                extra = (stop, kernels) if local else ()
                futures[pool.submit(grade_submission, *args, *extra)] = index
            for future in as_completed(futures):
                index = futures.pop(future)
                conclude(index, self._finish(submissions[index], future))
        except KeyboardInterrupt:
            stop.set()
            if kernels is not None:
                kernels.close()
            for future in futures:
                future.cancel()
            if local:
                pool.shutdown(wait=True, cancel_futures=True)
            # Whatever finished while the others were being stopped is kept.
            for future, index in futures.items():
                if future.done() and not future.cancelled() and future.exception() is None:
                    conclude(index, self._finish(submissions[index], future))
            raise
        finally:
            if kernels is not None:
                kernels.close()
            if local:
                pool.shutdown(wait=True, cancel_futures=True)

    def _kernel_pool(self, demand: int) -> KernelPool | None:
        ahead = default_ahead(self.jobs) if self.kernels_ahead is None else self.kernels_ahead
        if ahead <= 0 or demand == 0:
            return None
        return KernelPool(ahead, demand, self.setup)

    def _finish(self, submission: Submission, future: Future[tuple[Result, str]]) -> Outcome:
        try:
            result, started_at = future.result()
        except Exception as error:  # the grader failed, not the submission
            message = f"the grader could not run this notebook ({type(error).__name__}: {error})"
            result = failure_result(submission.task, KERNEL_DIED, message)
            return Outcome(submission, result, stored=False, sandbox=self.sandbox)
        return self._store(submission, result, started_at)

    def _store(self, submission: Submission, result: Result, started_at: str) -> Outcome:
        timeout_s, memory_mb = self._limits_of(submission)
        self.gradebook.add(
            submission,
            result,
            timeout_s=timeout_s,
            memory_mb=memory_mb,
            started_at=started_at,
            sandbox=self.sandbox,
        )
        return Outcome(submission, result, sandbox=self.sandbox)

    def _limits_of(self, submission: Submission) -> tuple[float | None, int]:
        """The limits this submission runs under: a task's own timeout unless overridden."""
        timeout = self.limits.timeout_s
        if timeout is None:
            try:
                timeout = get_task(submission.task).timeout_s
            except UnknownTaskError:
                timeout = None
        return timeout, self.limits.memory_mb


@contextlib.contextmanager
def distributed_executor(address: str) -> Iterator[Executor]:
    """Submissions graded on a Dask distributed cluster instead of local threads.

    Each task runs :func:`grade_submission` on a worker, which starts the
    kernel and watches its limits there; results come back to this process,
    which keeps the gradebook.  On Ctrl-C queued tasks are cancelled; running
    ones end at their own limits on the workers.
    """
    try:
        from distributed import Client
    except ImportError:
        raise SystemExit("--scheduler needs Dask distributed: pip install 'whipnb[dask]'") from None
    with Client(address) as client:
        yield client.get_executor(pure=False)
