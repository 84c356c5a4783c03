"""A class's worth of task 1 submissions: valid ones, every kind of unusable file,
and hostile ones (endless, memory-hungry, kernel-killing), each with what the
grader must conclude about it."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import nbformat
from kernels import write_notebook

from whipnb.tasks import get_task

ROOT = Path(__file__).resolve().parent.parent
STEP_FIRST = "        optimizer.step()\n        loss.backward()"
BACKWARD_FIRST = "        loss.backward()\n        optimizer.step()"
#: A helper process the learner starts in its own session: it must not outlive grading.
SPAWN_HELPER = (
    "import subprocess, sys\n"
    "helper = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'],"
    " start_new_session=True)\n"
)
MEMORY_BOMB = (
    "import time\nhoard = []\nwhile True:\n"
    "    hoard.append(b'x' * 50_000_000)  # touched memory, 50 MB at a time\n"
    "    time.sleep(0.02)\n"
)


@dataclass(frozen=True)
class Expected:
    status: str
    #: Words the record's message (or, for a graded crash, its "runs" check) must contain.
    words: str = ""
    #: For graded submissions: the score range the task's rubric gives.
    low: float = 0.0
    high: float = 1.0
    #: The graded body, for submissions that must score as they do alone.
    body: str | None = None


def graded_notebook(path: Path, body: str) -> Path:
    return write_notebook(path, "%load_ext whipnb", f"%%whip_grade task1\n{body}")


def valid_bodies() -> dict[str, tuple[str, Expected]]:
    """Learner file name -> (graded body, expectation) for submissions the rubric scores."""
    task = get_task("task1")
    solution, buggy = task.solution_source, task.buggy_source
    order_fixed = buggy.replace(STEP_FIRST, BACKWARD_FIRST)
    assert order_fixed != buggy
    # Markup-like text in a message must print as text, not break the table.
    crash = "raise ValueError('[/bold] the learner broke it')\n"
    return {
        "alice_task1.ipynb": (solution, Expected("graded", low=0.85, body=solution)),
        "bob_task1.ipynb": (buggy, Expected("graded", low=0.15, high=0.25, body=buggy)),
        "carol_task1.ipynb": (
            order_fixed,
            Expected("graded", low=0.40, high=0.70, body=order_fixed),
        ),
        "dave_task1.ipynb": (crash, Expected("graded", "ValueError", high=0.10, body=crash)),
    }


def write_class(folder: Path) -> dict[str, Expected]:
    """Write every submission under ``folder``; returns file name -> expectation."""
    folder.mkdir(parents=True, exist_ok=True)
    expected: dict[str, Expected] = {}
    for name, (body, expectation) in valid_bodies().items():
        graded_notebook(folder / name, body)
        expected[name] = expectation

    solution = get_task("task1").solution_source
    for name, body, expectation in (
        ("erin_task1.ipynb", "import sys\nsys.exit(2)\n", Expected("graded", "SystemExit", 0, 0.1)),
        ("frank_task1.ipynb", SPAWN_HELPER + solution, Expected("graded", low=0.85)),
        # quit() would end the kernel just after the cell: graded as the cell ran.
        ("grace_task1.ipynb", solution + "quit()\n", Expected("graded", low=0.85)),
        ("loop_task1.ipynb", "while True:\n    pass\n", Expected("timeout", "did not finish")),
        ("bomb_task1.ipynb", MEMORY_BOMB, Expected("memory", "more than")),
        ("exit_task1.ipynb", "import os\nos._exit(3)\n", Expected("kernel_died", "exit code 3")),
        (
            "segv_task1.ipynb",
            "import ctypes\nctypes.string_at(0)\n",
            Expected("kernel_died", "SIGSEGV"),
        ),
    ):
        graded_notebook(folder / name, body)
        expected[name] = expectation

    whole = (ROOT / "solutions" / "task1.ipynb").read_bytes()
    (folder / "trunc_task1.ipynb").write_bytes(whole[: len(whole) // 2])
    (folder / "png_task1.ipynb").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe")
    (folder / "script_task1.ipynb").write_text(solution, encoding="utf-8")
    (folder / "list_task1.ipynb").write_text(json.dumps([1, 2, 3]), encoding="utf-8")
    (folder / "v3_task1.ipynb").write_text(json.dumps(nbformat3_notebook()), encoding="utf-8")
    write_notebook(folder / "nocell_task1.ipynb", "%load_ext whipnb", "print('no grade')")
    write_notebook(
        folder / "twice_task1.ipynb",
        f"%%whip_grade task1\n{solution}",
        f"%%whip_grade task1\n{solution}",
    )
    write_notebook(folder / "unknown_task1.ipynb", "%%whip_grade task42\nprint('hi')\n")
    write_notebook(folder / "empty_task1.ipynb", "%%whip_grade task1\n   \n")
    os.symlink(folder / "gone.ipynb", folder / "unreadable_task1.ipynb")
    # Hostile inputs (issue 11): none may crash or hang the batch.
    deep = '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": ' + "[" * 100_000
    (folder / "deep_task1.ipynb").write_text(deep + "]" * 100_000 + "}", encoding="utf-8")
    os.mkfifo(folder / "fifo_task1.ipynb")
    os.symlink("/dev/zero", folder / "zero_task1.ipynb")
    surrogate = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("%%whip_grade task1\nprint('\udcff')\n")]
    )  # json escapes the lone surrogate: valid JSON, not valid Unicode
    (folder / "surrogate_task1.ipynb").write_text(json.dumps(surrogate), encoding="utf-8")
    undecodable = os.path.join(os.fsencode(folder), b"caf\xe9_task1.ipynb")
    graded_notebook(Path(os.fsdecode(undecodable)), "raise ValueError('caf')\n")
    expected["caf\\xe9_task1.ipynb"] = Expected("graded", "ValueError", high=0.10)
    for name, words in (
        ("trunc_task1.ipynb", "truncated JSON"),
        ("png_task1.ipynb", "not text"),
        ("script_task1.ipynb", "not JSON"),
        ("list_task1.ipynb", "without an 'nbformat' field"),
        ("v3_task1.ipynb", "nbformat 3 is not supported"),
        ("nocell_task1.ipynb", "no graded cell"),
        ("twice_task1.ipynb", "2 graded cells"),
        ("unknown_task1.ipynb", "unknown task 'task42'"),
        ("empty_task1.ipynb", "is empty"),
        ("unreadable_task1.ipynb", "cannot read the file"),
        ("deep_task1.ipynb", "nested too deeply"),
        ("fifo_task1.ipynb", "named pipe"),
        ("zero_task1.ipynb", "outside the submissions folder"),
        ("surrogate_task1.ipynb", "not valid Unicode"),
    ):
        expected[name] = Expected("invalid", words)
    return expected


def nbformat3_notebook() -> dict:
    """An old (nbformat 3) notebook, with a graded cell in its only worksheet."""
    v3 = nbformat.v3
    cell = v3.new_code_cell(input="%%whip_grade task1\nprint('old')\n")
    notebook = v3.new_notebook(worksheets=[v3.new_worksheet(cells=[cell])])
    return json.loads(v3.writes_json(notebook))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every entry's bytes (a symlink: its target; a FIFO: its kind, reading it would
    block), to prove grading wrote nothing."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = str(path.relative_to(folder))
        if path.is_symlink():
            found[key] = os.readlink(path).encode()
        elif path.is_fifo():
            found[key] = b"FIFO"
        else:
            found[key] = path.read_bytes()
    return found
