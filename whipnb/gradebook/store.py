"""The gradebook: every grading of every submission, in one SQLite file.

Each grading is committed the moment it is known, so a grader killed halfway
loses nothing that finished; re-running the batch asks :meth:`Gradebook.reusable`
before starting a kernel.  A grading is reused when the same learner's file has
the same content (SHA-256) and was graded by the same grader (whipnb version
plus a fingerprint of the task's grading code, so a changed task never serves
stale grades);
a submission stopped by a limit is graded again when that limit changed.
Grading only ever adds rows, so the history of resubmissions stays; only an
instructor's explicit ``whipnb gradebook remove`` deletes any.

Two files can map to one learner and task (a resubmission under a new name,
two copies in one folder): both are kept, and :meth:`Gradebook.latest` picks
one per learner and task by a stated rule, saying which and why
(:class:`Grading` ``chosen_because``), so an export never replaces a grade
silently.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from whipnb.core.result import MEMORY, TIMEOUT, Result, as_record
from whipnb.tasks import task_order
from whipnb.version import __version__

DEFAULT_DB = "whipnb-gradebook.sqlite"


class SubmissionLike(Protocol):
    """What the gradebook keeps of a submission (the headless layer's ``Submission``
    satisfies it; the gradebook sits below that layer and never imports it)."""

    @property
    def path(self) -> Path: ...
    @property
    def learner(self) -> str: ...
    @property
    def content_hash(self) -> str: ...
    @property
    def task(self) -> str: ...


SCHEMA = """
CREATE TABLE IF NOT EXISTS gradings (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    learner TEXT NOT NULL,
    task TEXT NOT NULL,
    path TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    score REAL NOT NULL,
    band TEXT NOT NULL,
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    checks TEXT NOT NULL,       -- JSON list of {id, title, passed, detail}
    metrics TEXT NOT NULL,      -- JSON object
    tampering TEXT NOT NULL,    -- JSON list of findings
    bundle TEXT NOT NULL,       -- the whole result bundle (docs/CONTRACTS.md, 2), JSON
    duration_s REAL NOT NULL,
    timeout_s REAL,             -- the limits it ran under
    memory_mb INTEGER,
    started_at TEXT NOT NULL,   -- ISO 8601, UTC
    finished_at TEXT NOT NULL,
    version TEXT NOT NULL,      -- whipnb's version
    grader TEXT NOT NULL,       -- version + fingerprint of the grading code
    file_mtime REAL,            -- the file's modification time (Unix seconds) when graded
    source TEXT NOT NULL DEFAULT '', -- the graded cell's code (for the similarity report)
    sandbox TEXT NOT NULL DEFAULT 'none'  -- what the code ran under: bwrap or none
);
CREATE INDEX IF NOT EXISTS gradings_by_content ON gradings (learner, content_hash, grader);
"""
#: Columns added after the first release, with their SQL type: an older gradebook gets
#: them on opening (its rows have no modification time and no source).
ADDED_COLUMNS = {
    "file_mtime": "REAL",
    "source": "TEXT NOT NULL DEFAULT ''",
    "sandbox": "TEXT NOT NULL DEFAULT 'none'",
}


#: Parts of the package that never change a score: editing them keeps the gradebook's
#: grades (sub-packages by name, single modules by their path in the package).
FRONT_ENDS = frozenset({"cli", "gradebook", "authoring", "notebook/panel.py"})


@cache
def grader_id(task: str) -> str:
    """whipnb's version and a fingerprint of the code that grades ``task``: the shared
    grading modules and that task's own folder.  Edited grading code (a changed rubric,
    a fixed probe) never reuses grades made by the old code; editing another task does."""
    package = Path(__file__).parent.parent
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package).parts
        in_task_folder = parts[0] == "tasks" and len(parts) > 2
        front_end = parts[0] in FRONT_ENDS or "/".join(parts) in FRONT_ENDS
        if (in_task_folder and parts[1] != task) or front_end:
            continue
        digest.update("/".join(parts).encode())
        digest.update(path.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Grading:
    """One row of the gradebook."""

    id: int
    learner: str
    path: str
    content_hash: str
    result: Result
    timeout_s: float | None
    memory_mb: int | None
    started_at: str
    finished_at: str
    version: str
    grader: str
    file_mtime: float | None = None
    #: The graded cell's code ("" when the notebook could not be read).
    source: str = ""
    #: Set by :meth:`Gradebook.latest`: why this grading stands for its learner and task,
    #: and the other files that mapped to the same learner and task.
    chosen_because: str = ""
    other_files: tuple[str, ...] = ()
    sandbox: str = "none"

    def record(self, path: str | Path | None = None) -> dict[str, Any]:
        """The JSON record (docs/CONTRACTS.md, 3), plus who, what content and when (and, once
        chosen by :meth:`Gradebook.latest`, why this one)."""
        extra: dict[str, Any] = {}
        if self.chosen_because:
            extra = {"chosen_because": self.chosen_because, "other_files": list(self.other_files)}
        return grading_record(
            self.result,
            path if path is not None else self.path,
            learner=self.learner,
            content_hash=self.content_hash,
            graded_at=self.finished_at,
            sandbox=self.sandbox,
            id=self.id,
            **extra,
        )


def grading_record(result: Result, path: str | Path, **extra: Any) -> dict[str, Any]:
    """Contract 3's record, then ``extra``, the tampering findings and the version."""
    return {
        **as_record(path, result),
        **extra,
        "tampering": list(result.tampering),
        "copying": list(result.copying),
        "version": result.version,
    }


