"""Probes that watch the learner's code train, so grading rests on behaviour.

While a submission runs, :class:`Instrumentation` records

* every loss that ``backward()`` was called on (its value, finite or not),
* every ``optimizer.step()``: whether it found gradients, whether those
  gradients were computed after the latest forward pass, the learning rates of
  its parameter groups, and how far it moved the parameters,
* the optimizers that were stepped, so a task can inspect them afterwards.

It uses PyTorch's global optimizer hooks and module forward hooks.  PyTorch
has no global hook for ``torch.autograd.backward``, so :class:`BackwardHooks`
wraps it once and every probe that needs a look at a loss before its gradients
flow subscribes there (:data:`BACKWARD`), instead of each wrapping it again.
Everything is removed on exit, even when the learner's code raised.

Task probes derive from :class:`Probe`: a context manager entered around the
learner's code that may also report misuse (``findings``) and say what it means
for the score (``voids_assessment``, ``caps_quality``).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim.optimizer import (
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)

#: Called with the ``tensors`` argument of ``torch.autograd.backward``.
BackwardHook = Callable[[Any], None]


class BackwardHooks:
    """The one wrapper of ``torch.autograd.backward``, installed while anyone subscribes.

    Pre-hooks run before the gradients flow (the graph is still whole), newest
    subscriber first, as if each had wrapped the function itself; post-hooks run
    after a backward pass that succeeded, oldest first.  The tables are plain
    dicts, like torch's own global hook tables, so the integrity guard can watch
    them.
    """

    def __init__(self) -> None:
        self.pre_hooks: dict[int, BackwardHook] = {}
        self.post_hooks: dict[int, BackwardHook] = {}
        self._next_key = 0
        self._subscribers = 0
        self._original: Any = None

    @contextlib.contextmanager
    def subscribed(
        self, pre: BackwardHook | None = None, post: BackwardHook | None = None
    ) -> Iterator[None]:
        """Call ``pre`` / ``post`` around every backward pass while inside."""
        if self._subscribers == 0:
            self._install()
        self._subscribers += 1
        self._next_key += 1
        key = self._next_key
        if pre is not None:
            self.pre_hooks[key] = pre
        if post is not None:
            self.post_hooks[key] = post
        try:
            yield
        finally:
            self.pre_hooks.pop(key, None)
            self.post_hooks.pop(key, None)
            self._subscribers -= 1
            if self._subscribers == 0:
                self._uninstall()

    def _install(self) -> None:
        self._original = original = torch.autograd.backward

        def backward(tensors: Any, *args: Any, **kwargs: Any) -> Any:
            for hook in reversed(list(self.pre_hooks.values())):
                hook(tensors)
            result = original(tensors, *args, **kwargs)
            for hook in list(self.post_hooks.values()):
                hook(tensors)
            return result

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        backward.__doc__ = original.__doc__
        torch.autograd.backward = backward

    def _uninstall(self) -> None:
        torch.autograd.backward = self._original
        self._original = None


#: The dispatcher every probe subscribes to.
BACKWARD = BackwardHooks()


class Probe(contextlib.AbstractContextManager):
    """A task's own evidence for one run, entered around the learner's code.

    Besides what it records, a probe may report misuse: ``findings`` become
    tampering findings, ``voids_assessment`` sends the run to the crash row at
    its bottom, ``caps_quality`` holds it to the bottom of the row it reached.
    """

    @property
    def findings(self) -> list[str]:
        return []

    @property
    def voids_assessment(self) -> bool:
        return False

    @property
    def caps_quality(self) -> bool:
        return False

    def __exit__(self, *exc_info: object) -> None:
        return None


@dataclass(frozen=True)
class StepEvent:
    """What one ``optimizer.step()`` call did."""

    optimizer: int  #: index of the optimizer, in the order first stepped
    has_grad: bool  #: some parameter had a non-zero gradient
    stale: bool  #: a forward pass ran after the latest backward pass
    lrs: tuple[float, ...]
    update_norm: float  #: L2 distance the parameters moved

    @property
    def applied_fresh_gradient(self) -> bool:
        return self.has_grad and not self.stale


@dataclass
class Evidence:
    """The behavioural record of one run."""

    losses: list[float] = field(default_factory=list)
    steps: list[StepEvent] = field(default_factory=list)
    optimizers: list[torch.optim.Optimizer] = field(default_factory=list)
    #: Every value passed to ``torch.manual_seed`` by the code, in order.
    seeds: list[int] = field(default_factory=list)

    @property
    def finite_losses(self) -> list[float]:
        return [loss for loss in self.losses if math.isfinite(loss)]

    @property
    def first_nonfinite_loss(self) -> int | None:
        """Index of the first NaN or infinite loss, if any."""
        return next((i for i, loss in enumerate(self.losses) if not math.isfinite(loss)), None)

    @property
    def fresh_step_fraction(self) -> float:
        if not self.steps:
            return 0.0
        return sum(step.applied_fresh_gradient for step in self.steps) / len(self.steps)

    @property
    def moving_steps(self) -> int:
        return sum(step.update_norm > 0 for step in self.steps)

    @property
    def learning_rates(self) -> list[float]:
        """Distinct learning rates seen in the stepped optimizers' groups, in order."""
        seen: list[float] = []
        for step in self.steps:
            for lr in step.lrs:
                if lr not in seen:
                    seen.append(lr)
        return seen


