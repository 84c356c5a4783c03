"""The grader's own decision: what the kernel claims, checked against what was measured
outside it.

The kernel's result (read-out cell and exported record, validated by
:mod:`whipnb.headless.readout`) is a claim.  It is recorded only when

* the read-out and the record agree (nothing rewrote the result after grading;
  threads the learner left running are reported);
* every held-out metric the kernel reports matches the exported graph measured
  on the same public held-out set (the model the kernel assessed is the model
  that was exported, and nothing doctored the numbers);
* the graph does not do markedly better on the public held-out set than on a
  fresh set from the instructor's secret (no model that knows the public set);
* the claimed rubric row is one the measured model can be in and its score is
  no higher than the row gives those metrics
  (:meth:`~whipnb.tasks.measure.Measurement.supported`).

Anything else means the claim cannot be taken at its word: the run gets the
lowest row at its bottom, and the record says what was found.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from whipnb.core.result import GRADED, Check, Result
from whipnb.headless.measure import Measured
from whipnb.headless.readout import ExportRecord, ReadoutError, jupyter_float, row_key
from whipnb.tasks import Task
from whipnb.tasks.measure import Compared

#: Scores are rounded to four digits; a claim may exceed the supported score by rounding.
SCORE_SLACK = 1e-4
OUTSIDE_PREFIX = "outside_"
#: A model's held-out loss beyond this multiple of its final training loss (plus the
#: margin) cannot come from the recorded training run, where a task says so.
LOSS_OVERFIT_FACTOR = 3.0
LOSS_OVERFIT_MARGIN = 1.0


def decide(
    task: Task,
    shown: Result | ReadoutError,
    record: ExportRecord | ReadoutError,
    measured: Measured,
) -> Result:
    """The recorded result of one grading (see the module)."""
    if isinstance(record, ReadoutError):
        return void(task, [f"the grading's exported record is unusable: {record}"], measured)
    claimed = record.result
    findings = _consistency(shown, record)
    findings += _measured_findings(task, claimed, measured)
    if findings:
        return void(task, findings + _thread_notes(record), measured, claimed)
    claimed.tampering += _thread_notes(record)
    claimed.checks += _loss_notes(task, claimed, measured)
    claimed.metrics.update(_outside_metrics(measured))
    unverified = _unverified(task, claimed, measured, record.export_error)
    return _row_minimum(task, claimed, unverified) if unverified else claimed


def _unverified(task: Task, claimed: Result, measured: Measured, export_error: str) -> str:
    """Why the kernel's held-out metrics could not be checked, when it reports some."""
    spec = task.measurement
    if spec is None:
        return ""
    reported = []
    for key in spec.compared:
        name, value = spec.reported(claimed.metrics, key)
        if _number(value) is not None and measured.public.get(key) is None:
            reported.append(name)
    if not reported:
        return ""
    why = export_error or measured.error or "the exported model gave no measurement"
    return f"the kernel's {', '.join(reported)} could not be checked outside the kernel ({why})"


def _row_minimum(task: Task, claimed: Result, why: str) -> Result:
    """Unverifiable metrics earn nothing within the row: its minimum, and why."""
    row = next(r for r in task.rows if r.condition == claimed.rubric_row)
    claimed.score = min(claimed.score, row.score(0.0))
    claimed.checks.append(Check("measured", "The trained model is measured outside", False, why))
    claimed.message += f" Scored at the row's minimum: {why}."
    return claimed


def _consistency(shown: Result | ReadoutError, record: ExportRecord) -> list[str]:
    findings = []
    if isinstance(shown, ReadoutError):
        findings.append(f"the read-out cell's result is not a valid result bundle: {shown}")
    elif not _same(shown, record.result):
        findings.append(
            f"the read-out cell showed a result (score {shown.score:.4f}, "
            f"{shown.rubric_row!r}) other than the one the grading exported "
            f"(score {record.result.score:.4f}): something rewrote it after grading"
        )
    return findings


def _thread_notes(record: ExportRecord) -> list[str]:
    """Threads left running are reported, not punished: a library may leave one (tqdm's
    monitor), and what a thread rewrites is caught by the checks above or bounded by them."""
    if not record.threads:
        return []
    return [
        f"{record.threads} thread(s) started by the code were still running when grading finished"
    ]


def _same(a: Result, b: Result) -> bool:
    return (
        a.score == b.score
        and a.status == b.status
        and a.rubric_row == b.rubric_row
        and a.message == b.message
        and a.checks == b.checks
        and _same_numbers(a.metrics, b.metrics)
    )


def _same_numbers(a: Mapping[str, object], b: Mapping[str, object]) -> bool:
    """Equal metrics, where NaN equals NaN and null (a NaN after Jupyter's messages)."""
    return a.keys() == b.keys() and all(_nan_free(a[k]) == _nan_free(b[k]) for k in a)


def _nan_free(value: object) -> object:
    """Non-finite floats, however a message wrote them, as comparable text."""
    value = jupyter_float(value) if isinstance(value, str) else value
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    return "nan" if value is None else value


