"""Run a submission's source under instrumentation, with every RNG seeded.

How the source is executed is pluggable (an *executor*), the way papermill
plugs engines: plain ``exec`` for the Python API, ``shell.run_cell`` inside
IPython so the magic behaves like a normal cell (live prints, IPython syntax,
the usual traceback display).
"""

from __future__ import annotations

import contextlib
import io
import random
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np
import torch

from whipnb.core.instrument import Evidence, Instrumentation, Probe, reseeding_findings
from whipnb.core.integrity import IntegrityGuard
from whipnb.core.printed import parse_printed_metrics

#: Runs ``source`` in ``namespace``; returns the exception the code raised, if any.
Executor = Callable[[str, dict[str, Any]], BaseException | None]

SEED = 0


@dataclass
class Run:
    """What happened when the submission ran: its objects, output, error and evidence."""

    namespace: dict[str, Any]
    stdout: str
    error: BaseException | None
    error_text: str
    evidence: Evidence
    duration_s: float
    printed: dict[str, list[float]] = field(default_factory=dict)
    #: The task's own probes (see ``Task.probes``), after they ran.
    probes: dict[str, Probe] = field(default_factory=dict)
    #: What the code did to the grader or its data, in plain words (see integrity.py).
    tampering: list[str] = field(default_factory=list)

    @property
    def crashed(self) -> bool:
        return self.error is not None


def exec_executor(source: str, namespace: dict[str, Any]) -> BaseException | None:
    """Plain-Python executor: tracebacks are printed to stderr like a script's."""
    try:
        exec(compile(source, "<submission>", "exec"), namespace)  # noqa: S102 - that is the point
    except (Exception, SystemExit) as error:  # a learner's sys.exit() must not end the grader
        if _clean_exit_is_no_error(error) is not None:
            traceback.print_exc()
        return error
    return None


def seed_everything(seed: int = SEED) -> None:
    """Seed every RNG a training script may draw from, so runs are reproducible."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@contextlib.contextmanager
def single_thread() -> Iterator[None]:
    """Run on one intra-op thread: float reductions then give the same digits everywhere."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class _Tee(io.TextIOBase):
    """Writes through to the real stream (prints stay live) while keeping a copy."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.copy = io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@contextlib.contextmanager
def captured_stdout() -> Iterator[_Tee]:
    tee = _Tee(sys.stdout)
    sys.stdout = tee
    try:
        yield tee
    finally:
        if sys.stdout is tee:
            sys.stdout = tee.stream


def run_submission(
    source: str,
    namespace: dict[str, Any] | None = None,
    executor: Executor = exec_executor,
    probes: Mapping[str, Probe] | None = None,
    guarded: Sequence[tuple[str, Any]] = (),
) -> Run:
    """Seed, instrument and run ``source``; never raises for the learner's errors."""
    namespace = {"__name__": "__main__"} if namespace is None else namespace
    probes = dict(probes or {})
    instrumentation = Instrumentation()
    seed_everything()
    with contextlib.ExitStack() as stack:
        stack.enter_context(single_thread())
        out = stack.enter_context(captured_stdout())
        evidence = stack.enter_context(instrumentation.installed())
        for probe in probes.values():
            stack.enter_context(probe)
        guard = IntegrityGuard(guarded)
        started = time.perf_counter()
        error = _clean_exit_is_no_error(executor(source, namespace))
        duration = time.perf_counter() - started
        tampering = guard.restore()
    stdout = out.copy.getvalue()
    return Run(
        namespace=namespace,
        stdout=stdout,
        error=error,
        error_text=_describe(error),
        evidence=evidence,
        duration_s=duration,
        printed=parse_printed_metrics(stdout),
        probes=probes,
        tampering=tampering + _probe_findings(probes) + reseeding_findings(evidence),
    )


def _probe_findings(probes: Mapping[str, Probe]) -> list[str]:
    """Probes that watch for misuse (e.g. training on held-out data) report it here."""
    return [finding for probe in probes.values() for finding in probe.findings]


def _clean_exit_is_no_error(error: BaseException | None) -> BaseException | None:
    """``sys.exit()`` or ``sys.exit(0)`` ends a script successfully; other codes are crashes."""
    if isinstance(error, SystemExit) and error.code in (0, None):
        return None
    return error


def _describe(error: BaseException | None) -> str:
    if error is None:
        return ""
    text = str(error).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__
