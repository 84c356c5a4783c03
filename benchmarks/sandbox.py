"""Sandbox overhead: each solution graded by ``whipnb grade`` in bubblewrap and without,
side by side, as a ratio (target: the sandbox costs at most 5% of a grading's time).

Variants, per task (a new grader process, one fresh kernel, ``--jobs 1``):

* ``bwrap``: ``whipnb grade solutions/taskN.ipynb`` (the default ``--sandbox bwrap``:
  read-only view, private folder, own namespaces and uid, ipc sockets);
* ``none``: the same with ``--sandbox none`` (TCP sockets, the grader's user).

And once per round the six solutions in one batch, with each sandbox setting.
"""

from __future__ import annotations

import shutil

from bench import (
    WHIPNB,
    Samples,
    arguments,
    footer,
    header,
    interleaved,
    ratio,
    run,
    scratch,
    solution_notebook,
    table,
    total,
)

SANDBOXES = ("bwrap", "none")


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=3)
    header("Sandbox: whipnb grade in bubblewrap vs --sandbox none", args)
    work = scratch("sandbox")
    batch_folder = work / "batch"
    batch_folder.mkdir()
    for task in args.tasks:
        shutil.copy(solution_notebook(task), work / f"{task}.ipynb")
        shutil.copy(solution_notebook(task), batch_folder / f"{task}.ipynb")

    def grade(path: object, sandbox: str) -> float:
        db = work / f"gradebook-{sandbox}.sqlite"
        db.unlink(missing_ok=True)
        command = [WHIPNB, "grade", path, "--jobs", "1", "--force", "--quiet", "--db", db]
        return run([*command, "--sandbox", sandbox])

    variants = {}
    for task in args.tasks:
        for sandbox in SANDBOXES:
            notebook = work / f"{task}.ipynb"
            variants[(task, sandbox)] = lambda n=notebook, s=sandbox: grade(n, s)
    for sandbox in SANDBOXES:
        variants[("six", sandbox)] = lambda s=sandbox: grade(batch_folder, s)
    samples = interleaved(variants, args.rounds)

    def of(sandbox: str) -> list[Samples]:
        return [samples[(task, sandbox)] for task in args.tasks]

    rows = [
        [task, samples[(task, "bwrap")], samples[(task, "none")],
         ratio(samples[(task, "bwrap")], samples[(task, "none")])]
        for task in args.tasks
    ]  # fmt: skip
    sums = {sandbox: total(of(sandbox)) for sandbox in SANDBOXES}
    rows.append(["**total**", sums["bwrap"], sums["none"], ratio(sums["bwrap"], sums["none"])])
    six = [samples[("six", sandbox)] for sandbox in SANDBOXES]
    rows.append(["six in one batch", *six, ratio(*six)])
    print(table(["task", "bwrap s", "none s", "bwrap/none"], rows))
    footer()


if __name__ == "__main__":
    main()
