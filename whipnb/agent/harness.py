"""The inside of a tool process: ``python -m whipnb.agent.harness RESULT_FD READY_FD``.

Reads one request (JSON on stdin: the tool, its fields, the episode's seed),
limits itself (no core dumps, bounded files and CPU), seeds every RNG with the
episode's seed, says it is ready on ``READY_FD`` (the time limit starts then),
runs the agent's code and writes what the tool measured as JSON
to the result pipe ``RESULT_FD``.  The code's own prints go to the process's
stdout and stderr, which the server caps.  Nothing here is trusted for a
reward: the code runs in this same process and could lie; only ``submit_fix``
scores, and it is graded in a fresh kernel like ``whipnb grade``.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import resource
import sys
import traceback
from collections.abc import Iterator
from typing import Any

#: Largest file the code may write, and CPU seconds on top of the time limit (start-up).
FILE_LIMIT_BYTES = 64 * 2**20
CPU_GRACE_S = 30
#: Characters of a value's repr reported by get_variable_state.
REPR_CAP = 1000


class ProbeFinished(BaseException):
    """Raised from the optimizer hook once the probe has seen enough steps; a
    BaseException so that the code's own ``except Exception`` does not swallow it."""


def limit_self(timeout_s: float) -> None:
    for limit, value in (
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_FSIZE, FILE_LIMIT_BYTES),
        (resource.RLIMIT_CPU, int(timeout_s) + CPU_GRACE_S),
    ):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(limit, (value, value))


def seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(1)


def run_code(code: str, namespace: dict[str, Any], filename: str) -> str | None:
    """Execute ``code`` like a script; the error line (type: message) if it raised.
    ``sys.exit(0)`` is a clean end; the traceback goes to stderr as a script's would."""
    try:
        exec(compile(code, filename, "exec"), namespace)  # noqa: S102 - running it is the tool
    except SystemExit as error:
        if error.code in (0, None):
            return None
        return f"SystemExit: {error.code}"
    except Exception as error:
        traceback.print_exc()
        return f"{type(error).__name__}: {error}".strip()
    return None