class Gradebook:
    """An SQLite gradebook; one connection, used from one thread."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.connection = sqlite3.connect(self.path, timeout=30)
        self.connection.row_factory = sqlite3.Row
        with self.connection:
            self.connection.executescript(SCHEMA)
            present = {
                row["name"] for row in self.connection.execute("PRAGMA table_info(gradings)")
            }
            for column, kind in ADDED_COLUMNS.items():
                if column not in present:
                    self.connection.execute(f"ALTER TABLE gradings ADD COLUMN {column} {kind}")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> Gradebook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self,
        submission: SubmissionLike,
        result: Result,
        *,
        timeout_s: float | None,
        memory_mb: int | None,
        started_at: str,
        sandbox: str = "none",
    ) -> Grading:
        """Record one grading and commit it at once."""
        bundle = result.to_bundle()
        row = {
            "learner": submission.learner,
            "task": result.task,
            "path": str(submission.path),
            "content_hash": submission.content_hash,
            "score": result.score,
            "band": result.band,
            "status": result.status,
            "message": result.message,
            "checks": json.dumps(bundle["checks"]),
            "metrics": json.dumps(bundle["metrics"]),
            "tampering": json.dumps(bundle.get("tampering", [])),
            "bundle": json.dumps(bundle),
            "duration_s": result.duration_s,
            "timeout_s": timeout_s,
            "memory_mb": memory_mb,
            "started_at": started_at,
            "finished_at": now(),
            "version": __version__,
            "grader": grader_id(result.task),
            "sandbox": sandbox,
            "file_mtime": _mtime(submission.path),
            "source": _source(submission),
        }
        columns = ", ".join(row)
        marks = ", ".join(f":{key}" for key in row)
        with self.connection:
            cursor = self.connection.execute(
                f"INSERT INTO gradings ({columns}) VALUES ({marks})", row
            )
        return self.get(int(cursor.lastrowid or 0))

    def get(self, grading_id: int) -> Grading:
        row = self.connection.execute("SELECT * FROM gradings WHERE id = ?", (grading_id,))
        return _grading(row.fetchone())

    def reusable(
        self,
        submission: SubmissionLike,
        timeout_s: float | None,
        memory_mb: int | None,
        sandbox: str = "none",
    ) -> Grading | None:
        """The latest grading of this learner's identical file by this grader under the
        same sandbox, unless it was stopped by a limit that has changed since."""
        if not submission.content_hash:
            return None
        row = self.connection.execute(
            "SELECT * FROM gradings WHERE learner = ? AND content_hash = ? AND grader = ?"
            " AND sandbox = ? ORDER BY id DESC LIMIT 1",
            (submission.learner, submission.content_hash, grader_id(submission.task), sandbox),
        ).fetchone()
        if row is None:
            return None
        grading = _grading(row)
        status = grading.result.status
        if (status == TIMEOUT and grading.timeout_s != timeout_s) or (
            status == MEMORY and grading.memory_mb != memory_mb
        ):
            return None
        return grading

    def gradings(self) -> Iterator[Grading]:
        """Every grading, oldest first."""
        for row in self.connection.execute("SELECT * FROM gradings ORDER BY id"):
            yield _grading(row)

    def latest(self) -> list[Grading]:
        """One grading per learner and task, what the exports report, each saying why
        it was chosen (:func:`choose`)."""
        return choose(self.gradings())

    def remove(self, ids: Iterable[int]) -> int:
        """Delete these gradings (an instructor's explicit request); returns how many."""
        wanted = [(grading_id,) for grading_id in ids]
        with self.connection:
            cursor = self.connection.executemany("DELETE FROM gradings WHERE id = ?", wanted)
        return cursor.rowcount


def choose(gradings: Iterable[Grading]) -> list[Grading]:
    """One grading per learner and task, sorted by learner and task.

    Per file (path), only its newest grading counts: a file graded again (resubmitted
    in place, a new whipnb) replaces its older gradings.  When several files map to the
    same learner and task, the newest file wins, by the modification time recorded
    when it was graded (a file with none counts as oldest), then by the newest grading;
    the winner's ``chosen_because`` says so and ``other_files`` names the others.
    """
    newest_per_file: dict[tuple[str, str, str], Grading] = {}
    for grading in gradings:
        newest_per_file[(grading.learner, grading.result.task, grading.path)] = grading
    groups: dict[tuple[str, str], list[Grading]] = defaultdict(list)
    for (learner, task, _path), grading in newest_per_file.items():
        groups[(learner, task)].append(grading)
    chosen = [_pick(own) for own in groups.values()]
    return sorted(chosen, key=lambda g: (g.learner, task_order(g.result.task)))


def _pick(candidates: Sequence[Grading]) -> Grading:
    if len(candidates) == 1:
        return replace(candidates[0], chosen_because="the only file for this learner and task")
    ordered = sorted(candidates, key=lambda g: (g.file_mtime or float("-inf"), g.id))
    winner, others = ordered[-1], ordered[:-1]
    when = (
        datetime.fromtimestamp(winner.file_mtime, timezone.utc).isoformat(timespec="seconds")
        if winner.file_mtime is not None
        else "unknown"
    )
    reason = (
        f"the newest of {len(candidates)} files for this learner and task "
        f"(modified {when}; ties: the latest grading)"
    )
    return replace(winner, chosen_because=reason, other_files=tuple(g.path for g in others))


def task_checks(gradings: Iterable[Grading]) -> dict[str, dict[str, str]]:
    """``task -> {check id: title}``: every check seen for each task, in the order the
    task reports them."""
    checks: dict[str, dict[str, str]] = defaultdict(dict)
    for grading in gradings:
        for check in grading.result.checks:
            checks[grading.result.task].setdefault(check.id, check.title)
    return dict(checks)


def check_passed(grading: Grading, check_id: str) -> bool:
    """Whether this submission passed the check.  Every submission counts: one that was
    not graded (stopped, unreadable) or never reached the check did not pass it."""
    return any(check.id == check_id and check.passed for check in grading.result.checks)


def duplicate_groups(submissions: Iterable[SubmissionLike]) -> dict[tuple[str, str], list[str]]:
    """``(learner, task) -> paths`` for every learner and task that more than one file
    maps to: both are graded and kept, and the instructor is told."""
    paths: dict[tuple[str, str], list[str]] = defaultdict(list)
    for submission in submissions:
        paths[(submission.learner, submission.task)].append(str(submission.path))
    return {key: own for key, own in paths.items() if len(own) > 1}


def _mtime(path: Path) -> float | None:
    try:
        return Path(path).stat().st_mtime
    except OSError:
        return None


def _source(submission: SubmissionLike) -> str:
    """The graded cell's code, when the submission carries one (the headless layer's
    ``Submission.cell``); kept so similar submissions can be found later."""
    cell = getattr(submission, "cell", None)
    body = getattr(cell, "body", "")
    return body if isinstance(body, str) else ""


def _grading(row: sqlite3.Row) -> Grading:
    return Grading(
        id=row["id"],
        learner=row["learner"],
        path=row["path"],
        content_hash=row["content_hash"],
        result=Result.from_bundle(json.loads(row["bundle"])),
        timeout_s=row["timeout_s"],
        memory_mb=row["memory_mb"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        version=row["version"],
        grader=row["grader"],
        sandbox=row["sandbox"],
        file_mtime=row["file_mtime"],
        source=row["source"] or "",
    )
