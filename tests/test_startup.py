"""Front ends that never grade never import torch: listing tasks, reading a task's
metadata, exporting or reporting a gradebook and the command line's ``--help``
and ``tasks`` (torch costs about two seconds of start-up).  Each check runs in a
fresh interpreter, since this test process has long imported torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

#: Reads everything ``whipnb tasks``, the panel and the exports show of a task.
METADATA = (
    "import whipnb.tasks\n"
    "tasks = whipnb.tasks.all_tasks()\n"
    "task = whipnb.tasks.get_task('task1')\n"
    "shown = (task.title, task.hints, task.rows, task.targets, task.timeout_s, task.description)\n"
    "assert len(tasks) >= 6 and all(shown)\n"
)

SNIPPETS = {
    "import whipnb.cli": "import whipnb.cli\n",
    "task metadata": METADATA,
    "import whipnb.gradebook.exports": "import whipnb.gradebook.exports\n",
    "import whipnb.gradebook.report": "import whipnb.gradebook.report\n",
    "whipnb --help": (
        "import runpy, sys\nsys.argv = ['whipnb', '--help']\n"
        "try:\n    runpy.run_module('whipnb', run_name='__main__')\n"
        "except SystemExit as end:\n    assert end.code in (0, None), end.code\n"
    ),
    "whipnb tasks": (
        "import runpy, sys\nsys.argv = ['whipnb', 'tasks']\n"
        "try:\n    runpy.run_module('whipnb', run_name='__main__')\n"
        "except SystemExit as end:\n    assert end.code in (0, None), end.code\n"
    ),
}

REPORT = "\nimport sys\nprint('TORCH' if 'torch' in sys.modules else 'NO TORCH')\n"


def run_fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.mark.parametrize("name", list(SNIPPETS))
def test_front_end_does_not_import_torch(name):
    done = run_fresh(SNIPPETS[name] + REPORT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "NO TORCH", done.stdout


def test_the_probe_itself_sees_torch():
    """The check above can fail: grading a task's probes does import torch."""
    done = run_fresh(METADATA + "whipnb.tasks.get_task('task1').probes()\n" + REPORT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "TORCH"
