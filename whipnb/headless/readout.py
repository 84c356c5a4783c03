"""Strict parsing of everything a grading kernel hands back: the read-out cell's bundle
and the exported record (:mod:`whipnb.notebook.export`).

Both come from a process that ran learner code, so both are hostile input:
every field is checked for type, range and size, the task id must be the one
graded, the rubric row must be one of the task's own, and anything else is a
:class:`ReadoutError` with a reason a person can read, which the grader
records for that submission (never an exception in the batch).
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from whipnb.core.result import GRADED, MEMORY, RESULT_MIME, Check, Result
from whipnb.notebook.export import MODEL_FILE, RECORD_FILE, RECORD_FORMAT
from whipnb.tasks import Task

#: A genuine record is a few kilobytes (the losses dominate); this leaves ample room.
MAX_RECORD_BYTES = 4 * 2**20
MAX_TEXT = 20_000
MAX_CHECKS = 100
MAX_METRICS = 100
MAX_LOSSES = 200_000
MAX_FINDINGS = 100
#: The six tasks' graphs are well below 1 MB; a graph past this is not measured.
MAX_GRAPH_BYTES = 64 * 2**20
#: Statuses a kernel may report; the others are the grader's own conclusions.
KERNEL_STATUSES = (GRADED, MEMORY)


class ReadoutError(ValueError):
    """What came back from a kernel is not a result the grader can use, and why."""


class Export:
    """The kernel's exported files, copied into a folder of the grader's own before the
    kernel's folder is removed: only regular files (no links), each of bounded size."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="whipnb-export-")
        self.folder = Path(self._folder.name)

    @classmethod
    def collect(cls, source: Path) -> Export:
        export = cls()
        for name, limit in ((RECORD_FILE, MAX_RECORD_BYTES), (MODEL_FILE, MAX_GRAPH_BYTES)):
            _copy_bounded(source / name, export.folder / name, limit)
        return export

    def cleanup(self) -> None:
        self._folder.cleanup()


