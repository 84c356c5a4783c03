"""Grading kernels started ahead of need, so that a batch does not wait for one to boot.

A grading kernel takes seconds before a submission can run in it: the process
starts, ipykernel loads, the grading extension imports whipnb and torch; the
first grading then imports whipnb's magic and tasks and torch's optimizer
machinery (``torch._dynamo``, on the first ``optimizer.step()``).  A
:class:`KernelPool` does all of that for the next submissions while the
current ones are being graded (``docs/PERFORMANCE.md`` has the figures).

Each kernel is still fresh: a new process, in a new empty working folder, with
the grader's environment and arguments, that has run nothing but those imports
(silently, binding no name in the namespace the learner's code will run in).  It serves one
submission and is discarded; nothing carries over between submissions.
"""

from __future__ import annotations

import contextlib
import importlib
import subprocess
import tempfile
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from whipnb.headless.limits import SETUP_S, available_cpus
from whipnb.tasks import all_tasks

#: Run silently in a kernel booted ahead of need: :func:`warm_up`, binding no name in
#: the learner's namespace (code that uses ``torch`` without importing it must fail
#: there as it does in a kernel started for it).
WARM_UP = '__import__("whipnb.headless.kernels", fromlist=["warm_up"]).warm_up()'
#: What nbclient adds to a kernel it starts itself (its default ``ipython_hist_file``).
HISTORY_ARGUMENT = "--HistoryManager.hist_file=:memory:"


def warm_up() -> None:
    """The imports every grading pays on first use, done before the submission is known."""
    for module in ("torch._dynamo", "whipnb.notebook.magic"):
        importlib.import_module(module)
    for task in all_tasks().values():
        task.grader  # noqa: B018 - imports the task's grading code (and its evidence modules)


def default_ahead(jobs: int) -> int:
    """As many kernels ahead as ``jobs``, and up to twice that while CPUs are spare: a
    boot often takes longer than a grading, and spare CPUs boot the next kernels
    meanwhile; once every CPU grades, more boots only slow the gradings down."""
    return max(jobs, min(2 * jobs, available_cpus()))


@dataclass
class StartedKernel:
    """A booted, warmed-up grading kernel in its own empty working folder."""

    manager: AsyncKernelManager
    workdir: tempfile.TemporaryDirectory[str]

    def alive(self) -> bool:
        return bool(run_sync(self.manager.is_alive)())

    def discard(self) -> None:
        """Shut the kernel down at once (if it still runs) and remove its folder."""
        with contextlib.suppress(Exception):  # already gone is fine
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)
        self.workdir.cleanup()


def start_kernel(
    arguments: list[str], env: dict[str, str], booting: set[AsyncKernelManager] | None = None
) -> StartedKernel:
    """Start a grading kernel the way nbclient would (``arguments`` and ``env`` as the
    grader gives them, output discarded) and run :data:`WARM_UP` in it."""
    workdir = tempfile.TemporaryDirectory(prefix="whipnb-")
    manager = AsyncKernelManager(kernel_name="python3")
    if booting is not None:
        booting.add(manager)
    kernel = StartedKernel(manager, workdir)
    try:
        run_sync(_boot)(manager, [*arguments, HISTORY_ARGUMENT], env, workdir.name)
    except BaseException:
        kernel.discard()
        raise
    finally:
        if booting is not None:
            booting.discard(manager)
    return kernel


async def _boot(manager: AsyncKernelManager, arguments: list[str], env: dict, cwd: str) -> None:
    await manager.start_kernel(
        extra_arguments=arguments,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = manager.client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=SETUP_S)
        await client.execute_interactive(WARM_UP, silent=True, store_history=False, timeout=SETUP_S)
    finally:
        client.stop_channels()


class KernelPool:
    """Keeps up to ``ahead`` kernels booting or ready beyond those in use, never more
    than the submissions still to come; :meth:`take` hands one out."""

    def __init__(self, ahead: int, demand: int, arguments: list[str], env: dict[str, str]) -> None:
        self.ahead = ahead
        self._demand = demand
        self._arguments = arguments
        self._env = env
        self._waiting: deque[Future[StartedKernel]] = deque()
        self._booting: set[AsyncKernelManager] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._starter = ThreadPoolExecutor(max(1, ahead), thread_name_prefix="whipnb-kernel")
        self._fill()

    def __enter__(self) -> KernelPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fill(self) -> None:
        with self._lock:
            while not self._closed and len(self._waiting) < min(self.ahead, self._demand):
                future = self._starter.submit(
                    start_kernel, self._arguments, self._env, self._booting
                )
                self._waiting.append(future)

    def take(self) -> StartedKernel | None:
        """The next kernel, waiting for its boot if need be; ``None`` if the pool has
        none to give (closed, or its boot failed): the caller starts one itself, so any
        real problem is reported the usual way."""
        with self._lock:
            self._demand -= 1
            future = self._waiting.popleft() if self._waiting and not self._closed else None
        self._fill()
        if future is None:
            return None
        try:
            kernel = future.result()
        except Exception:
            return None
        if self._closed or not kernel.alive():
            kernel.discard()
            return None
        return kernel

    def close(self) -> None:
        """Start nothing more; stop kernels still booting and discard those not taken."""
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
            future.cancel()
        self._starter.shutdown(wait=True)
        for future in waiting:
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().discard()
