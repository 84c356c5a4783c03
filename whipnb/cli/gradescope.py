"""``whipnb gradescope-bundle`` and ``whipnb gradescope-run``: the same grading inside
Gradescope's autograder.

The bundle is the zip Gradescope asks for: ``setup.sh`` (run once when the
image is built: this Python version through uv, the dependencies pinned to the
versions this whipnb runs with, torch from PyTorch's CPU index),
``run_autograder`` (run per submission) and this very whipnb's code, so the
autograder grades with the version that made the bundle.  ``run_autograder``
calls ``whipnb gradescope-run``, which grades every notebook in
``/autograder/submission`` in fresh kernels under the usual limits and writes
``/autograder/results/results.json``: a scored test per task, a pass/fail test
per check, with the visibilities chosen when bundling.
``WHIPNB_AUTOGRADER_ROOT`` replaces ``/autograder`` (tests use a temporary
folder laid out the same way).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from whipnb.cli.arguments import positive
from whipnb.gradebook.exports import RESULTS_JSON, VISIBILITIES
from whipnb.headless.limits import DEFAULT_MEMORY_MB
from whipnb.version import __version__

ROOT_VARIABLE = "WHIPNB_AUTOGRADER_ROOT"
DEFAULT_ROOT = "/autograder"
CONFIG = "whipnb-gradescope.json"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
#: The Python the autograder runs: this one's version (the pinned packages need it).
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, as root, when it builds the autograder image
# (Ubuntu). It installs uv, Python {python} (the version the bundle was made
# with, whatever the image ships) in /autograder/venv, torch from PyTorch's CPU
# index and whipnb {version}'s dependencies pinned to the versions the bundle
# was made with; whipnb itself is this bundle's code.
set -euo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends ca-certificates curl bubblewrap
curl -LsSf https://astral.sh/uv/install.sh | env UV_INSTALL_DIR=/usr/local/bin sh
uv venv --python {python} /autograder/venv
uv pip install --python /autograder/venv/bin/python --index-url {torch_index} {torch}
uv pip install --python /autograder/venv/bin/python -r requirements.txt
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission: the learner's files are in
# $ROOT/submission, the results go to $ROOT/results/results.json.
# WHIPNB_AUTOGRADER_ROOT replaces /autograder, WHIPNB_PYTHON the Python to use.
set -euo pipefail
ROOT="${{WHIPNB_AUTOGRADER_ROOT:-/autograder}}"
PYTHON="${{WHIPNB_PYTHON:-$ROOT/venv/bin/python}}"
export PYTHONPATH="$ROOT/source${{PYTHONPATH:+:$PYTHONPATH}}"
export WHIPNB_AUTOGRADER_ROOT="$ROOT"
exec "$PYTHON" -m whipnb gradescope-run --config "$ROOT/source/{config}"
"""


def register(commands: Any) -> None:
    bundle = commands.add_parser(
        "gradescope-bundle",
        help="write a Gradescope autograder zip that grades with this whipnb",
        description="Write the zip to upload as a Gradescope programming assignment's "
        "autograder: setup.sh, run_autograder and this whipnb's code. Learners upload their "
        "notebooks; each gets a scored test per task and a pass/fail test per check.",
    )
    bundle.add_argument("output", metavar="OUT.zip", help="the zip file to write")
    bundle.add_argument(
        "--task",
        action="append",
        dest="tasks",
        metavar="TASK",
        help="a task of the assignment (repeatable): a missing notebook scores 0 of its "
        "points (default: only the tasks submitted count)",
    )
    bundle.add_argument(
        "--points", type=positive(float), default=1.0, help="points per task (default 1)"
    )
    bundle.add_argument(
        "--timeout", type=positive(float), default=None, help="seconds per notebook"
    )
    bundle.add_argument(
        "--memory-mb",
        type=positive(int),
        default=DEFAULT_MEMORY_MB,
        help=f"memory per notebook (default {DEFAULT_MEMORY_MB})",
    )
    bundle.add_argument(
        "--sandbox",
        choices=("bwrap", "none"),
        default="bwrap",
        help="the kernels' sandbox inside the autograder (default bwrap, which setup.sh "
        "installs; none where the image allows no user namespaces: Gradescope's container "
        "then is the only isolation)",
    )
    for option, default, what in (
        ("--visibility", "visible", "the results and the per-task tests"),
        ("--test-visibility", "visible", "the per-check tests"),
        ("--stdout-visibility", "hidden", "the autograder's output"),
    ):
        bundle.add_argument(
            option,
            choices=VISIBILITIES,
            default=default,
            help=f"Gradescope visibility of {what} (default: {default})",
        )
    bundle.set_defaults(run=run_bundle)

    inside = commands.add_parser(
        "gradescope-run",
        help="grade a submission inside Gradescope (what run_autograder calls)",
        description="Grade the notebooks in ROOT/submission and write "
        "ROOT/results/results.json; ROOT is $WHIPNB_AUTOGRADER_ROOT or /autograder.",
    )
    inside.add_argument("--config", required=True, help="the bundle's whipnb-gradescope.json")
    inside.set_defaults(run=run_inside)


# ---------------------------------------------------------------- the bundle