def _copy_bounded(source: Path, target: Path, limit: int) -> None:
    """Copy ``source`` if it is a regular file (never through a link) of at most ``limit``
    bytes; a larger one is cut at ``limit + 1`` bytes, which its reader then refuses."""
    try:
        descriptor = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return
    with os.fdopen(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
            return
        target.write_bytes(file.read(limit + 1))


@dataclass(frozen=True)
class ExportRecord:
    """The kernel's exported record, validated."""

    result: Result
    #: Python threads the learner's code left running when grading finished.
    threads: int
    #: Shape of the example the model was traced with (None: no graph was exported).
    input_shape: tuple[int, ...] | None
    export_error: str


def displayed_bundle(outputs: list[dict[str, Any]]) -> Any:
    """The one result bundle among the read-out cell's outputs, unparsed."""
    bundles = [
        output.get("data", {}).get(RESULT_MIME)
        for output in outputs
        if isinstance(output, dict)
        and isinstance(output.get("data"), dict)
        and RESULT_MIME in output["data"]
    ]
    if len(bundles) != 1:
        raise ReadoutError(f"the read-out cell displayed {len(bundles)} result bundles, not one")
    return bundles[0]


def read_record(folder: Path, task: Task) -> ExportRecord:
    """The exported record in ``folder``: a regular file of bounded size, strict JSON."""
    path = folder / RECORD_FILE
    try:
        info = os.lstat(path)
    except OSError:
        raise ReadoutError(
            "the grading exported no record (the kernel never finished it)"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise ReadoutError("the exported record is not a regular file")
    if info.st_size > MAX_RECORD_BYTES:
        raise ReadoutError(f"the exported record is {info.st_size:,} bytes, over the limit")
    data = _loads(path.read_bytes()[: MAX_RECORD_BYTES + 1])
    _require(isinstance(data, dict), "the exported record is not a JSON object")
    _require(data.get("format") == RECORD_FORMAT, "the exported record has an unknown format")
    _require(data.get("task") == task.id, f"the exported record is not for {task.id}")
    threads = data.get("threads")
    _require(_is_int(threads) and 0 <= threads < 10_000, "the record's thread count is invalid")
    shape = data.get("input_shape")
    if shape is not None:
        _require(
            isinstance(shape, list)
            and 1 <= len(shape) <= 6
            and all(_is_int(n) and 0 < n <= 1_000_000 for n in shape),
            "the record's input shape is invalid",
        )
        shape = tuple(shape)
    error = data.get("export_error")
    _require(isinstance(error, str) and len(error) <= MAX_TEXT, "the record's export error")
    return ExportRecord(parse_bundle(data.get("bundle"), task), threads, shape, error)


def parse_bundle(bundle: Any, task: Task) -> Result:
    """A :class:`Result` from a bundle, or :class:`ReadoutError` saying what is wrong."""
    _require(isinstance(bundle, dict), "the result bundle is not a JSON object")
    _require(bundle.get("task") == task.id, f"the result names task {_shown(bundle.get('task'))}")
    score = bundle.get("score")
    _require(_is_number(score), f"the score {_shown(score)} is not a number")
    _require(0.0 <= score <= 1.0, f"the score {score!r} is outside [0, 1]")
    status = bundle.get("status")
    _require(status in KERNEL_STATUSES, f"the status {_shown(status)} is not one a kernel reports")
    conditions = {row.condition: row for row in task.rows}
    condition = bundle.get("rubric_row")
    _require(
        condition in conditions, f"the rubric row {_shown(condition)} is not one of the task's"
    )
    row = conditions[condition]
    _require(row.low - 1e-9 <= score <= row.high + 1e-9, f"the score {score} is outside its row")
    return Result(
        task=task.id,
        score=float(score),
        status=status,
        checks=_checks(bundle.get("checks")),
        metrics=_metrics(bundle.get("metrics"), bundle.get("nonfinite_metrics", {})),
        message=_text(bundle.get("message"), "message"),
        duration_s=_duration(bundle.get("duration_s")),
        version=_text(bundle.get("version"), "version"),
        rubric_row=condition,
        rubric_key=row.key,
        targets=_targets(bundle.get("targets")),
        losses=_losses(bundle.get("losses")),
        tampering=_strings(bundle.get("tampering"), "tampering", MAX_FINDINGS),
    )


def row_key(task: Task, result: Result) -> str:
    """The key of the row a parsed result names."""
    return next(row.key for row in task.rows if row.condition == result.rubric_row)


def _loads(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ReadoutError(
            f"the exported record is not valid JSON ({type(error).__name__})"
        ) from None


def _require(condition: bool, reason: str) -> None:
    if not condition:
        raise ReadoutError(reason)


def _shown(value: Any) -> str:
    text = (
        repr(value)
        if isinstance(value, str | int | float | bool | type(None))
        else type(value).__name__
    )
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _text(value: Any, what: str) -> str:
    _require(isinstance(value, str), f"the {what} is not text")
    _require(len(value) <= MAX_TEXT, f"the {what} is {len(value):,} characters long")
    return value


def _strings(value: Any, what: str, most: int) -> list[str]:
    _require(isinstance(value, list) and len(value) <= most, f"the {what} is not a short list")
    return [_text(item, what) for item in value]


def _checks(value: Any) -> list[Check]:
    _require(
        isinstance(value, list) and len(value) <= MAX_CHECKS, "the checks are not a short list"
    )
    checks = []
    for item in value:
        _require(isinstance(item, dict), "a check is not an object")
        passed = item.get("passed")
        _require(isinstance(passed, bool), "a check's 'passed' is not true or false")
        checks.append(
            Check(
                _text(item.get("id"), "check id"),
                _text(item.get("title"), "check title"),
                passed,
                _text(item.get("detail"), "check detail"),
                _text(item.get("diagnosis", ""), "check diagnosis"),
            )
        )
    return checks


def _metrics(value: Any, nonfinite: Any) -> dict[str, Any]:
    """The metrics, with those sent as ``null`` restored from ``nonfinite_metrics``
    (``{"name": "nan"}``), as :meth:`Result.to_bundle` sends NaN and infinities."""
    _require(
        isinstance(value, dict) and len(value) <= MAX_METRICS, "the metrics are not a small object"
    )
    _require(
        isinstance(nonfinite, dict)
        and len(nonfinite) <= MAX_METRICS
        and all(isinstance(v, str) and v in JUPYTER_FLOATS for v in nonfinite.values()),
        "the non-finite metrics are not a small object of 'nan', 'inf' or '-inf'",
    )
    metrics: dict[str, Any] = {}
    for key, item in value.items():
        _text(key, "metric name")
        ok = (
            item is None
            or isinstance(item, bool | int | float)
            or (isinstance(item, str) and len(item) <= 200)
        )
        _require(ok, f"the metric {key[:40]!r} is not a number, flag or short text")
        metrics[key] = item
    for key, text in nonfinite.items():
        _require(metrics.get(key, 0.0) is None, f"the metric {key[:40]!r} is not a null to restore")
        metrics[key] = JUPYTER_FLOATS[text]
    return metrics


def _targets(value: Any) -> dict[str, str]:
    _require(isinstance(value, dict) and len(value) <= MAX_METRICS, "the targets are not an object")
    return {_text(key, "target"): _text(item, "target") for key, item in value.items()}


#: How Jupyter's messages carry the floats JSON has no word for.
JUPYTER_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def jupyter_float(value: Any) -> Any:
    """``"nan"``, ``"inf"``, ``"-inf"`` (and ``null``) as Jupyter's messages write
    non-finite floats, back as floats; anything else unchanged."""
    if value is None:
        return math.nan
    if isinstance(value, str) and value in JUPYTER_FLOATS:
        return JUPYTER_FLOATS[value]
    return value


def _losses(value: Any) -> list[float]:
    _require(isinstance(value, list) and len(value) <= MAX_LOSSES, "the losses are not a list")
    losses = [jupyter_float(x) for x in value]
    _require(
        all(isinstance(x, int | float) and not isinstance(x, bool) for x in losses),
        "a loss is not a number",
    )
    return [float(x) for x in losses]


def _duration(value: Any) -> float:
    _require(_is_number(value) and 0 <= value < 1e7, "the duration is not a time")
    return float(value)