def _measured_findings(task: Task, claimed: Result, measured: Measured) -> list[str]:
    """Where the kernel's claim goes beyond, or contradicts, the outside measurement."""
    spec = task.measurement
    if spec is None:  # a task without an outside measurement: its claim stands validated
        return []
    findings = []
    for key, compared in spec.compared.items():
        name, value = spec.reported(claimed.metrics, key)
        findings += _metric_findings(
            key, compared, name, _number(value), measured.public.get(key), measured.secret.get(key)
        )
    mismatch = _losses_findings(spec.training_loss_key, claimed.losses, measured)
    if not spec.shows_learning(measured.public, measured.secret):
        findings += mismatch
    supported = spec.supported(row_key(task, claimed), measured.public)
    row = next(r for r in task.rows if r.condition == claimed.rubric_row)
    if supported is None:
        what = measured.error or ", ".join(f"{k} {_shown(v)}" for k, v in measured.public.items())
        findings.append(
            f"the kernel claims the row {row.condition!r}, which the model measured outside "
            f"the kernel does not reach ({what})"
        )
    elif claimed.score > row.score(supported) + SCORE_SLACK:
        findings.append(
            f"the kernel claims {claimed.score:.4f}, more than the {row.score(supported):.4f} "
            "the measured model supports in that row"
        )
    return findings


def _metric_findings(
    key: str,
    compared: Compared,
    name: str,
    reported: float | None,
    public: float | None,
    secret: float | None,
) -> list[str]:
    """The kernel's number against the graph's on the same set, and the graph's public
    set against the secret one."""
    findings = []
    scale = max(1.0, abs(public or 0.0))  # a loss's noise grows with the loss
    tolerance = compared.same_set_tolerance * scale
    if reported is not None and public is not None and abs(reported - public) > tolerance:
        findings.append(
            f"the kernel reports {name} {reported:.4f}, but the exported "
            f"model measures {public:.4f} on the same held-out data"
        )
    if compared.noise is not None and public is not None and secret is not None:
        gap = (public - secret) if compared.higher_is_better else (secret - public)
        if gap > compared.noise * scale:
            findings.append(
                f"the model's {key} is {public:.4f} on the grader's public held-out data "
                f"but {secret:.4f} on fresh data from the same distribution: it knows the "
                "public samples"
            )
    return findings


def _losses_findings(key: str | None, losses: list[float], measured: Measured) -> list[str]:
    """Training losses that end far below the measured model's loss on fresh data belong
    to another run (for models that cannot overfit that much: a linear model, a head)."""
    held_out = measured.public.get(key) if key else None
    finite = [loss for loss in losses if math.isfinite(loss)]
    if held_out is None or not finite:
        return []
    tail = finite[-max(1, len(finite) // 10) :]
    final = sum(tail) / len(tail)
    if held_out <= LOSS_OVERFIT_FACTOR * final + LOSS_OVERFIT_MARGIN:
        return []
    return [
        f"the recorded training losses end near {final:.4g}, but the exported model's loss on "
        f"held-out data is {held_out:.4g}: those losses are not this model's"
    ]


def _loss_notes(task: Task, claimed: Result, measured: Measured) -> list[Check]:
    """Training losses that do not fit a model the measurement shows was trained: a
    finding for the learner (the model needs the inputs it was trained on), no void;
    the score stays what the measured model supports in its row."""
    spec = task.measurement
    if spec is None or not spec.shows_learning(measured.public, measured.secret):
        return []
    mismatch = _losses_findings(spec.training_loss_key, claimed.losses, measured)
    if not mismatch:
        return []
    detail = mismatch[0].replace(
        "those losses are not this model's",
        "the model only fits the inputs it was trained on (transformed outside the model?)",
    )
    return [Check("raw_inputs", "The model works on the raw inputs", False, detail)]


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _shown(value: float | None) -> str:
    return "none" if value is None else f"{value:.4f}"


def _outside_metrics(measured: Measured) -> dict[str, float | None]:
    """The secret-set measurement, for the record (``outside_accuracy`` and so on)."""
    return {OUTSIDE_PREFIX + key: value for key, value in measured.secret.items()}


def void(
    task: Task, findings: list[str], measured: Measured, claimed: Result | None = None
) -> Result:
    """The lowest row at its bottom, with what was found."""
    row = task.crash_row
    detail = "; ".join(findings)
    check = Check(
        "integrity", "The result is the grading's, and the measured model backs it", False, detail
    )
    return Result(
        task=task.id,
        score=row.score(0.0),
        status=GRADED,
        checks=[check],
        metrics=_outside_metrics(measured),
        message="This run cannot be graded honestly: " + detail,
        duration_s=claimed.duration_s if claimed else 0.0,
        version=claimed.version if claimed else "",
        rubric_row=row.condition,
        rubric_key=row.key,
        targets=dict(task.targets),
        losses=claimed.losses if claimed else [],
        tampering=findings + (claimed.tampering if claimed else []),
    )
