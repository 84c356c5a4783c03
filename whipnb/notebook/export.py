"""The headless grading kernel's export: the trained model as a graph, the result as data.

Nothing the kernel reports is trusted as it stands (see ``docs/SECURITY.md``,
"What decides the score"): after the graded cell the kernel writes, into a
folder the grader named before the learner's code ran,

* ``model.pt``: the model the assessment measured, traced with TorchScript
  into a graph without Python code, which a fresh process that never runs
  learner code measures on held-out data of its own;
* ``record.json``: the result as the assessment produced it, the shape of
  the traced example, and how many threads the learner's code left running.

The record is serialised here by hand, with functions captured when whipnb is
imported (before any learner code), so a patched ``json`` module cannot alter
it, and it is serialised before the model is traced, so the model's own code
cannot either.
"""

from __future__ import annotations

import contextlib
import io
import math
import sys
from json.encoder import encode_basestring_ascii
from pathlib import Path
from typing import Any

import torch

from whipnb.core.result import Result
from whipnb.core.runner import Run, single_thread
from whipnb.tasks import Task

EXPORT_FOLDER = ".whipnb-export"
MODEL_FILE = "model.pt"
RECORD_FILE = "record.json"
#: Version of the record's layout, checked by the grader.
RECORD_FORMAT = 1

_current_frames = sys._current_frames
_float_repr = float.__repr__
_int_repr = int.__repr__


def plain_json(value: Any) -> str:
    """JSON for plain data (None, bool, int, float, str, lists, dicts with string keys);
    anything else becomes its type name, so a learner's object cannot inject text."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return _int_repr(int(value))
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return _float_repr(float(value))
    if isinstance(value, str):
        return encode_basestring_ascii(str(value))
    if isinstance(value, list | tuple):
        return "[" + ",".join(plain_json(item) for item in value) + "]"
    if isinstance(value, dict):
        items = (f"{plain_json(str(key))}:{plain_json(item)}" for key, item in value.items())
        return "{" + ",".join(items) + "}"
    return plain_json(type(value).__name__)


def plain_bundle(result: Result) -> dict[str, Any]:
    """The result bundle's fields, built field by field (no ``json`` or ``dataclasses``)."""
    return {
        "task": result.task,
        "score": result.score,
        "band": result.band,
        "status": result.status,
        "checks": [
            {
                "id": c.id,
                "title": c.title,
                "passed": c.passed,
                "detail": c.detail,
                "diagnosis": c.diagnosis,
            }
            for c in result.checks
        ],
        "metrics": {key: _scalar(value) for key, value in result.metrics.items()},
        "message": result.message,
        "duration_s": result.duration_s,
        "version": result.version,
        "rubric_row": result.rubric_row,
        "rubric_key": result.rubric_key,
        "targets": dict(result.targets),
        "losses": [float(loss) for loss in result.losses],
        "tampering": list(result.tampering),
    }


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    try:
        return float(value)
    except (TypeError, ValueError):
        return repr(value)


class Exporter:
    """Picks the measured model when the run is assessed, writes both files afterwards."""

    def __init__(self, folder: Path, task: Task) -> None:
        self.folder = folder
        self.task = task
        self.threads_before = set(_current_frames())
        self.picked: Any = None
        self.pick_error = ""

    def pick(self, run: Run) -> None:
        """``on_assessed``: the model and example input the task measures."""
        measurement = self.task.measurement
        if measurement is None:
            self.pick_error = f"{self.task.id} has no outside measurement"
            return
        try:
            self.picked = measurement.model(run)
        except Exception as error:  # the learner's objects may be anything
            self.pick_error = f"{type(error).__name__}: {error}"

    def write(self, result: Result) -> None:
        """Serialise the result, then trace and save the model; never raises."""
        threads = len(set(_current_frames()) - self.threads_before)
        record: dict[str, Any] = {
            "format": RECORD_FORMAT,
            "task": self.task.id,
            "bundle": plain_bundle(result),
            "threads": threads,
        }
        text = plain_json(record)  # before tracing: the model's code runs while tracing
        self.folder.mkdir(parents=True, exist_ok=True)
        model_path = self.folder / MODEL_FILE
        shape, error = self._save_graph(model_path)
        extra = plain_json({"input_shape": shape, "export_error": error})
        (self.folder / RECORD_FILE).write_text(text[:-1] + "," + extra[1:], encoding="ascii")

    def _save_graph(self, path: Path) -> tuple[list[int] | None, str]:
        if self.picked is None:
            return None, self.pick_error or "no trained model was found to export"
        module, example = self.picked.module, self.picked.example
        was_training = module.training
        sink = io.StringIO()
        try:
            module.eval()
            with (
                torch.no_grad(),
                single_thread(),
                contextlib.redirect_stdout(sink),
                contextlib.redirect_stderr(sink),
            ):
                graph = torch.jit.trace(module, example, check_trace=False, strict=False)
                torch.jit.save(graph, str(path))
        except (Exception, SystemExit) as error:
            path.unlink(missing_ok=True)
            return None, f"the model could not be traced: {type(error).__name__}: {error}"[:500]
        finally:
            module.train(was_training)
        return list(example.shape), ""
