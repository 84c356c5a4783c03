"""Memory: the peak resident memory of one grading kernel per task.

For each task ``whipnb grade solutions/taskN.ipynb --jobs 1`` runs while this
script reads, every 10 ms, the kernel's high-water mark (``VmHWM`` in
``/proc/PID/status``, the kernel's own peak RSS, kept by Linux); the last
reading before the kernel exits is its peak.  For scale, the same is read
for the plain script (``python solution.py``), and for an idle grading kernel
(one booted ahead of need, as a batch keeps them waiting: whipnb, its
tasks and torch imported, nothing run).  The default memory
limit per submission is 2048 MB (``--memory-mb``).
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import psutil
from bench import (
    PYTHON,
    WHIPNB,
    arguments,
    footer,
    header,
    scratch,
    solution_notebook,
    solution_script,
    table,
)

from whipnb.headless.kernels import start_kernel
from whipnb.headless.pipeline import kernel_setup

POLL_S = 0.01
MB = 2**20


def high_water(pid: int) -> int | None:
    """The process's peak resident memory so far, in bytes."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((ln for ln in status.splitlines() if ln.startswith("VmHWM:")), None)
    return int(line.split()[1]) * 1024 if line else None


def peak_while_running(command: list[str], cwd: Path, kernel_only: bool) -> int:
    """Run ``command``; the peak RSS of its kernel (or of itself) seen until it exits."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL)
    parent = psutil.Process(process.pid)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        if kernel_only:
            try:
                pids = [p.pid for p in parent.children(recursive=True) if _is_kernel(p)]
            except psutil.NoSuchProcess:
                pids = []
        else:
            pids = [process.pid]
        for pid in pids:
            peaks[pid] = max(peaks.get(pid, 0), high_water(pid) or 0)
        time.sleep(POLL_S)
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed")
    if not peaks:
        raise RuntimeError(f"no process seen for {' '.join(command)}")
    return max(peaks.values())


def _is_kernel(process: psutil.Process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except psutil.Error:
        return False


def idle_kernel_peak() -> int:
    """A kernel booted ahead of need, as a batch keeps them waiting, before any submission."""
    kernel = start_kernel(kernel_setup(None))
    try:  # the kernel process inside its sandbox, below bwrap's own processes
        root = psutil.Process(kernel.manager.provisioner.pid)
        tree = [root, *root.children(recursive=True)]
        return max(high_water(process.pid) or 0 for process in tree)
    finally:
        kernel.discard()


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=1)
    header("Memory: peak RSS of one grading kernel per task", args)
    work = scratch("memory")
    rows = [
        [
            "kernel booted ahead, idle (whipnb, tasks, torch imported)",
            f"{max(idle_kernel_peak() for _ in range(args.rounds)) / MB:.0f}",
            "",
            "",
        ]
    ]
    for task in args.tasks:
        db = work / "gradebook.sqlite"
        grade = [
            WHIPNB,
            "grade",
            str(solution_notebook(task)),
            "--jobs",
            "1",
            "--force",
            "--quiet",
            "--db",
            str(db),
        ]
        kernel = max(peak_while_running(grade, work, True) for _ in range(args.rounds))
        plain = max(
            peak_while_running([PYTHON, str(solution_script(task))], work, False)
            for _ in range(args.rounds)
        )
        rows.append([task, f"{kernel / MB:.0f}", f"{plain / MB:.0f}", f"{kernel / plain:.2f}"])
    print(
        table(["grading kernel of", "kernel peak MB", "plain script peak MB", "kernel/plain"], rows)
    )
    footer()


if __name__ == "__main__":
    main()
