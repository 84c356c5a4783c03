"""Anchor: the six solutions autograded by nbgrader vs graded by ``whipnb grade``.

nbgrader is installed for this benchmark only, in its own virtual environment
(``benchmarks/.work/nbgrader-venv``, no system site packages) with
``torch==2.13.0`` (the CPU build) and whipnb (the scripts import the tasks'
data), and set up as a minimal nbgrader course under
``benchmarks/.work/nbgrader-course``: one assignment ``ps1`` holding the six
tasks, one student.

What nbgrader runs is what an instructor would write without whipnb: each
solution notebook with its graded cell as a plain code cell (no
``%%whip_grade``) marked as the student's answer, followed by a locked test
cell asserting the task's success criterion on the script's own validation
metric.  ``nbgrader autograde ps1 --force`` then executes the six notebooks,
one fresh kernel each, one after the other; ``whipnb grade`` does the same six
solutions with ``--jobs 1`` (one after the other too), the same without
kernels booted ahead of need (``--kernels-ahead 0``), and ``--jobs 2``.
nbgrader's kernels get ``OMP_NUM_THREADS=1``, the thread count whipnb runs
learner code with (the conservative choice: with torch's default threads they
are slower on a loaded machine).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv

import nbformat
from bench import (
    ROOT,
    WHIPNB,
    WORK,
    arguments,
    footer,
    header,
    interleaved,
    progress,
    ratio,
    run,
    scratch,
    solution_notebook,
    table,
)

from whipnb.headless.submissions import read_submission

VENV = WORK / "nbgrader-venv"
COURSE = WORK / "nbgrader-course"
STUDENT = "bench"
ASSIGNMENT = "ps1"
#: What each script computes for its success criterion, and the seed's threshold.
CRITERIA = {
    "task1": ("val_acc", 0.90),
    "task2": ("val_acc", 0.85),
    "task3": ("val_acc", 0.92),
    "task4": ("val_f1", 0.75),
    "task5": ("val_acc", 0.90),
    "task6": ("val_acc", 0.90),
}
CONFIG = f"""c = get_config()
c.CourseDirectory.root = {str(COURSE)!r}
c.CourseDirectory.course_id = "whipnb-bench"
c.CourseDirectory.db_assignments = [dict(name={ASSIGNMENT!r})]
c.CourseDirectory.db_students = [dict(id={STUDENT!r})]
c.ExecutePreprocessor.timeout = 600
"""


def nbgrader_environment() -> str:
    """The venv's ``nbgrader`` command, creating the venv on first use."""
    nbgrader = VENV / "bin" / "nbgrader"
    if nbgrader.exists():
        return str(nbgrader)
    progress(f"creating {VENV} and installing nbgrader, torch==2.13.0 and whipnb (once)")
    venv.create(VENV, with_pip=True, system_site_packages=False, clear=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    # torch pinned first and by the project's constraints: a bare requirement
    # would let pip pick a multi-gigabyte CUDA build.
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    subprocess.run(
        [*pip, "-c", str(ROOT / "constraints.txt"), "nbgrader", "-e", str(ROOT)], check=True
    )
    return str(nbgrader)


def nbgrader_notebook(task: str) -> nbformat.NotebookNode:
    """The solution as an nbgrader assignment: the script as the answer, a test cell."""
    body = read_submission(solution_notebook(task)).body
    variable, threshold = CRITERIA[task]
    answer = nbformat.v4.new_code_cell(body)
    answer.metadata["nbgrader"] = {
        "grade": False,
        "grade_id": f"{task}-answer",
        "locked": False,
        "schema_version": 3,
        "solution": True,
        "task": False,
    }
    test = nbformat.v4.new_code_cell(f"assert {variable} > {threshold}")
    test.metadata["nbgrader"] = {
        "grade": True,
        "grade_id": f"{task}-test",
        "locked": True,
        "points": 1,
        "schema_version": 3,
        "solution": False,
        "task": False,
    }
    notebook = nbformat.v4.new_notebook(cells=[answer, test])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    return notebook


def make_course(tasks: list[str], nbgrader: str) -> dict[str, str]:
    """Source, release and one student's submission of the assignment; nbgrader's env."""
    shutil.rmtree(COURSE, ignore_errors=True)
    (COURSE / "source" / ASSIGNMENT).mkdir(parents=True)
    (COURSE / "nbgrader_config.py").write_text(CONFIG)
    for task in tasks:
        nbformat.write(nbgrader_notebook(task), COURSE / "source" / ASSIGNMENT / f"{task}.ipynb")
    env = {key: value for key, value in os.environ.items() if key != "VIRTUAL_ENV"}
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # One intra-op thread, as whipnb runs learner code: on a loaded machine torch's
    # default threads contend and would slow nbgrader's kernels down several times.
    env["OMP_NUM_THREADS"] = "1"
    run([nbgrader, "generate_assignment", ASSIGNMENT, "--force"], cwd=COURSE, env=env)
    submitted = COURSE / "submitted" / STUDENT / ASSIGNMENT
    submitted.mkdir(parents=True)
    for task in tasks:  # the student's answer: the released notebook with the solution in it
        notebook = nbformat.read(COURSE / "release" / ASSIGNMENT / f"{task}.ipynb", as_version=4)
        answer = next(cell for cell in notebook.cells if cell.metadata["nbgrader"]["solution"])
        answer.source = read_submission(solution_notebook(task)).body
        nbformat.write(notebook, submitted / f"{task}.ipynb")
    return env


def autograded_scores(tasks: list[str], nbgrader: str, env: dict[str, str]) -> str:
    """What nbgrader gave the student, to show the notebooks really ran and passed."""
    code = (
        "from nbgrader.api import Gradebook\n"
        f"with Gradebook('sqlite:///{COURSE / 'gradebook.db'}') as gb:\n"
        f"    s = gb.find_submission({ASSIGNMENT!r}, {STUDENT!r})\n"
        "    print(f'{s.score:g} of {s.max_score:g} points')\n"
    )
    python = str(VENV / "bin" / "python")
    done = subprocess.run([python, "-c", code], cwd=COURSE, env=env, capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def main() -> None:
    args = arguments(__doc__.split("\n\n")[0], rounds=3)
    header("Anchor: nbgrader autograde vs whipnb grade, the six solutions", args)
    nbgrader = nbgrader_environment()
    env = make_course(args.tasks, nbgrader)
    work = scratch("anchor")
    folder = work / "solutions"
    folder.mkdir()
    for task in args.tasks:
        shutil.copy(solution_notebook(task), folder / f"{task}.ipynb")

    def whipnb(jobs: int, *options: str) -> float:
        db = work / "gradebook.sqlite"
        db.unlink(missing_ok=True)
        command = [WHIPNB, "grade", folder, "--jobs", jobs, "--force", "--quiet", "--db", db]
        return run([*command, *options])

    autograde = [nbgrader, "autograde", ASSIGNMENT, "--force"]
    samples = interleaved(
        {
            "nbgrader": lambda: run(autograde, cwd=COURSE, env=env),
            "whipnb 1": lambda: whipnb(1),
            "whipnb 1, none ahead": lambda: whipnb(1, "--kernels-ahead", "0"),
            "whipnb 2": lambda: whipnb(2),
        },
        args.rounds,
    )
    rows = [["nbgrader autograde", samples["nbgrader"], "1"]]
    for name, label in (
        ("whipnb 1", "whipnb grade --jobs 1"),
        ("whipnb 1, none ahead", "whipnb grade --jobs 1 --kernels-ahead 0"),
        ("whipnb 2", "whipnb grade --jobs 2"),
    ):
        rows.append([label, samples[name], ratio(samples[name], samples["nbgrader"])])
    print(table([f"{len(args.tasks)} solutions", "s", "whipnb / nbgrader"], rows))
    print(f"\nnbgrader's grade of the student: {autograded_scores(args.tasks, nbgrader, env)}")
    print(f"python: {sys.version.split()[0]}")
    footer()


if __name__ == "__main__":
    main()
