"""Finding the processes a test started: every grader a test runs gets a fresh
marker in its environment, which its kernels and their children inherit."""

from __future__ import annotations

import os
import time
import uuid

import psutil

MARK = "WHIPNB_TEST_MARK"


def marked_environment() -> dict[str, str]:
    """This process's environment plus a fresh marker."""
    return {**os.environ, MARK: uuid.uuid4().hex}


def marked_processes(mark: str) -> list[psutil.Process]:
    """Live processes carrying ``mark`` in their environment."""
    found = []
    for process in psutil.process_iter():
        try:
            if process.status() != psutil.STATUS_ZOMBIE and process.environ().get(MARK) == mark:
                found.append(process)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def wait_until_gone(mark: str, within: float) -> list[psutil.Process]:
    """The marked processes still alive after waiting up to ``within`` seconds."""
    deadline = time.monotonic() + within
    while (left := marked_processes(mark)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left
