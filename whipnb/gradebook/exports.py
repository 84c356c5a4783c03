"""Exports of the gradebook: for a spreadsheet, an LMS, scripts and Gradescope.

All exports report one grading per learner and task, chosen by
:meth:`~whipnb.gradebook.store.Gradebook.latest` (the newest file when several map to
the same learner and task; the long CSV and the JSON say which and why):

- ``long`` CSV: one row per learner and task (learner, task, score, band, status, ...),
  a ``check:<id>`` column per check (1 passed, 0 not);
- ``wide`` CSV: one row per learner, per task a score column and a ``<task>:<check>``
  column per check, and a total;
- JSON: the records of docs/CONTRACTS.md (3), with learner, content hash and time;
- Gradescope: ``<learner>/results.json`` per learner in Gradescope's autograder
  format, one test per task (the points) and one per check (the findings).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from whipnb.core.result import GRADED
from whipnb.gradebook.store import Grading, check_passed, task_checks
from whipnb.tasks import UnknownTaskError, get_task, task_order

LONG_FIELDS = (
    "learner",
    "task",
    "score",
    "band",
    "status",
    "message",
    "path",
    "content_hash",
    "graded_at",
    "version",
    "files",
    "chosen_because",
    "other_files",
)
#: Gradescope's documented visibility settings.
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
RESULTS_JSON = "results.json"


def write_long_csv(path: str | Path, gradings: Sequence[Grading]) -> None:
    """One row per learner and task; ``check:<id>`` is 1 when the submission passed that
    check, 0 when it did not (or was not graded, so never showed it), empty when the
    check belongs to another task."""
    checks = task_checks(gradings)
    check_ids = list(dict.fromkeys(key for own in checks.values() for key in own))
    rows = []
    for grading in gradings:
        own = checks.get(grading.result.task, {})
        row = grading.record() | {
            "graded_at": grading.finished_at,
            "files": 1 + len(grading.other_files),
            "other_files": " ".join(grading.other_files),
        }
        row.update({f"check:{key}": int(check_passed(grading, key)) for key in own})
        rows.append(row)
    _write_csv(path, (*LONG_FIELDS, *(f"check:{key}" for key in check_ids)), rows)


def write_wide_csv(path: str | Path, gradings: Sequence[Grading]) -> None:
    """One row per learner: per task its score (empty when not submitted) and a
    ``<task>:<check>`` column per check (1 passed, 0 not, empty when not submitted),
    the total, and ``chosen`` naming the files chosen among several for one task."""
    tasks = task_columns(gradings)
    checks = task_checks(gradings)
    columns = [
        column
        for task in tasks
        for column in (task, *(f"{task}:{key}" for key in checks.get(task, {})))
    ]
    rows: dict[str, dict[str, Any]] = {}
    for grading in gradings:
        row = rows.setdefault(grading.learner, {"learner": grading.learner, "total": 0.0})
        task = grading.result.task
        if task not in tasks:
            continue
        row[task] = grading.result.score
        row["total"] = round(row["total"] + grading.result.score, 4)
        row.update(
            {f"{task}:{key}": int(check_passed(grading, key)) for key in checks.get(task, {})}
        )
        if grading.other_files:
            chosen = f"{task}: {grading.path} ({grading.chosen_because})"
            row["chosen"] = "; ".join(filter(None, (row.get("chosen"), chosen)))
    ordered = [rows[learner] for learner in sorted(rows)]
    _write_csv(path, ("learner", *columns, "total", "chosen"), ordered)


def write_json(path: str | Path, gradings: Sequence[Grading]) -> None:
    records = [grading.record() for grading in gradings]
    with atomic_output(path) as handle:
        handle.write(json.dumps(records, indent=2) + "\n")


def task_columns(gradings: Sequence[Grading]) -> list[str]:
    """The known tasks among the gradings, in task order (unknown names have no column)."""
    known = set()
    for grading in gradings:
        try:
            known.add(get_task(grading.result.task).id)
        except UnknownTaskError:
            continue
    return sorted(known, key=task_order)


def write_gradescope(
    folder: str | Path,
    gradings: Sequence[Grading],
    *,
    points: float = 1.0,
    visibility: str = "visible",
    test_visibility: str = "visible",
    stdout_visibility: str = "hidden",
) -> list[Path]:
    """Write ``<folder>/<learner>/results.json`` for every learner; returns the files."""
    for setting in (visibility, test_visibility, stdout_visibility):
        if setting not in VISIBILITIES:
            raise ValueError(f"unknown visibility {setting!r}; one of {', '.join(VISIBILITIES)}")
    by_learner: dict[str, list[Grading]] = defaultdict(list)
    for grading in gradings:
        by_learner[grading.learner].append(grading)
    written = []
    for learner, own in sorted(by_learner.items()):
        results = gradescope_results(own, points, visibility, test_visibility, stdout_visibility)
        target = Path(folder) / safe_name(learner) / RESULTS_JSON
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.parent.is_symlink():
            raise OSError(f"{target.parent} is a symbolic link: not written through")
        with atomic_output(target) as handle:
            handle.write(json.dumps(results, indent=2) + "\n")
        written.append(target)
    return written


def gradescope_results(
    gradings: Sequence[Grading],
    points: float,
    visibility: str,
    test_visibility: str,
    stdout_visibility: str,
    expected_tasks: Sequence[str] = (),
) -> dict[str, Any]:
    """One learner's results: a scored test per task (score x points), then an unscored
    pass/fail test per check, whose output is the finding in words.  Each of
    ``expected_tasks`` without a grading gets a failed test worth 0 of ``points``, so
    the maximum score stays the same for every submission."""
    tests: list[dict[str, Any]] = []
    graded_tasks = {grading.result.task for grading in gradings}
    for number, task in enumerate(
        (task for task in expected_tasks if task not in graded_tasks), start=len(gradings) + 1
    ):
        tests.append(
            {
                "score": 0.0,
                "max_score": points,
                "status": "failed",
                "name": f"{task}: {_title(task)}",
                "number": str(number),
                "output": f"{task}: no notebook with a '%%whip_grade {task}' cell was submitted.",
                "output_format": "text",
                "tags": [task, "missing"],
                "visibility": visibility,
            }
        )
    for number, grading in enumerate(gradings, start=1):
        result = grading.result
        tests.append(
            {
                "score": round(result.score * points, 4),
                "max_score": points,
                "status": "passed" if result.passed_all else "failed",
                "name": f"{result.task}: {_title(result.task)}",
                "number": str(number),
                "output": _task_output(grading),
                "output_format": "text",
                "tags": [result.task, result.status],
                "visibility": visibility,
            }
        )
        tests.extend(
            {
                "status": "passed" if check.passed else "failed",
                "name": f"{result.task}: {check.title}",
                "number": f"{number}.{index}",
                "output": check.detail,
                "output_format": "text",
                "tags": [result.task, check.id],
                "visibility": test_visibility,
            }
            for index, check in enumerate(result.checks, start=1)
        )
    tests.sort(key=lambda test: [int(part) for part in test["number"].split(".")])
    return {
        "score": round(sum(test.get("score", 0.0) for test in tests), 4),
        "execution_time": round(sum(g.result.duration_s for g in gradings), 3),
        "output": "\n".join(_task_output(grading) for grading in gradings)
        or "No gradable notebook was found in the submission.",
        "output_format": "text",
        "visibility": visibility,
        "stdout_visibility": stdout_visibility,
        "extra_data": {
            "learner": gradings[0].learner if gradings else "",
            "whipnb_version": gradings[0].version if gradings else "",
            "submissions": [
                {
                    "task": g.result.task,
                    "path": g.path,
                    "content_hash": g.content_hash,
                    "status": g.result.status,
                    "graded_at": g.finished_at,
                }
                for g in gradings
            ],
        },
        "tests": tests,
    }


def safe_name(learner: str) -> str:
    """A learner id usable as one folder name."""
    return re.sub(r"[^\w.@+-]+", "_", learner).strip("._") or "_"


def _task_output(grading: Grading) -> str:
    result = grading.result
    head = f"{result.task}: score {result.score:.3f} ({result.band})"
    if result.status != GRADED:
        head += f", not graded: {result.status}"
    return f"{head}. {result.message}".strip()


def _title(task: str) -> str:
    try:
        return get_task(task).title
    except UnknownTaskError:
        return "unreadable submission"


def _write_csv(path: str | Path, fields: Sequence[str], rows: Sequence[dict[str, Any]]) -> None:
    with atomic_output(path) as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


@contextlib.contextmanager
def atomic_output(path: str | Path) -> Iterator[IO[str]]:
    """Write a text file all at once or not at all, never through a symbolic link.

    The text goes to a new file created beside ``path`` (``O_EXCL``, so nobody else's),
    which then replaces ``path`` by ``rename``: a reader sees the old file or the whole
    new one, and a symbolic link standing at ``path`` is replaced itself, its target
    never opened.  On an error the old file stays as it was.
    """
    target = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(descriptor, "w", newline="", encoding="utf-8") as handle:
            yield handle
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
