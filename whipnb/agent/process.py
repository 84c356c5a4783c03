"""One tool call in its own throw-away sandbox: time and memory limits, capped output.

Every tool an agent calls runs code the agent wrote, so it is hostile like a
learner's: it runs in the bubblewrap sandbox grading kernels run in
(:mod:`whipnb.headless.sandbox`: read-only system, a private empty work folder,
no network, its own PID namespace, a uid of its own, a cleared environment),
watched from outside by the same :class:`~whipnb.headless.limits.KernelWatch`
that guards a grading kernel (wall clock, memory of the whole process tree,
nothing left running afterwards).  Its output is drained as it comes and kept
up to a cap, so an endless print neither blocks it nor fills the server's memory.

:class:`ProcessSandbox` is the one place that decides *how* the process is
isolated; the tools only call :meth:`ProcessSandbox.run`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import IO

from whipnb.headless.kernels import sandbox_environment
from whipnb.headless.limits import MEMORY, TIMEOUT, KernelWatch
from whipnb.headless.sandbox import (
    BWRAP,
    Sandbox,
    SandboxFolder,
    UidLease,
    package_view,
    python_view,
    unavailable,
)

#: Bytes of stdout and of stderr kept per tool call (the rest is counted, not kept).
OUTPUT_CAP = 16_384
#: Bytes of the structured result a tool may hand back.
RESULT_CAP = 1_048_576


@dataclass(frozen=True)
class ProcessLimits:
    """What one tool call may use."""

    timeout_s: float = 30.0
    memory_mb: int = 2048
    output_cap: int = OUTPUT_CAP


@dataclass(frozen=True)
class Finished:
    """How a tool process ended and what it wrote."""

    exit_code: int | None
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    #: ``timeout`` or ``memory`` when the watch killed it, else None.
    killed: str | None
    #: What the harness wrote to its result pipe (JSON text), if anything.
    result: str

    @property
    def timed_out(self) -> bool:
        return self.killed == TIMEOUT

    @property
    def out_of_memory(self) -> bool:
        return self.killed == MEMORY


def tool_environment() -> dict[str, str]:
    """A cleared environment: nothing of the server's (no tokens, no HOME), only what
    makes the run reproducible (one thread, fixed hashing) and lets whipnb import
    (the sandboxed kernels' environment, :func:`~whipnb.headless.kernels.sandbox_environment`)."""
    return sandbox_environment(
        {
            "PYTHONHASHSEED": "0",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "MPLBACKEND": "Agg",
        }
    )


def _start_clock(ready: IO[bytes], watch: KernelWatch) -> None:
    if ready.read(1):
        watch.start_clock()


class _Drain(threading.Thread):
    """Reads a pipe to its end, keeping the first ``cap`` bytes."""

    def __init__(self, stream: IO[bytes], cap: int) -> None:
        super().__init__(daemon=True)
        self.stream, self.cap = stream, cap
        self.kept = bytearray()
        self.truncated = False

    def run(self) -> None:
        with self.stream:
            while chunk := self.stream.read(65_536):
                room = self.cap - len(self.kept)
                if len(chunk) > room:
                    self.truncated = True
                self.kept += chunk[: max(room, 0)]

    def text(self) -> str:
        return self.kept.decode("utf-8", errors="replace")


class ProcessSandbox:
    """Runs ``python -m whipnb.agent.harness`` on a request, isolated and limited: in
    bubblewrap (:mod:`whipnb.headless.sandbox`, as grading kernels run) under a uid of
    its own, or with ``sandbox="none"`` as a plain child process with the same cleared
    environment (for machines without bubblewrap, and said so in the docs)."""

    def __init__(self, sandbox: str = BWRAP, python: str = sys.executable) -> None:
        if sandbox == BWRAP and (reason := unavailable()) is not None:
            raise RuntimeError(f"cannot sandbox tool calls: {reason}")
        self.sandbox = sandbox
        self.python = python

    def run(self, request: str, limits: ProcessLimits) -> Finished:
        """Run the harness on ``request`` (JSON) in a fresh empty folder; never raises
        for what the code inside does."""
        with UidLease() if self.sandbox == BWRAP else contextlib.nullcontext() as lease:
            uid = lease.uid if lease is not None else None
            with SandboxFolder(uid, prefix="whipnb-tool-") as folder:
                return self._run_in(folder, uid, request, limits)

    def _run_in(
        self, folder: SandboxFolder, uid: int | None, request: str, limits: ProcessLimits
    ) -> Finished:
        read_result, write_result = os.pipe()
        read_ready, write_ready = os.pipe()
        argv = [self.python, "-s", "-m", "whipnb.agent.harness", str(write_result)]
        argv.append(str(write_ready))
        env = tool_environment()
        if self.sandbox == BWRAP:
            view = package_view()
            argv = Sandbox(
                work=folder.work,
                env=env,
                read_only=(*python_view(), *view.read_only),
                hidden=view.hidden,
                empty=folder.empty,
                uid=uid,
            ).command(argv)
        else:
            env = {**env, "HOME": str(folder.work), "TMPDIR": str(folder.work)}
        try:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=folder.work,
                env=env,
                pass_fds=(write_result, write_ready),
                start_new_session=True,  # the watch kills the whole session
            )
        finally:
            os.close(write_result)
            os.close(write_ready)
        with open(read_ready, "rb") as ready:
            return self._wait(process, os.fdopen(read_result, "rb"), ready, request, limits)

    def _wait(
        self,
        process: subprocess.Popen[bytes],
        result_pipe: IO[bytes],
        ready: IO[bytes],
        request: str,
        limits: ProcessLimits,
    ) -> Finished:
        """Drain the outputs; the clock starts when the harness says it is ready (Python,
        torch and whipnb imported), as a grading's clock starts with the graded cell."""
        assert process.stdin and process.stdout and process.stderr
        drains = [
            _Drain(process.stdout, limits.output_cap),
            _Drain(process.stderr, limits.output_cap),
            _Drain(result_pipe, RESULT_CAP),
        ]
        for drain in drains:
            drain.start()
        with KernelWatch(limits.timeout_s, limits.memory_mb) as watch:
            watch.start(process.pid)
            clock = threading.Thread(target=_start_clock, args=(ready, watch), daemon=True)
            clock.start()
            try:
                process.stdin.write(request.encode("utf-8"))
                process.stdin.close()
            except BrokenPipeError:  # it ended before reading its request
                pass
            try:
                process.wait(timeout=limits.timeout_s + 10)
            except subprocess.TimeoutExpired:  # the watch kills it at its deadline anyway
                watch.kill_tree()
                process.wait()
        for drain in drains:
            drain.join(timeout=5)
        out, err, result = drains
        return Finished(
            exit_code=process.returncode,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            killed=watch.reason,
            result=result.text() if not result.truncated else "",
        )
