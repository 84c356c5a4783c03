"""The outside measurement: a fresh process that never runs learner code measures the
graph a grading kernel exported.

The grader starts ``python -m whipnb.headless.measure`` with a cleared
environment, in an empty folder holding a copy of the exported graph, and hands
it the task, the graph's input shape and the secret on standard input (the
secret never reaches the learner's kernel).  The process loads the TorchScript
graph (no Python code in it), and measures it with the task's own
:meth:`~whipnb.tasks.measure.Measurement.measure` on the public held-out set
(the in-kernel assessment's, to check the kernel's numbers) and on a set drawn
from the same distribution with a seed derived from the secret (which no
learner code can regenerate).  It prints one JSON object.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from whipnb.headless.readout import MAX_GRAPH_BYTES
from whipnb.headless.sandbox import BWRAP, NONE, SANDBOX_HOME, Sandbox, package_view, python_view
from whipnb.notebook.export import MODEL_FILE

#: Where an instructor's secret comes from when ``--secret`` is not given.
SECRET_ENV = "WHIPNB_SECRET"
MEASURE_TIMEOUT_S = 180.0
MAX_REPLY_BYTES = 64 * 2**10


@dataclass(frozen=True)
class Measured:
    """The graph's metrics on the public and on the secret held-out set, or why none."""

    public: dict[str, float | None] = field(default_factory=dict)
    secret: dict[str, float | None] = field(default_factory=dict)
    samples: int = 0
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.error


def grading_secret(given: str | None = None) -> str:
    """The instructor's secret (given, or ``WHIPNB_SECRET``), else a random one for this run."""
    return given or os.environ.get(SECRET_ENV) or secrets.token_hex(16)


def measure_export(
    task_id: str,
    folder: Path,
    input_shape: tuple[int, ...] | None,
    secret: str,
    sandbox: str = NONE,
) -> Measured:
    """Measure the graph exported to ``folder`` in a fresh process (in bubblewrap with
    ``sandbox="bwrap"``: no network, a read-only system, nothing but its folder); never
    raises."""
    if input_shape is None:
        return Measured(error="no graph was exported")
    source = folder / MODEL_FILE
    try:
        info = os.lstat(source)
    except OSError:
        return Measured(error="the exported graph is missing")
    if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_GRAPH_BYTES:
        return Measured(error="the exported graph is not a regular file of a sensible size")
    with tempfile.TemporaryDirectory(prefix="whipnb-measure-") as private:
        graph = Path(private) / MODEL_FILE
        shutil.copyfile(source, graph, follow_symlinks=False)
        request = {
            "task": task_id,
            "graph": str(graph),
            "shape": list(input_shape),
            "secret": secret,
        }
        return _run(request, Path(private), sandbox)


def measuring_command(folder: Path, sandbox: str) -> tuple[list[str], dict[str, str]]:
    """The measuring process's command line and environment, sandboxed or not."""
    command = [sys.executable, "-m", "whipnb.headless.measure"]
    env = measuring_environment(folder)
    if sandbox != BWRAP:
        return command, env
    view = package_view()
    env = {**env, "HOME": SANDBOX_HOME, "PYTHONPATH": str(view.path_entry)}
    env["PATH"] = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    box = Sandbox(work=folder, env=env, read_only=(*python_view(), *view.read_only))
    return box.command(command), env


def _run(request: dict[str, Any], folder: Path, sandbox: str) -> Measured:
    command, env = measuring_command(folder, sandbox)
    try:
        finished = subprocess.run(
            command,
            input=json.dumps(request).encode(),
            capture_output=True,
            timeout=MEASURE_TIMEOUT_S,
            cwd=folder,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return Measured(error=f"measuring the graph took more than {MEASURE_TIMEOUT_S:g} s")
    reply = finished.stdout[-MAX_REPLY_BYTES:].decode("utf-8", "replace").strip().splitlines()
    try:
        data = json.loads(reply[-1])
        return Measured(
            _metrics(data["public"]), _metrics(data["secret"]), int(data["samples"]), ""
        )
    except (IndexError, KeyError, TypeError, ValueError):
        detail = finished.stderr.decode("utf-8", "replace").strip().splitlines()[-1:]
        return Measured(error=f"the graph could not be measured ({' '.join(detail)[:300]})")


def _metrics(value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict):
        raise ValueError("metrics")
    return {str(k): None if v is None else float(v) for k, v in value.items()}


def measuring_environment(home: Path) -> dict[str, str]:
    """Only what Python and torch need: no secrets, no learner's variables, one thread."""
    env = {"HOME": str(home), "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    for name in ("PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG"):
        if name in os.environ:
            env[name] = os.environ[name]
    return env


def main() -> None:
    """The measuring process: read the request, measure, print one JSON line."""
    request = json.loads(sys.stdin.read())
    import torch

    from whipnb.tasks import get_task
    from whipnb.tasks.measure import secret_seed

    torch.set_num_threads(1)
    task = get_task(request["task"])
    measurement = task.measurement
    if measurement is None:
        raise SystemExit(f"{task.id} has no outside measurement")
    graph = torch.jit.load(request["graph"], map_location="cpu")
    shape = tuple(int(n) for n in request["shape"])
    public = measurement.measure(graph, *measurement.samples(measurement.held_out_seed), shape)
    seed = secret_seed(request["secret"], task.id)
    secret = measurement.measure(graph, *measurement.samples(seed), shape)
    reply = {"public": public, "secret": secret, "samples": measurement.held_out_size}
    print(json.dumps(reply))


if __name__ == "__main__":
    main()
