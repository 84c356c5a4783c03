"""Tamper detection: capture what grading relies on before the learner's code
runs, verify it afterwards, and put back anything the code replaced.

Watched: every name in whipnb's own modules and classes (and the code objects
of their functions), the torch and builtins namespaces the grader calls into,
the global hook tables the probes live in, trace/profile functions, and in a
kernel IPython's display machinery, magics, input and AST transformers and
event callbacks.  Each change becomes a plain-language finding in
``Result.tampering``, and the original is restored before the task assesses the
run, so a patched grader never grades.  The limits of this in-process defence
are written down in docs/SECURITY.md.
"""

from __future__ import annotations

import builtins
import functools
import sys
import threading
import types
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional
from torch.nn.modules import module as torch_module_hooks
from torch.optim import optimizer as torch_optimizer_hooks

from whipnb.core.instrument import BACKWARD

MAX_FINDINGS = 12
#: IPython's lists of code rewriters, by shell attribute, with the name a finding uses.
TRANSFORMER_LISTS = {
    "input_transformers_cleanup": "input transformer",
    "input_transformers_post": "input transformer",
    "ast_transformers": "AST transformer",
}
#: Names that legitimately change while a cell runs.
VOLATILE = {"_", "__", "___", "_i", "_ii", "_iii", "_oh", "_dh", "Out", "In"}


@dataclass(frozen=True)
class _Namespace:
    """A dict-like namespace whose entries are watched by identity."""

    label: str
    owner: Any  # a module, class or instance: restored through setattr/delattr
    saved: dict[str, Any]
    strict: bool  #: new names count as tampering too (whipnb's own namespaces)


class IntegrityGuard:
    """A snapshot of everything grading relies on; :meth:`restore` reports and undoes changes."""

    def __init__(self, objects: Sequence[tuple[str, Any]] = ()) -> None:
        """``objects``: more objects (label, object) the score depends on, such as the
        task being graded and its rubric rows, watched like whipnb's own namespaces."""
        watched = _watched() + [(label, value, True) for label, value in objects]
        self.namespaces = [_snapshot(label, owner, strict) for label, owner, strict in watched]
        self.code = _function_code(watched)
        self.hook_tables = {label: dict(table) for label, table in _hook_tables()}
        self.shell_state = _ShellState.capture()
        self.threads = set(threading.enumerate())

    def restore(self) -> list[str]:
        """Findings since the snapshot, in plain words; originals are put back."""
        findings: list[str] = []
        for namespace in self.namespaces:
            findings += _restore_namespace(namespace)
        for function, (code, defaults, kwdefaults) in self.code.items():
            if (function.__code__, function.__defaults__, function.__kwdefaults__) != (
                code,
                defaults,
                kwdefaults,
            ):
                function.__code__, function.__defaults__ = code, defaults
                function.__kwdefaults__ = kwdefaults
                name = f"{function.__module__}.{function.__qualname__}"
                findings.append(f"rewrote the code of {name}")
        for label, table in _hook_tables():
            if dict(table) != self.hook_tables[label]:
                table.clear()
                table.update(self.hook_tables[label])
                findings.append(f"changed {label} (where whipnb's probes live)")
        findings += _reset_tracing()
        if self.shell_state is not None:
            findings += self.shell_state.restore()
        leftover = [t for t in threading.enumerate() if t not in self.threads and t.is_alive()]
        if leftover:
            findings.append(f"left {len(leftover)} background thread(s) running after the cell")
        return _capped(findings)


def _watched() -> list[tuple[str, Any, bool]]:
    """Every namespace whose names the grader relies on."""
    watched: list[tuple[str, Any, bool]] = []
    for name, module in sorted(sys.modules.items()):
        if name == "whipnb" or name.startswith("whipnb."):
            watched.append((name, module, True))
            for value in list(vars(module).values()):
                if isinstance(value, type) and value.__module__ == name:
                    watched.append((f"{name}.{value.__qualname__}", value, True))
    watched.append(("sys.modules", _ModulesView(), True))
    for label, owner in (
        ("torch", torch),
        ("torch.nn.functional", torch.nn.functional),
        ("torch.autograd", torch.autograd),
        ("torch.Tensor", torch.Tensor),
        ("torch.nn.Module", torch.nn.Module),
        ("torch.optim.Optimizer", torch.optim.Optimizer),
        ("builtins", builtins),
    ):
        watched.append((label, owner, False))
    return watched


class _ModulesView:
    """``sys.modules`` restricted to whipnb's own modules, watched like a namespace."""

    def __dir__(self) -> list[str]:
        return [n for n in sys.modules if n == "whipnb" or n.startswith("whipnb.")]


def _entries(owner: Any) -> dict[str, Any]:
    if isinstance(owner, _ModulesView):
        return {name: sys.modules[name] for name in dir(owner)}
    return dict(vars(owner))


def _snapshot(label: str, owner: Any, strict: bool) -> _Namespace:
    return _Namespace(label, owner, _entries(owner), strict)


def _restore_namespace(namespace: _Namespace) -> list[str]:
    findings = []
    current = _entries(namespace.owner)
    for name, value in namespace.saved.items():
        if name in VOLATILE:
            continue
        if name not in current:
            _set(namespace.owner, name, value)
            findings.append(f"deleted {namespace.label}.{name}")
        elif current[name] is not value:
            _set(namespace.owner, name, value)
            findings.append(f"replaced {namespace.label}.{name}")
    if namespace.strict and not isinstance(namespace.owner, _ModulesView):
        for name, value in current.items():
            if name not in namespace.saved and not _lazily_added(namespace.owner, name, value):
                _delete(namespace.owner, name)
                findings.append(f"added {namespace.label}.{name}")
    return findings