def run_bundle(args: argparse.Namespace) -> int:
    config = {
        "version": __version__,
        "tasks": args.tasks or [],
        "points": args.points,
        "timeout_s": args.timeout,
        "memory_mb": args.memory_mb,
        "sandbox": args.sandbox,
        "visibility": args.visibility,
        "test_visibility": args.test_visibility,
        "stdout_visibility": args.stdout_visibility,
    }
    if args.tasks:
        from whipnb.tasks import UnknownTaskError, get_task

        try:
            config["tasks"] = [get_task(task).id for task in args.tasks]
        except UnknownTaskError as error:
            print(error)
            return 2
    files = write_bundle(args.output, config)
    print(f"Gradescope autograder for whipnb {__version__} written to {args.output}")
    print(
        f"({len(files)} files; upload it as the assignment's autograder, see "
        "docs/GRADING-AT-SCALE.md)"
    )
    return 0


def write_bundle(output: str | Path, config: dict[str, Any]) -> list[str]:
    """The zip: setup.sh and run_autograder (executable), requirements.txt, the config
    and every file of the whipnb package; returns the names written."""
    package = Path(__file__).resolve().parent.parent
    torch, requirements = pinned_requirements()
    members: dict[str, tuple[bytes, int]] = {
        "setup.sh": (
            SETUP_SH.format(
                version=__version__, python=PYTHON, torch_index=TORCH_INDEX, torch=torch
            ).encode(),
            0o755,
        ),
        "run_autograder": (RUN_AUTOGRADER.format(config=CONFIG).encode(), 0o755),
        "requirements.txt": ("\n".join(requirements).encode() + b"\n", 0o644),
        CONFIG: (json.dumps(config, indent=2).encode() + b"\n", 0o644),
    }
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
            name = "whipnb/" + path.relative_to(package).as_posix()
            members[name] = (path.read_bytes(), 0o644)
    with zipfile.ZipFile(output, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, data)
    return list(members)


def pinned_requirements() -> tuple[str, list[str]]:
    """``torch==X`` and every other runtime dependency of whipnb pinned to the version
    installed here (the versions the bundle's whipnb was tested with)."""
    torch = f"torch=={importlib.metadata.version('torch').split('+')[0]}"
    pinned = []
    for requirement in importlib.metadata.requires("whipnb") or []:
        if ";" in requirement:  # an extra (dask, test): not needed to grade
            continue
        name = re.split(r"[<>=!~\[ ]", requirement, maxsplit=1)[0]
        if name.lower() != "torch":
            pinned.append(f"{name}=={importlib.metadata.version(name)}")
    return torch, pinned


# ---------------------------------------------------------------- inside Gradescope


def run_inside(args: argparse.Namespace) -> int:
    """Grade the submission and write results.json; always exit 0 with a results file
    (Gradescope shows an autograder failure for a missing one, which helps nobody)."""
    root = Path(os.environ.get(ROOT_VARIABLE, DEFAULT_ROOT))
    config = json.loads(Path(args.config).read_text(encoding="utf-8"))
    results = grade_for_gradescope(root, config)
    target = root / "results" / RESULTS_JSON
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"score {results['score']}: {target}")
    return 0


def grade_for_gradescope(root: Path, config: dict[str, Any]) -> dict[str, Any]:
    from whipnb.gradebook.exports import gradescope_results
    from whipnb.gradebook.store import Gradebook, choose
    from whipnb.headless.batch import Batch
    from whipnb.headless.limits import Limits
    from whipnb.headless.sandbox import BWRAP, unavailable
    from whipnb.headless.submissions import find_notebooks, load_submission

    sandbox = config.get("sandbox", BWRAP)
    if sandbox == BWRAP and (problem := unavailable()) is not None:
        return cannot_sandbox(problem)

    learner = submitter(root / "submission_metadata.json")
    found = find_notebooks([root / "submission"]) if (root / "submission").is_dir() else []
    submissions = [replace(load_submission(path, base), learner=learner) for path, base in found]
    limits = Limits(config.get("timeout_s"), config.get("memory_mb", DEFAULT_MEMORY_MB))
    with (
        tempfile.TemporaryDirectory(prefix="whipnb-gradescope-") as scratch,
        Gradebook(Path(scratch) / "gradebook.sqlite") as gradebook,
    ):
        Batch(gradebook, limits, jobs=1, kernels_ahead=0, sandbox=sandbox).run(submissions)
        gradings = choose(gradebook.gradings())
    results = gradescope_results(
        gradings,
        config.get("points", 1.0),
        config.get("visibility", "visible"),
        config.get("test_visibility", "visible"),
        config.get("stdout_visibility", "hidden"),
        expected_tasks=config.get("tasks", []),
    )
    if not results["tests"]:
        results["tests"] = [nothing_submitted(config.get("points", 1.0))]
    results["extra_data"] |= {"learner": learner, "whipnb_version": __version__}
    return results


def submitter(metadata: Path) -> str:
    """The submitting learner from Gradescope's submission_metadata.json (e-mail, else
    name), or "submission" without one."""
    try:
        users: Sequence[dict[str, Any]] = json.loads(metadata.read_text())["users"]
        first = users[0]
        return str(first.get("email") or first.get("name") or "submission")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError):
        return "submission"


def cannot_sandbox(problem: str) -> dict[str, Any]:
    """Results that say why nothing was graded: learner code never runs unsandboxed
    unless the bundle was built with ``--sandbox none``."""
    message = (
        f"The autograder could not sandbox the grading kernel ({problem}). Nothing was "
        "graded; the instructor can rebuild the bundle with --sandbox none."
    )
    return {"score": 0.0, "output": message, "tests": [], "visibility": "visible"}


def nothing_submitted(points: float) -> dict[str, Any]:
    return {
        "score": 0.0,
        "max_score": points,
        "status": "failed",
        "name": "notebook",
        "output": "No notebook (.ipynb) was found in the submission: upload the notebook "
        "whose cell starts with %%whip_grade.",
        "output_format": "text",
        "visibility": "visible",
    }
