"""Shared helpers for the benchmark scripts: run variants side by side, summarise, print.

Every script compares variants *within one run*: each round runs every variant
once, in an order shuffled from round to round, so slow spells on a shared
machine hit all variants alike.  Figures are medians over rounds with their
spread (min-max); ratios are medians of the per-round ratios, which pair
runs made seconds apart.  No figure is ever compared with a time taken in
another run.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Scratch space for every script (git-ignored): notebooks, gradebooks, nbgrader's venv.
WORK = ROOT / "benchmarks" / ".work"
BIN = Path(sys.executable).parent
PYTHON = sys.executable
WHIPNB = str(BIN / "whipnb")
JUPYTER = str(BIN / "jupyter")
TASKS = tuple(f"task{n}" for n in range(1, 7))


def task_dir(task: str) -> Path:
    return ROOT / "whipnb" / "tasks" / task


def solution_script(task: str) -> Path:
    return task_dir(task) / "solution.py"


def solution_notebook(task: str) -> Path:
    return ROOT / "solutions" / f"{task}.ipynb"


def buggy_notebook(task: str) -> Path:
    return ROOT / "notebooks" / f"{task}.ipynb"


def scratch(name: str) -> Path:
    """A fresh, empty folder under ``WORK``."""
    folder = WORK / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def run(
    command: Sequence[str | Path], *, cwd: Path | None = None, env: dict | None = None
) -> float:
    """Run a command to the end, output discarded; its wall-clock seconds.  Raises if it fails,
    so a broken variant never passes for a fast one."""
    started = time.perf_counter()
    finished = subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    elapsed = time.perf_counter() - started
    if finished.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed:\n{finished.stderr[-2000:]}")
    return elapsed


def environment(**changes: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(changes)
    return env


@dataclass
class Samples:
    """Wall-clock seconds of one variant, one per round."""

    values: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.values[0]:.2f}"
        return f"{self.median:.2f} ({min(self.values):.2f}-{max(self.values):.2f})"


def interleaved(variants: dict[str, Callable[[], float]], rounds: int) -> dict[str, Samples]:
    """Run every variant once per round, in a shuffled order (seeded: reruns match)."""
    samples = {name: Samples() for name in variants}
    for round_ in range(rounds):
        order = list(variants)
        random.Random(round_).shuffle(order)
        for name in order:
            samples[name].values.append(variants[name]())
            progress(f"round {round_ + 1}/{rounds} {name}: {samples[name].values[-1]:.2f} s")
    return samples


def ratio(numerator: Samples, denominator: Samples) -> str:
    """The median of per-round ratios, with their spread (runs of one round sit side by side)."""
    ratios = [a / b for a, b in zip(numerator.values, denominator.values, strict=True)]
    return str(Samples(ratios))


def total(samples: Sequence[Samples]) -> Samples:
    """Per round, the sum over several variants (e.g. over the six tasks)."""
    return Samples([sum(values) for values in zip(*(s.values for s in samples), strict=True)])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table (pastes into docs/PERFORMANCE.md as it is)."""
    cells = [list(map(str, headers))] + [list(map(str, row)) for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def header(title: str, args: argparse.Namespace) -> None:
    """What ran, where, and how loaded the machine was (a figure means little without it)."""
    command = " ".join([Path(sys.argv[0]).resolve().relative_to(ROOT).as_posix(), *sys.argv[1:]])
    print(f"# {title}\n")
    print(f"command: python {command}")
    print(f"rounds: {args.rounds}; CPUs: {os.cpu_count()}; load average at start: {load()}\n")


def footer() -> None:
    print(f"\nload average at end: {load()}")
    print("figures: median over rounds (min-max); ratios: median of per-round ratios (min-max)")


def load() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def arguments(description: str, rounds: int, tasks: bool = True) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--rounds", type=int, default=rounds, help=f"rounds of every variant (default {rounds})"
    )
    if tasks:
        parser.add_argument(
            "--tasks", default=",".join(TASKS), help="comma-separated tasks (default: all six)"
        )
    args = parser.parse_args()
    if tasks:
        args.tasks = [task.strip() for task in args.tasks.split(",") if task.strip()]
    return args