def _lazily_added(owner: Any, name: str, value: Any) -> bool:
    """Names Python itself adds on first use: imported submodules, cached properties."""
    return isinstance(value, types.ModuleType) or isinstance(
        getattr(type(owner), name, None), functools.cached_property
    )


def _set(owner: Any, name: str, value: Any) -> None:
    if isinstance(owner, _ModulesView):
        sys.modules[name] = value
    elif isinstance(owner, type | types.ModuleType):
        setattr(owner, name, value)
    else:  # instances, frozen dataclasses included
        object.__setattr__(owner, name, value)


def _delete(owner: Any, name: str) -> None:
    if isinstance(owner, type | types.ModuleType):
        delattr(owner, name)
    else:
        object.__delattr__(owner, name)


def _function_code(watched: list[tuple[str, Any, bool]]) -> dict[Any, tuple[Any, Any, Any]]:
    """The code, defaults and keyword defaults of every whipnb function and method."""
    code = {}
    for label, owner, _strict in watched:
        if not (label == "whipnb" or label.startswith("whipnb.")):
            continue
        for value in list(vars(owner).values()):
            function = getattr(value, "__func__", value)
            if isinstance(function, types.FunctionType) and function.__module__.startswith(
                "whipnb"
            ):
                code[function] = (function.__code__, function.__defaults__, function.__kwdefaults__)
    return code


def _hook_tables() -> list[tuple[str, dict]]:
    return [
        (
            "torch's global optimizer pre-step hooks",
            torch_optimizer_hooks._global_optimizer_pre_hooks,
        ),
        (
            "torch's global optimizer post-step hooks",
            torch_optimizer_hooks._global_optimizer_post_hooks,
        ),
        ("torch's global module forward hooks", torch_module_hooks._global_forward_hooks),
        ("torch's global module forward pre-hooks", torch_module_hooks._global_forward_pre_hooks),
        ("torch's global module backward hooks", torch_module_hooks._global_backward_hooks),
        ("whipnb's backward pre-hooks", BACKWARD.pre_hooks),
        ("whipnb's backward post-hooks", BACKWARD.post_hooks),
    ]


def _reset_tracing() -> list[str]:
    findings = []
    if sys.gettrace() is not None and "pydevd" not in repr(sys.gettrace()):
        sys.settrace(None)
        findings.append("installed a trace function (sys.settrace)")
    if sys.getprofile() is not None:
        sys.setprofile(None)
        findings.append("installed a profile function (sys.setprofile)")
    return findings


def _learner_defined(function: Any) -> bool:
    """Defined by the learner's cell, not by a library (matplotlib registers hooks too)."""
    module = getattr(function, "__module__", None) or getattr(type(function), "__module__", None)
    return module in (None, "__main__", "builtins") or module.startswith("<")


class _ShellState:
    """IPython's display machinery, magics, transformers and events, when in a kernel."""

    def __init__(self, shell: Any) -> None:
        self.shell = shell
        self.display_pub = shell.display_pub
        self.publish = vars(shell.display_pub).get("publish")
        self.displayhook = sys.displayhook
        self.magics = {kind: dict(table) for kind, table in shell.magics_manager.magics.items()}
        self.transformer_lists = {
            attribute: list(getattr(shell, attribute)) for attribute in TRANSFORMER_LISTS
        }
        self.events = {name: list(callbacks) for name, callbacks in shell.events.callbacks.items()}

    @classmethod
    def capture(cls) -> _ShellState | None:
        ipython = sys.modules.get("IPython")  # never imported here: no IPython, no shell
        shell = ipython.get_ipython() if ipython is not None else None
        return cls(shell) if shell is not None else None

    def restore(self) -> list[str]:
        findings = []
        shell = self.shell
        if (
            shell.display_pub is not self.display_pub
            or vars(shell.display_pub).get("publish") is not self.publish
        ):
            shell.display_pub = self.display_pub
            vars(self.display_pub).pop("publish", None)
            if self.publish is not None:
                self.display_pub.publish = self.publish
            findings.append("replaced IPython's display publisher")
        if sys.displayhook is not self.displayhook:
            sys.displayhook = self.displayhook
            findings.append("replaced sys.displayhook")
        for kind, saved in self.magics.items():
            table = shell.magics_manager.magics[kind]
            for name, function in saved.items():
                if table.get(name) is not function:
                    table[name] = function
                    prefix = "%%" if kind == "cell" else "%"
                    findings.append(f"re-registered the {prefix}{name} magic")
        findings += self._restore_lists()
        for name, saved in self.events.items():
            callbacks = shell.events.callbacks[name]
            added = [c for c in callbacks if c not in saved and _learner_defined(c)]
            for callback in added:
                callbacks.remove(callback)
                findings.append(f"registered a '{name}' event callback")
        return findings

    def _restore_lists(self) -> list[str]:
        findings = []
        for attribute, saved in self.transformer_lists.items():
            items = getattr(self.shell, attribute)
            for item in [item for item in items if item not in saved and _learner_defined(item)]:
                items.remove(item)
                label = TRANSFORMER_LISTS[attribute]
                findings.append(f"added an IPython {label} (it could rewrite later cells)")
        return findings


def _capped(findings: list[str]) -> list[str]:
    unique = list(dict.fromkeys(findings))
    if len(unique) > MAX_FINDINGS:
        return unique[:MAX_FINDINGS] + [f"... and {len(unique) - MAX_FINDINGS} more changes"]
    return unique
