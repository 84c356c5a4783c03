"""Generate ``notebooks/taskN.ipynb`` and ``solutions/taskN.ipynb`` from each
task's single source (its README, buggy script and solution), so notebooks
never drift from what the grader knows.  ``python -m whipnb.authoring.notebooks [ROOT]``
rewrites them; a test fails when the committed files differ.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

from whipnb.tasks import Task, all_tasks

LEARNER_INTRO = (
    "Run the next cell once to load the grader, then run the training script below. "
    "Every run of the script is graded; edit it and run it again until the panel "
    "says every bug is fixed."
)
SOLUTION_INTRO = (
    "**Reference solution.** The same script with every bug fixed; the grader "
    "should score it in the top band."
)


def build_notebook(task: Task, solution: bool = False) -> nbformat.NotebookNode:
    body = task.solution_source if solution else task.buggy_source
    cells = [
        nbformat.v4.new_markdown_cell(task.description.strip()),
        nbformat.v4.new_markdown_cell(SOLUTION_INTRO if solution else LEARNER_INTRO),
        nbformat.v4.new_code_cell("%load_ext whipnb"),
        nbformat.v4.new_code_cell(f"%%whip_grade {task.id}\n{body.rstrip()}"),
    ]
    for index, cell in enumerate(cells):
        cell["id"] = f"{task.id}-{'solution' if solution else 'learner'}-{index}"
    if not solution:
        # The learner's script may raise by design (a crash is graded, not fatal);
        # nbval's tag lets the shipped notebook run end to end all the same.
        cells[-1]["metadata"]["tags"] = ["raises-exception"]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return notebook


def rendered_notebooks(root: Path) -> dict[Path, str]:
    """Every generated notebook's path under ``root`` and its exact file text."""
    files = {}
    for task in all_tasks().values():
        for folder, solution in (("notebooks", False), ("solutions", True)):
            text = nbformat.writes(build_notebook(task, solution)) + "\n"
            files[root / folder / f"{task.id}.ipynb"] = text
    return files


def write_notebooks(root: Path) -> list[Path]:
    written = []
    for path, text in rendered_notebooks(root).items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path.cwd()
    for path in write_notebooks(root):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
