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

Every grading kernel, booted ahead or started when its submission comes up, is a
:class:`GradingKernel` made by :meth:`KernelSetup.new_kernel`: with ``sandbox="bwrap"``
(the default) it runs inside :class:`~whipnb.headless.sandbox.Sandbox` under a uid of its
own (:class:`~whipnb.headless.sandbox.UidLease`), and the grader talks to it over ZMQ
``ipc`` sockets in the sandbox's ``channel`` folder (the sandbox has no network).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Awaitable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_client.manager import AsyncKernelManager
from jupyter_core.utils import run_sync

from whipnb.headless.limits import POLL_S, SETUP_S, available_cpus
from whipnb.headless.sandbox import (
    BWRAP,
    NONE,
    SANDBOX_HOME,
    Sandbox,
    SandboxFolder,
    UidLease,
    package_view,
    python_view,
)
from whipnb.notebook.magic import HEADLESS_ENV
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
        try:
            task.grader  # noqa: B018 - imports the task's grading code (and its evidence modules)
        except Exception:  # noqa: BLE001 - a plugin's broken grader fails its own gradings only
            continue


def default_ahead(jobs: int) -> int:
    """As many kernels ahead as ``jobs``, and up to twice that while CPUs are spare: a
    boot often takes longer than a grading, and spare CPUs boot the next kernels
    meanwhile; once every CPU grades, more boots only slow the gradings down."""
    return max(jobs, min(2 * jobs, available_cpus()))


#: Variables of the grader's kernel environment that a sandboxed kernel keeps; the
#: rest (tokens, HOME, paths of the grader's) never reach it.
SANDBOX_KEEPS = (
    HEADLESS_ENV,
    "MPLBACKEND",
    "PYTHONHASHSEED",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
)


def sandbox_environment(env: Mapping[str, str]) -> dict[str, str]:
    """The whole environment of a sandboxed kernel: what grading needs from ``env``, a
    HOME on tmpfs, and the path to whipnb (the package alone, see ``package_view``)."""
    venv_bin = str(Path(sys.executable).parent)
    kept = {name: env[name] for name in SANDBOX_KEEPS if name in env}
    return {
        **kept,
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": SANDBOX_HOME,
        "USER": "learner",
        "LOGNAME": "learner",
        "LANG": "C.UTF-8",
        "TMPDIR": "/tmp",
        "PYTHONPATH": str(package_view().path_entry),
        "PYTHONDONTWRITEBYTECODE": "1",
    }


class SandboxedKernelManager(AsyncKernelManager):
    """A kernel manager whose kernel command runs inside :attr:`sandbox` (if set)."""

    sandbox: Sandbox | None = None

    def format_kernel_cmd(self, extra_arguments: list[str] | None = None) -> list[str]:
        command = super().format_kernel_cmd(extra_arguments)
        if self.sandbox is None:
            return command
        if self.sandbox.uid is not None:  # written by the grader, read by the kernel
            os.chown(self.connection_file, self.sandbox.uid, self.sandbox.uid)
        return self.sandbox.command(command)


@dataclass(frozen=True)
class KernelSetup:
    """How every grading kernel of a batch starts: its arguments, the grader's kernel
    environment (a sandboxed kernel keeps only :data:`SANDBOX_KEEPS` of it), its sandbox."""

    arguments: list[str]
    env: dict[str, str]
    sandbox: str = BWRAP

    def new_kernel(self) -> GradingKernel:
        """A kernel not yet started, in a sandbox folder of its own (under a uid of its own)."""
        lease = UidLease() if self.sandbox == BWRAP else None
        uid = lease.uid if lease is not None else None
        try:
            folder = SandboxFolder(uid)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        manager = SandboxedKernelManager(kernel_name="python3")
        if self.sandbox == BWRAP:
            view = package_view()
            manager.transport = "ipc"
            manager.ip = str(folder.channel / "kernel")
            manager.connection_file = str(folder.channel / "kernel.json")
            manager.sandbox = Sandbox(
                work=folder.work,
                env=sandbox_environment(self.env),
                read_only=(*python_view(), *view.read_only),
                hidden=view.hidden,
                empty=folder.empty,
                writable=(folder.channel,),
                uid=uid,
            )
        return GradingKernel(manager, folder, self.sandbox, lease)

    def launch(self) -> dict[str, Any]:
        """What nbclient or :func:`start_kernel` passes when starting the kernel process."""
        return {"env": self.env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}


@dataclass
class GradingKernel:
    """A grading kernel (booted or not) with its private folder, sandbox and uid."""

    manager: SandboxedKernelManager
    folder: SandboxFolder
    sandbox: str = NONE
    lease: UidLease | None = field(default=None, repr=False)

    @property
    def workdir(self) -> Path:
        """Its working folder, empty until the submission runs."""
        return self.folder.work

    def alive(self) -> bool:
        return bool(run_sync(self.manager.is_alive)())

    def discard(self) -> None:
        """Shut the kernel down at once (if it still runs), remove its folder, free its uid."""
        with contextlib.suppress(Exception):  # already gone is fine
            if self.manager.has_kernel:
                run_sync(self.manager.shutdown_kernel)(now=True)
        self.folder.cleanup()
        if self.lease is not None:
            self.lease.release()


def start_kernel(
    setup: KernelSetup, booting: set[AsyncKernelManager] | None = None
) -> GradingKernel:
    """Start a grading kernel the way nbclient would (``setup``'s arguments and
    environment, output discarded) and run :data:`WARM_UP` in it."""
    kernel = setup.new_kernel()
    manager = kernel.manager
    if booting is not None:
        booting.add(manager)
    try:
        arguments = [*setup.arguments, HISTORY_ARGUMENT]
        run_sync(_boot)(manager, arguments, setup.launch(), str(kernel.workdir))
    except BaseException:
        kernel.discard()
        raise
    finally:
        if booting is not None:
            booting.discard(manager)
    return kernel


async def _boot(
    manager: AsyncKernelManager, arguments: list[str], launch: dict[str, Any], cwd: str
) -> None:
    await manager.start_kernel(extra_arguments=arguments, cwd=cwd, **launch)
    client = manager.client()
    client.start_channels()
    try:
        await _while_alive(manager, client.wait_for_ready(timeout=SETUP_S))
        warm_up = client.execute_interactive(
            WARM_UP, silent=True, store_history=False, timeout=SETUP_S
        )
        await _while_alive(manager, warm_up)
    finally:
        client.stop_channels()


async def _while_alive(manager: AsyncKernelManager, waiting: Awaitable[Any]) -> Any:
    """``waiting``'s result, or an error as soon as the kernel process is gone (a pool
    closing kills kernels still booting: their boots must end then, not at a timeout)."""
    task = asyncio.ensure_future(waiting)
    while True:
        done, _ = await asyncio.wait({task}, timeout=POLL_S)
        if done:
            return task.result()
        if not await manager.is_alive():
            task.cancel()
            raise RuntimeError("the kernel died while booting")


class KernelPool:
    """Keeps up to ``ahead`` kernels booting or ready beyond those in use, never more
    than the submissions still to come; :meth:`take` hands one out."""

    def __init__(self, ahead: int, demand: int, setup: KernelSetup) -> None:
        self.ahead = ahead
        self._demand = demand
        self._setup = setup
        self._waiting: deque[Future[GradingKernel]] = deque()
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
                future = self._starter.submit(start_kernel, self._setup, self._booting)
                self._waiting.append(future)

    def take(self) -> GradingKernel | None:
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
