"""Scaling: a class of 24 submissions graded with ``--jobs 1`` and ``--jobs 2``.

The class is two copies of every solution and two of every buggy notebook
(24 notebooks, 4 per task).  Every variant grades the same folder from an
empty gradebook (``--force``); a speed-up is the per-round ratio of times.
Each ``--jobs`` runs with kernels booted ahead of need (the default) and
without (``--kernels-ahead 0``): booting ahead already puts the second core to
work with one job, which leaves less for a second job to gain.  Scores must
not depend on either: the script checks that every run gave every notebook the
same score and status, to the last digit.
"""

from __future__ import annotations

import json
import shutil

from bench import (
    TASKS,
    WHIPNB,
    arguments,
    buggy_notebook,
    footer,
    header,
    interleaved,
    ratio,
    run,
    scratch,
    solution_notebook,
    table,
)

COPIES = 2
DEFAULT, OFF = "booted ahead (default)", "--kernels-ahead 0"


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=2, tasks=False)
    header("Scaling: 24 submissions, --jobs 1 vs --jobs 2", args)
    work = scratch("scaling")
    folder = work / "class"
    folder.mkdir()
    for task in TASKS:
        for copy in range(COPIES):
            shutil.copy(solution_notebook(task), folder / f"fixed{copy}_{task}.ipynb")
            shutil.copy(buggy_notebook(task), folder / f"buggy{copy}_{task}.ipynb")
    count = len(list(folder.glob("*.ipynb")))
    gradings: list[dict[str, tuple[float, str]]] = []

    def grade(jobs: int, ahead: str) -> float:
        db, out = work / "gradebook.sqlite", work / "grades.json"
        db.unlink(missing_ok=True)
        options = ["--kernels-ahead", "0"] if ahead == OFF else []
        command = [WHIPNB, "grade", folder, "--jobs", jobs, "--force", "--quiet"]
        elapsed = run([*command, "--db", db, "--json", out, *options])
        records = json.loads(out.read_text())
        gradings.append({r["path"]: (r["score"], r["status"]) for r in records})
        return elapsed

    variants = {
        (jobs, ahead): lambda jobs=jobs, ahead=ahead: grade(jobs, ahead)
        for jobs in (1, 2)
        for ahead in (DEFAULT, OFF)
    }
    samples = interleaved(variants, args.rounds)
    rows = [
        [
            ahead,
            samples[(1, ahead)],
            samples[(2, ahead)],
            ratio(samples[(1, ahead)], samples[(2, ahead)]),
        ]
        for ahead in (DEFAULT, OFF)
    ]
    print(
        table([f"{count} submissions", "--jobs 1 s", "--jobs 2 s", "speed-up jobs 1/jobs 2"], rows)
    )
    print()
    gain = ["booting ahead: off/default", ratio(samples[(1, OFF)], samples[(1, DEFAULT)])]
    print(
        table(
            ["", "with --jobs 1", "with --jobs 2"],
            [[*gain, ratio(samples[(2, OFF)], samples[(2, DEFAULT)])]],
        )
    )
    same = all(grading == gradings[0] for grading in gradings)
    statuses = sorted({status for grading in gradings for _, status in grading.values()})
    print(f"\nsame score and status for every notebook in every run: {same}; statuses: {statuses}")
    footer()
    if not same:
        raise SystemExit("scores differ between runs: grading is not deterministic")


if __name__ == "__main__":
    main()
