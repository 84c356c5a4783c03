"""The gradebook: every grading of every submission, in one SQLite file.

Each grading is committed the moment it is known, so a grader killed halfway
loses nothing that finished; re-running the batch asks :meth:`Gradebook.reusable`
before starting a kernel.  A grading is reused when the same learner's file has
the same content (SHA-256) and was graded by the same grader (whipnb version
plus a fingerprint of the task's grading code, so a changed task never serves
stale grades);
a submission stopped by a limit is graded again when that limit changed.
Gradings are only ever added, so the history of resubmissions stays.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Protocol

from whipnb.core.result import MEMORY, TIMEOUT, Result, as_record
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
    grader TEXT NOT NULL        -- version + fingerprint of the grading code
);
CREATE INDEX IF NOT EXISTS gradings_by_content ON gradings (learner, content_hash, grader);
"""


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

    def record(self, path: str | Path | None = None) -> dict[str, Any]:
        """The JSON record (docs/CONTRACTS.md, 3), plus who, what content and when."""
        return grading_record(
            self.result,
            path if path is not None else self.path,
            learner=self.learner,
            content_hash=self.content_hash,
            graded_at=self.finished_at,
        )


def grading_record(result: Result, path: str | Path, **extra: Any) -> dict[str, Any]:
    """Contract 3's record, then ``extra``, the tampering findings and the version."""
    return {
        **as_record(path, result),
        **extra,
        "tampering": list(result.tampering),
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
        self, submission: SubmissionLike, timeout_s: float | None, memory_mb: int | None
    ) -> Grading | None:
        """The latest grading of this learner's identical file by this grader, unless it
        was stopped by a limit that has changed since."""
        if not submission.content_hash:
            return None
        row = self.connection.execute(
            "SELECT * FROM gradings WHERE learner = ? AND content_hash = ? AND grader = ?"
            " ORDER BY id DESC LIMIT 1",
            (submission.learner, submission.content_hash, grader_id(submission.task)),
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
        """The newest grading of each learner and task: what the exports report."""
        newest: dict[tuple[str, str], Grading] = {}
        for grading in self.gradings():
            newest[(grading.learner, grading.result.task)] = grading
        return sorted(newest.values(), key=lambda g: (g.learner, task_order(g.result.task)))


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
    )


def task_order(task: str) -> tuple[int, str]:
    number = task.removeprefix("task")
    return (int(number), task) if number.isdigit() else (10**6, task)
