"""Rewards per minute: a batch of 24 completions graded by the warm pool, against
running each script as a plain ``python`` process one at a time.

The batch mixes the six tasks' reference fixes and buggy scripts (each twice),
as a GRPO step would: the code of every completion is the graded cell of
``solutions/taskN.ipynb`` or ``notebooks/taskN.ipynb``.

* ``plain``: each script run as ``python script.py`` one after another, with
  ``OMP_NUM_THREADS=1`` (the fair baseline of ``docs/PERFORMANCE.md``: on a loaded
  machine torch's default threads contend and slow the plain run down, which
  would flatter the pool).  No grading at all: the floor a user compares with.
* ``pool``: :class:`whipnb.agent.rewards.GRPOReward` on a
  :class:`whipnb.agent.grader.Grader` with ``--jobs`` workers (default 2), every
  submission in its own fresh sandboxed kernel.  The grader is made and its first
  kernels booted before the clock starts, as in training, where the pool lives
  across steps and boots while the model generates; every later boot is timed.

Then the rewards are checked against ``whipnb grade`` on the same twelve
notebooks: they must be identical.  Target: pool rate / plain rate >= 0.9.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import nbformat
from bench import (
    PYTHON,
    ROOT,
    TASKS,
    WHIPNB,
    Samples,
    arguments,
    buggy_notebook,
    environment,
    footer,
    header,
    interleaved,
    progress,
    ratio,
    scratch,
    solution_notebook,
    table,
)

from whipnb.agent.grader import Grader
from whipnb.agent.rewards import GRPOReward
from whipnb.headless.submissions import find_graded_cell

BATCH = 24
TARGET = 0.9


def batch() -> list[tuple[Path, str]]:
    """(notebook, task) for each of the 24 completions: fixes and buggy scripts, mixed."""
    distinct = [(notebook(task), task) for task in TASKS for notebook in (solution_notebook,
                buggy_notebook)]  # fmt: skip
    return [distinct[index % len(distinct)] for index in range(BATCH)]


def body(path: Path) -> str:
    return find_graded_cell(nbformat.read(path, as_version=4)).body


def plain_run(scripts: list[Path], work: Path) -> float:
    """Each script as a plain Python process, one at a time; exit status ignored (a buggy
    script may crash, as it does for the learner)."""
    env = environment(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    started = time.perf_counter()
    for script in scripts:
        subprocess.run([PYTHON, str(script)], cwd=work, env=env, capture_output=True, check=False)
    return time.perf_counter() - started


def pool_run(completions: list[str], tasks: list[str], jobs: int, rewards: list) -> float:
    with Grader(jobs=jobs) as grader:
        grader.wait_ready()
        reward = GRPOReward(grader)
        started = time.perf_counter()
        rewards.append(reward(completions=completions, task_id=tasks))
        return time.perf_counter() - started


def cli_scores(paths: list[Path], work: Path, jobs: int) -> dict[str, float]:
    out = work / "records.json"
    command = [WHIPNB, "grade", *map(str, paths), "--jobs", str(jobs), "--json", str(out)]
    command += ["--quiet", "--db", str(work / "gradebook.sqlite")]
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True)
    return {Path(r["path"]).resolve().as_posix(): r["score"] for r in json.loads(out.read_text())}


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=1, tasks=False)
    jobs = 2
    header("Rewards per minute: warm pool vs plain python, 24 completions", args)
    work = scratch("rewards")
    items = batch()
    scripts = []
    for index, (path, _task) in enumerate(items):
        script = work / f"completion{index:02d}.py"
        script.write_text(body(path), encoding="utf-8")
        scripts.append(script)
    completions = [f"The fixed script:\n```python\n{body(path)}\n```" for path, _ in items]
    tasks = [task for _path, task in items]
    rewards: list[list[float]] = []
    samples = interleaved(
        {
            "plain": lambda: plain_run(scripts, work),
            "pool": lambda: pool_run(completions, tasks, jobs, rewards),
        },
        args.rounds,
    )
    progress("whipnb grade on the twelve distinct notebooks")
    expected_by_path = cli_scores(sorted({path for path, _ in items}), work, jobs)
    expected = [expected_by_path[path.resolve().as_posix()] for path, _ in items]
    identical = all(round_ == expected for round_ in rewards)
    rate = {name: Samples([BATCH * 60 / s for s in sample.values]) for name, sample in
            samples.items()}  # fmt: skip
    print(
        table(
            ["variant", "batch of 24, s", "rewards per minute"],
            [(name, samples[name], rate[name]) for name in samples],
        )
    )
    pool_over_plain = ratio(rate["pool"], rate["plain"])
    print(f"\npool rate / plain rate: {pool_over_plain} (target >= {TARGET})")
    print(f"rewards identical to whipnb grade: {identical}")
    if not identical:
        print(f"rewards: {rewards}\nwhipnb grade: {expected}")
    footer()


if __name__ == "__main__":
    main()