class Instrumentation:
    """Context manager that installs the probes and yields the :class:`Evidence`."""

    def __init__(self) -> None:
        self.evidence = Evidence()
        self._tick = 0
        self._last_forward = -1
        self._last_backward = -1
        self._before_step: dict[int, list[torch.Tensor]] = {}

    @contextlib.contextmanager
    def installed(self) -> Iterator[Evidence]:
        handles = [
            register_optimizer_step_pre_hook(self._before_optimizer_step),
            register_optimizer_step_post_hook(self._after_optimizer_step),
            torch.nn.modules.module.register_module_forward_hook(self._after_forward),
        ]
        original_seed = torch.manual_seed
        torch.manual_seed = self._wrap_manual_seed(original_seed)
        try:
            with BACKWARD.subscribed(self._before_backward, self._after_backward):
                yield self.evidence
        finally:
            torch.manual_seed = original_seed
            for handle in handles:
                handle.remove()
            self._before_step.clear()

    def _next_tick(self) -> int:
        self._tick += 1
        return self._tick

    def _before_backward(self, tensors: Any) -> None:
        if isinstance(tensors, torch.Tensor) and tensors.numel() == 1:
            self.evidence.losses.append(float(tensors.detach().reshape(())))

    def _after_backward(self, tensors: Any) -> None:
        self._last_backward = self._next_tick()

    def _wrap_manual_seed(self, original: Any) -> Any:
        def manual_seed(seed: Any) -> Any:
            self.evidence.seeds.append(int(seed))
            return original(seed)

        manual_seed.__wrapped__ = original  # type: ignore[attr-defined]
        manual_seed.__doc__ = original.__doc__
        return manual_seed

    def _after_forward(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if torch.is_grad_enabled():
            self._last_forward = self._next_tick()

    def _optimizer_index(self, optimizer: torch.optim.Optimizer) -> int:
        for index, known in enumerate(self.evidence.optimizers):
            if known is optimizer:
                return index
        self.evidence.optimizers.append(optimizer)
        return len(self.evidence.optimizers) - 1

    def _before_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any):
        self._before_step[id(optimizer)] = [
            param.detach().clone() for param in _parameters(optimizer)
        ]

    def _after_optimizer_step(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any):
        params = _parameters(optimizer)
        before = self._before_step.pop(id(optimizer), [])
        moved = sum(
            float((param.detach() - old).double().pow(2).sum())
            for param, old in zip(params, before, strict=False)
            if param.shape == old.shape
        )
        has_grad = any(
            param.grad is not None and bool(param.grad.detach().abs().sum() > 0) for param in params
        )
        self.evidence.steps.append(
            StepEvent(
                optimizer=self._optimizer_index(optimizer),
                has_grad=has_grad,
                stale=self._last_forward > self._last_backward,
                lrs=tuple(_as_float(group.get("lr", math.nan)) for group in optimizer.param_groups),
                update_norm=math.sqrt(moved),
            )
        )


