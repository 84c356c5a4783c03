"""Overhead: each solution as a plain script, graded by ``whipnb grade``, and run by
``jupyter execute``, side by side; then the six graded in one batch.

Variants, per task:

* ``plain``: ``python solution.py``, the script as a learner would run it
  (torch's default thread count);
* ``plain-1t``: the same with ``OMP_NUM_THREADS=1``: one intra-op thread, as
  the grader runs learner code (on a shared, loaded machine the default
  threads contend and ``plain`` slows down several times, which would flatter
  the grader, so the targets are read against this one);
* ``grade``: ``whipnb grade solutions/taskN.ipynb --jobs 1`` (a new grader
  process, one fresh kernel);
* ``execute``: ``jupyter execute solutions/taskN.ipynb`` (the notebook run
  top to bottom, the ``%%whip_grade`` cell grading inside it).

And once per round ``batch``: ``whipnb grade`` on the six solutions at once
with ``--jobs 1`` (kernels started ahead of need: two by default, and one
with ``--kernels-ahead 1``), against the six plain runs added up.
"""

from __future__ import annotations

import shutil

from bench import (
    JUPYTER,
    PYTHON,
    WHIPNB,
    Samples,
    arguments,
    environment,
    footer,
    header,
    interleaved,
    ratio,
    run,
    scratch,
    solution_notebook,
    solution_script,
    table,
    total,
)

AHEAD_1 = ("--kernels-ahead", "1")


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=3)
    header("Overhead: plain script vs whipnb grade vs jupyter execute", args)
    work = scratch("overhead")
    batch_folder = work / "batch"
    batch_folder.mkdir()
    for task in args.tasks:
        shutil.copy(solution_notebook(task), work / f"{task}.ipynb")
        shutil.copy(solution_notebook(task), batch_folder / f"{task}.ipynb")
    one_thread = environment(OMP_NUM_THREADS="1")

    def grade(*paths: object, options: tuple[str, ...] = ()) -> float:
        db = work / "gradebook.sqlite"
        db.unlink(missing_ok=True)
        return run(
            [WHIPNB, "grade", *paths, "--jobs", "1", "--force", "--quiet", "--db", db, *options]
        )

    variants = {}
    for task in args.tasks:
        script, notebook = solution_script(task), work / f"{task}.ipynb"
        variants[(task, "plain")] = lambda s=script: run([PYTHON, s], cwd=work)
        variants[(task, "plain-1t")] = lambda s=script: run([PYTHON, s], cwd=work, env=one_thread)
        variants[(task, "grade")] = lambda n=notebook: grade(n)
        variants[(task, "execute")] = lambda n=notebook: run([JUPYTER, "execute", n], cwd=work)
    variants[("six", "batch")] = lambda: grade(batch_folder)
    variants[("six", "batch, 1 ahead")] = lambda: grade(batch_folder, options=AHEAD_1)
    samples = interleaved(variants, args.rounds)

    def of(kind: str) -> list[Samples]:
        return [samples[(task, kind)] for task in args.tasks]

    rows = [
        [
            task,
            *(samples[(task, kind)] for kind in ("plain", "plain-1t", "grade", "execute")),
            ratio(samples[(task, "grade")], samples[(task, "plain-1t")]),
            ratio(samples[(task, "grade")], samples[(task, "plain")]),
            ratio(samples[(task, "grade")], samples[(task, "execute")]),
        ]
        for task in args.tasks
    ]
    sums = {kind: total(of(kind)) for kind in ("plain", "plain-1t", "grade", "execute")}
    rows.append(
        [
            "**total**",
            *sums.values(),
            ratio(sums["grade"], sums["plain-1t"]),
            ratio(sums["grade"], sums["plain"]),
            ratio(sums["grade"], sums["execute"]),
        ]
    )
    headers = [
        "task",
        "plain s",
        "plain-1t s",
        "grade s",
        "execute s",
        "grade/plain-1t",
        "grade/plain",
        "grade/execute",
    ]
    print(table(headers, rows))
    batch, one_ahead = samples[("six", "batch")], samples[("six", "batch, 1 ahead")]
    print()
    headers = ["six solutions, --jobs 1", "s", "/plain-1t total", "/plain total", "/grade total"]
    rows = [
        [label, b, ratio(b, sums["plain-1t"]), ratio(b, sums["plain"]), ratio(b, sums["grade"])]
        for label, b in (
            ("batch (default: 2 kernels ahead)", batch),
            ("batch, --kernels-ahead 1", one_ahead),
        )
    ]
    print(table(headers, rows))
    footer()


if __name__ == "__main__":
    main()
