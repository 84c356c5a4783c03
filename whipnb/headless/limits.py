"""Limits for one grading kernel: wall clock, memory, and a stop request.

A kernel is a separate process (plus whatever processes the learner's code
starts), so limits are enforced from outside: a thread polls the kernel's
process tree with psutil, adds up its resident memory, and kills the whole
tree when the submission runs past its deadline, past its memory limit, or
when the batch is being stopped (Ctrl-C).  It remembers *why* it killed, so
the grader records ``timeout`` or ``memory`` rather than a bare dead kernel.

On the way out it kills every process of the tree still alive, including
children the kernel left behind and daemons that escaped into their own
session, so no grading leaves a process running.
"""

from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from dataclasses import dataclass, field
from types import TracebackType

import psutil

#: How often the process tree is measured: short enough that a fast memory
#: leak overshoots the limit by little, long enough to cost no CPU.
POLL_S = 0.1
#: Time allowed for the grader's own set-up (importing whipnb and torch in the
#: kernel) before the submission's clock starts, on a loaded machine.
SETUP_S = 60.0
DEFAULT_MEMORY_MB = 2048
#: Why a watch killed its kernel.
TIMEOUT = "timeout"
MEMORY = "memory"
STOPPED = "stopped"


@dataclass(frozen=True)
class Limits:
    """What one submission may use.  ``timeout_s=None`` means the task's own budget."""

    timeout_s: float | None = None
    memory_mb: int = DEFAULT_MEMORY_MB
    #: Threads each kernel's numeric libraries may use (None: their default).
    threads: int | None = None
    #: The instructor's secret the held-out data is drawn from outside the kernel
    #: (None: ``WHIPNB_SECRET``, else a random one); never passed to a kernel.
    secret: str | None = field(default=None, repr=False)


class KernelWatch:
    """Watch a kernel's process tree from :meth:`start` until the ``with`` block ends."""

    def __init__(
        self, timeout_s: float, memory_mb: int, stop: threading.Event | None = None
    ) -> None:
        self.timeout_s = timeout_s
        self.memory_bytes = memory_mb * 1024 * 1024
        self.stop = stop or threading.Event()
        #: ``TIMEOUT``, ``MEMORY`` or ``STOPPED`` once the watch killed the kernel.
        self.reason: str | None = None
        self.peak_bytes = 0
        self._kernel: psutil.Process | None = None
        self._seen: dict[int, psutil.Process] = {}
        self._deadline = math.inf
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        """Begin watching the kernel ``pid`` (its set-up gets ``SETUP_S`` on top of the limit)."""
        if not pid:  # psutil.Process(None) would be this very process
            raise ValueError("no kernel process to watch")
        try:
            self._kernel = psutil.Process(pid)
        except psutil.NoSuchProcess:
            return  # died before we looked: the executor reports it
        self._seen[pid] = self._kernel
        self._deadline = time.monotonic() + SETUP_S + self.timeout_s
        self._thread = threading.Thread(target=self._watch, name=f"whipnb-{pid}", daemon=True)
        self._thread.start()

    def start_clock(self) -> None:
        """The submission's own code starts now: it has ``timeout_s`` from here."""
        self._deadline = time.monotonic() + self.timeout_s

    def __enter__(self) -> KernelWatch:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        psutil.wait_procs(self.kill_tree(), timeout=5)

    def _watch(self) -> None:
        while not self._done.wait(POLL_S):
            used = self._tree_memory()
            self.peak_bytes = max(self.peak_bytes, used)
            if used > self.memory_bytes:
                self._stop_kernel(MEMORY)
            elif time.monotonic() > self._deadline:
                self._stop_kernel(TIMEOUT)
            elif self.stop.is_set():
                self._stop_kernel(STOPPED)
            if self.reason is not None:
                return

    def _stop_kernel(self, reason: str) -> None:
        self.reason = reason
        self.kill_tree()

    def _tree(self) -> list[psutil.Process]:
        """The kernel and its descendants now, remembered so that orphans can be found later."""
        if self._kernel is None:
            return []
        try:
            tree = [self._kernel, *self._kernel.children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for process in tree:
            self._seen.setdefault(process.pid, process)
        return tree

    def _tree_memory(self) -> int:
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += process.memory_info().rss
        return total

    def kill_tree(self) -> list[psutil.Process]:
        """Kill the kernel, every descendant seen, and anything left in the kernel's session.

        Returns the processes signalled, without waiting: the kernel is jupyter_client's
        child, and it must be jupyter_client that reaps it (and reads its exit code).
        """
        if self._kernel is None:
            return []
        self._tree()
        victims = list(self._seen.values()) + self._session_members()
        for process in victims:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                process.kill()  # psutil refuses if the pid was reused meanwhile
        return victims

    def _session_members(self) -> list[psutil.Process]:
        """Processes still in the kernel's session (jupyter_client starts each kernel in
        its own), created after the kernel: children re-parented away once it died."""
        kernel = self._kernel
        assert kernel is not None
        members = []
        for process in psutil.process_iter(["create_time"]):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, OSError):
                if (
                    process.pid != os.getpid()
                    and os.getsid(process.pid) == kernel.pid
                    and process.info["create_time"] >= kernel.create_time()
                ):
                    members.append(process)
        return members


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity, not the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