def _parameters(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [param for group in optimizer.param_groups for param in group["params"]]


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def reseeding_findings(evidence: Evidence) -> list[str]:
    """Reseeding with many values is how a lucky run is cherry-picked; once or twice is normal."""
    distinct = list(dict.fromkeys(evidence.seeds))
    if len(distinct) <= 2:
        return []
    shown = ", ".join(str(seed) for seed in distinct[:5])
    return [
        f"reseeded torch {len(evidence.seeds)} times with {len(distinct)} different seeds "
        f"({shown}{', ...' if len(distinct) > 5 else ''}): a search for a lucky run"
    ]


class TrainingDataWatch(Probe):
    """Notices training on data that must stay unseen (a validation split, the grader's
    held-out set): a backward pass whose graph contains a forward over those rows.

    Rows are matched by their exact bytes, so copies and concatenations are caught;
    a forward without a following backward (say, validation without ``no_grad``)
    is not training and is not reported.
    """

    def __init__(self, protected: dict[str, torch.Tensor], held_out: tuple[str, ...] = ()) -> None:
        self.held_out = held_out
        self.protected = {
            name: (tuple(rows.shape[1:]), set(_row_keys(rows))) for name, rows in protected.items()
        }
        #: The last batch hashed (held, so its memory cannot be reused by another batch):
        #: a model and its first layer see the same input tensor.
        self._last_batch: tuple[torch.Tensor | None, int, list[bytes]] = (None, -1, [])
        self.rows_trained_on: dict[str, set[bytes]] = {}
        self._pending: dict[int, tuple[str, set[bytes], Any]] = {}
        self._handle: Any = None
        self._subscription = contextlib.ExitStack()

    @property
    def findings(self) -> list[str]:
        return [
            f"trained on {len(rows)} of the {len(self.protected[name][1])} rows of {name}"
            for name, rows in self.rows_trained_on.items()
            if rows
        ]

    def protect_after_run(self, name: str, rows: torch.Tensor, trained: torch.Tensor) -> str:
        """Protect a set known only once the run is over (a validation split the script
        made itself), given the rows the model trained on as another probe saw them;
        returns the finding when it was trained on, else ``""``."""
        keys = set(_row_keys(rows)) if len(rows) else set()
        self.protected[name] = (tuple(rows.shape[1:]), keys)
        hits = keys & set(_row_keys(trained)) if len(trained) and keys else set()
        self.rows_trained_on[name] = hits
        return f"trained on {len(hits)} of the {len(keys)} rows of {name}" if hits else ""

    @property
    def voids_assessment(self) -> bool:
        """Training on the grader's own held-out data leaves nothing honest to measure."""
        return any(self.rows_trained_on.get(name) for name in self.held_out)

    @property
    def caps_quality(self) -> bool:
        """Training on a validation split makes its numbers meaningless: no credit above
        the bottom of the row the run reaches."""
        return any(rows for name, rows in self.rows_trained_on.items() if name not in self.held_out)

    def __enter__(self) -> TrainingDataWatch:
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._after_forward)
        self._subscription.enter_context(BACKWARD.subscribed(self._before_backward))
        return self

    def __exit__(self, *exc: object) -> None:
        self._subscription.close()
        self._handle.remove()
        self._pending.clear()
        self._last_batch = (None, -1, [])

    def _after_forward(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if not torch.is_grad_enabled() or not isinstance(output, torch.Tensor):
            return
        if output.grad_fn is None or not inputs or not isinstance(inputs[0], torch.Tensor):
            return
        batch = inputs[0]
        for name, (row_shape, keys) in self.protected.items():
            if batch.dim() >= 1 and tuple(batch.shape[1:]) == row_shape:
                hits = {key for key in self._keys(batch) if key in keys}
                if hits:
                    self._pending[id(output.grad_fn)] = (name, hits, output.grad_fn)

    def _before_backward(self, tensors: Any) -> None:
        if self._pending and isinstance(tensors, torch.Tensor):
            self._count_reached(tensors.grad_fn)

    def _keys(self, batch: torch.Tensor) -> list[bytes]:
        cached, version, keys = self._last_batch
        if cached is not batch or version != batch._version:
            keys = _row_keys(batch)
            self._last_batch = (batch, batch._version, keys)
        return keys

    def _count_reached(self, root: Any, limit: int = 200_000) -> None:
        """Walk the graph being backpropagated; pending forwards it reaches were trained on."""
        seen, stack = set(), [root]
        while stack and len(seen) < limit:
            node = stack.pop()
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if id(node) in self._pending:
                name, hits, _node = self._pending[id(node)]
                self.rows_trained_on.setdefault(name, set()).update(hits)
            stack.extend(next_node for next_node, _index in node.next_functions)
        self._pending.clear()


def _row_keys(rows: torch.Tensor) -> list[bytes]:
    """The exact bytes of each row, computed in one pass (called on every training batch)."""
    flat = rows.detach().cpu().contiguous().numpy().reshape(len(rows), -1)
    return [row.tobytes() for row in flat]
