"""The result of grading one submission, and its serialised form (the result bundle).

The bundle is a contract read by the headless grader, the exports and other
tools, so its field names never change; new fields may be added.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from whipnb.version import __version__

RESULT_MIME = "application/vnd.whipnb.result+json"

#: The statuses (docs/CONTRACTS.md, 4).
GRADED = "graded"
TIMEOUT = "timeout"
MEMORY = "memory"
KERNEL_DIED = "kernel_died"
INVALID = "invalid"
STATUSES = (GRADED, TIMEOUT, MEMORY, KERNEL_DIED, INVALID)

#: The seed's "score interpretation" table, best first: (lowest score, label).
BAND_LABELS: tuple[tuple[float, str], ...] = (
    (0.90, "Excellent"),
    (0.70, "Good"),
    (0.40, "Partial"),
    (0.15, "Minimal"),
    (0.0, "Failed"),
)


def band_label(score: float) -> str:
    """Name the seed's interpretation band a score falls in."""
    for lowest, label in BAND_LABELS:
        if score >= lowest:
            return label
    return "Failed"


@dataclass(frozen=True)
class Check:
    """One finding about the submission, in words a learner understands."""

    id: str
    title: str
    passed: bool
    #: What was measured: the symptom and its evidence, never the fix (learners read it first).
    detail: str
    #: The cause and the fix, for instructors and agents who ask for it, and for the
    #: learner's last "show the fix" step (as learntools separates hint() from solution()).
    diagnosis: str = ""


@dataclass
class Result:
    """Everything the panel, the CLI and the exports need about one grading."""

    task: str
    score: float
    status: str
    checks: list[Check]
    metrics: dict[str, Any]
    message: str
    duration_s: float
    version: str
    rubric_row: str = ""
    #: The key of that rubric row (``fixed``, ``crash``...): stable where the condition's
    #: wording may change, so records and tests can name the row the grader chose.
    rubric_key: str = ""
    targets: dict[str, str] = field(default_factory=dict)
    losses: list[float] = field(default_factory=list)
    tampering: list[str] = field(default_factory=list)
    #: Headless only: how the code copies or reaches for the shipped reference solution.
    copying: list[str] = field(default_factory=list)

    @property
    def band(self) -> str:
        return band_label(self.score)

    @property
    def passed_all(self) -> bool:
        return bool(self.checks) and all(check.passed for check in self.checks)

    def without_diagnosis(self) -> Result:
        """The same result with every check's cause-and-fix removed: what a learner
        sees before asking for the fix, and what the API returns unless asked."""
        checks = [replace(check, diagnosis="") for check in self.checks]
        return replace(self, checks=checks)

    def to_bundle(self) -> dict[str, Any]:
        """The JSON object stored under RESULT_MIME (docs/CONTRACTS.md, 2).

        Strict JSON: a NaN or infinite number becomes ``null`` (a float NaN is not
        JSON, and Jupyter's messaging warns about it); ``nonfinite_metrics`` keeps
        which metrics they were, so :meth:`from_bundle` restores them.
        """
        bundle = asdict(self)
        bundle["band"] = self.band
        bundle["checks"] = [asdict(check) for check in self.checks]
        plain = json.loads(json.dumps(bundle, default=_jsonable))
        plain["nonfinite_metrics"] = {
            name: repr(value)
            for name, value in plain["metrics"].items()
            if isinstance(value, float) and not math.isfinite(value)
        }
        return _finite(plain)

    @classmethod
    def from_bundle(cls, bundle: dict[str, Any]) -> Result:
        fields = {key: bundle[key] for key in cls.__dataclass_fields__ if key in bundle}
        fields["checks"] = [Check(**check) for check in bundle.get("checks", [])]
        fields["losses"] = [math.nan if loss is None else loss for loss in bundle.get("losses", [])]
        nonfinite = bundle.get("nonfinite_metrics") or {}
        metrics = dict(bundle.get("metrics", {}))
        metrics.update({name: float(text) for name, text in nonfinite.items() if name in metrics})
        fields["metrics"] = metrics
        return cls(**fields)


def _jsonable(value: Any) -> Any:
    """Numbers from numpy or torch become plain floats; anything else its repr."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinite float replaced by ``None`` (JSON ``null``)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def failure_result(task_id: str, status: str, message: str, duration_s: float = 0.0) -> Result:
    """A record for a submission that could not be graded normally (docs/CONTRACTS.md, statuses)."""
    return Result(
        task=task_id,
        score=0.0,
        status=status,
        checks=[],
        metrics={},
        message=message,
        duration_s=round(duration_s, 3),
        version=__version__,
    )


def as_record(path: str | Path, result: Result, diagnosis: bool = False) -> dict[str, Any]:
    """The JSON record of docs/CONTRACTS.md, 3 (the CLI adds learner and more); each
    check's ``diagnosis`` (cause and fix) only when asked for."""
    bundle = result.to_bundle()
    if not diagnosis:
        bundle["checks"] = [
            {key: value for key, value in check.items() if key != "diagnosis"}
            for check in bundle["checks"]
        ]
    keys = (
        "task",
        "score",
        "band",
        "status",
        "checks",
        "metrics",
        "message",
        "duration_s",
        "tampering",
    )
    return {"path": str(path), **{key: bundle[key] for key in keys}}