def _float(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def tensor_stats(value: Any) -> dict[str, Any]:
    import torch

    if not isinstance(value, torch.Tensor):
        return {"error": f"the expression is a {type(value).__name__}, not a tensor"}
    data = value.detach()
    stats: dict[str, Any] = {
        "shape": list(data.shape),
        "dtype": str(data.dtype).removeprefix("torch."),
        "device": str(data.device),
        "numel": data.numel(),
        "requires_grad": bool(value.requires_grad),
        "grad_is_none": value.grad is None if value.is_leaf else True,
        "is_leaf": bool(value.is_leaf),
        "min": None,
        "max": None,
        "mean": None,
        "is_nan": False,
        "is_inf": False,
    }
    if data.numel() and (data.is_floating_point() or data.is_complex()):
        real = data.real if data.is_complex() else data
        stats["is_nan"] = bool(torch.isnan(real).any())
        stats["is_inf"] = bool(torch.isinf(real).any())
        finite = real[torch.isfinite(real)].double()
        if finite.numel():
            stats.update(min=_float(finite.min()), max=_float(finite.max()))
            stats["mean"] = _float(finite.mean())
    elif data.numel():
        as_double = data.double()
        stats.update(min=_float(as_double.min()), max=_float(as_double.max()))
        stats["mean"] = _float(as_double.mean())
    return stats


def inspect_tensor(request: dict[str, Any]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    error = run_code(request["setup_code"], namespace, "setup.py")
    if error is not None:
        return {"error": f"the setup code raised {error}"}
    try:
        value = eval(request["target_expression"], namespace)  # noqa: S307 - the tool's purpose
    except Exception as failure:
        return {"error": f"evaluating the expression raised {type(failure).__name__}: {failure}"}
    return tensor_stats(value)


def describe_value(value: Any) -> dict[str, Any]:
    import torch

    text = repr(value)
    state: dict[str, Any] = {
        "type": type(value).__name__,
        "repr": text[:REPR_CAP] + ("..." if len(text) > REPR_CAP else ""),
    }
    if isinstance(value, torch.Tensor):
        state.update(tensor_stats(value))
    elif isinstance(value, torch.nn.Module):
        params = list(value.parameters())
        state["parameters"] = sum(p.numel() for p in params)
        state["trainable_parameters"] = sum(p.numel() for p in params if p.requires_grad)
        state["training"] = bool(value.training)
    elif isinstance(value, torch.optim.Optimizer):
        state["param_groups"] = [
            {key: item for key, item in group.items() if key != "params"}
            | {"params": len(group["params"])}
            for group in value.param_groups
        ]
    with contextlib.suppress(Exception):
        state["len"] = len(value)
    return json.loads(json.dumps(state, default=repr))


def get_variable_state(request: dict[str, Any]) -> dict[str, Any]:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    error = run_code(request["setup_code"], namespace, "setup.py")
    variables = []
    for expression in request["expressions"]:
        try:
            value = eval(expression, namespace)  # noqa: S307 - the tool's purpose
            variables.append({"expression": expression, **describe_value(value)})
        except Exception as failure:
            message = f"{type(failure).__name__}: {failure}"
            variables.append({"expression": expression, "error": message})
    return {"variables": variables, "setup_error": error}


@contextlib.contextmanager
def stepping_probe(steps: int, norms: list[list[float | None]]) -> Iterator[None]:
    """Records each optimizer step's per-parameter gradient norms and stops the code
    after ``steps`` steps (a short probe, not a full training)."""
    from torch.optim.optimizer import register_optimizer_step_post_hook

    def after_step(optimizer: Any, args: Any, kwargs: Any) -> None:
        norms.append(
            [
                None if param.grad is None else float(param.grad.detach().norm())
                for group in optimizer.param_groups
                for param in group["params"]
            ]
        )
        if len(norms) >= steps:
            raise ProbeFinished

    handle = register_optimizer_step_post_hook(after_step)
    try:
        yield
    finally:
        handle.remove()


def parameter_names(namespace: dict[str, Any]) -> dict[int, str]:
    """Names of parameters, from the modules the code left in its namespace."""
    import torch

    names: dict[int, str] = {}
    for variable, value in namespace.items():
        if isinstance(value, torch.nn.Module):
            for name, param in value.named_parameters():
                names.setdefault(id(param), f"{variable}.{name}")
    return names


def run_training_probe(request: dict[str, Any]) -> dict[str, Any]:
    from whipnb.core.instrument import Instrumentation

    namespace: dict[str, Any] = {"__name__": "__main__"}
    norms: list[list[float | None]] = []
    instrumentation = Instrumentation()
    error = None
    with (
        instrumentation.installed() as evidence,
        stepping_probe(request["steps"], norms),
        contextlib.suppress(ProbeFinished),
    ):
        error = run_code(request["code"], namespace, "probe.py")
    return training_report(evidence, norms, namespace, error)


def training_report(
    evidence: Any, norms: list[list[float | None]], namespace: dict[str, Any], error: str | None
) -> dict[str, Any]:
    names = parameter_names(namespace)
    held = [p for opt in evidence.optimizers[:1] for g in opt.param_groups for p in g["params"]]
    labels = [names.get(id(param), f"param{index}") for index, param in enumerate(held)]
    grad_norms = {
        label: [_round(step[index]) if index < len(step) else None for step in norms]
        for index, label in enumerate(labels)
    }
    modules_params = {id(p): p for m in _modules(namespace) for p in m.parameters()}
    trainable = [p for p in modules_params.values() if p.requires_grad]
    held_ids = {id(param) for param in held}
    return {
        "losses": [_round(loss) for loss in evidence.losses],
        "grad_norms": grad_norms,
        "optimizer_param_count": len(held),
        "trainable_param_count": len(trainable),
        "frozen_params_in_optimizer": sum(not param.requires_grad for param in held),
        "trainable_params_not_in_optimizer": sum(id(p) not in held_ids for p in trainable),
        "steps": [
            {
                "found_gradient": step.has_grad,
                "gradient_is_stale": step.stale,
                "learning_rates": list(step.lrs),
                "update_norm": _round(step.update_norm),
            }
            for step in evidence.steps
        ],
        "is_nan": any(math.isnan(loss) for loss in evidence.losses),
        "is_inf": any(math.isinf(loss) for loss in evidence.losses),
        "error": error,
    }


def _modules(namespace: dict[str, Any]) -> list[Any]:
    import torch

    return [value for value in namespace.values() if isinstance(value, torch.nn.Module)]


def _round(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None if value is None else float(value)
    return round(value, 6)


def execute_snippet(request: dict[str, Any]) -> dict[str, Any]:
    """Runs like ``python snippet.py``: a traceback and exit status 1 when it raises,
    the code's own status when it calls ``sys.exit`` (that ``SystemExit`` ends the harness)."""
    try:
        exec(compile(request["code"], "snippet.py", "exec"), {"__name__": "__main__"})  # noqa: S102
    except Exception:
        traceback.print_exc()
        return {"exit": 1}
    return {"exit": 0}


TOOLS = {
    "execute_snippet": execute_snippet,
    "inspect_tensor": inspect_tensor,
    "get_variable_state": get_variable_state,
    "run_training_probe": run_training_probe,
}


def main() -> int:
    result_fd, ready_fd = int(sys.argv[1]), int(sys.argv[2])
    request = json.loads(sys.stdin.read())
    sys.stdin = open(os.devnull)  # noqa: SIM115 - the code reads nothing more
    limit_self(float(request["timeout_s"]))
    seed_everything(int(request["seed"]))
    import whipnb.core.instrument  # noqa: F401 - imported before the clock starts

    os.write(ready_fd, b"1")  # the tool's clock starts now
    os.close(ready_fd)
    result = TOOLS[request["tool"]](request)
    with contextlib.suppress(OSError), os.fdopen(result_fd, "w", encoding="utf-8") as pipe:
        json.dump(result, pipe, default=repr)
    sys.stdout.flush()
    sys.stderr.flush()
    return int(result.get("exit", 0))


if __name__ == "__main__":
    sys.exit(main())
