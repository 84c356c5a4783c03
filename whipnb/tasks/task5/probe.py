"""Task 5's own evidence: what the optimizers held, and what could train, step by step.

``requires_grad`` can change while a script runs (a backbone unfrozen halfway,
or only after training), so looking at the flags at the end is not enough: this
probe records, at every ``optimizer.step()``, which parameters the optimizer
held and which of them had a gradient (and required grad) at that moment.
:func:`audit` then sets that record against the trained model: parameters held
but without a gradient at every step can never train (optimizers skip them);
parameters that require grad but that no optimizer ever stepped never move
either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.optim.optimizer import register_optimizer_step_pre_hook

from whipnb.core.instrument import Probe


class TrainabilityProbe(Probe):
    """Context manager: a global optimizer pre-step hook recording held parameters."""

    def __init__(self) -> None:
        self.held: dict[int, torch.Tensor] = {}
        self.trainable_ids: set[int] = set()
        self.graded_ids: set[int] = set()
        #: every parameter, held or not, seen with a gradient at a step or at the end
        self.gradient_ids: set[int] = set()
        #: the optimizers whose step() ran, by id
        self.stepped: set[int] = set()
        self.steps = 0
        self._modules: dict[int, torch.nn.Module] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> TrainabilityProbe:
        self._handles = [
            register_optimizer_step_pre_hook(self._record),
            torch.nn.modules.module.register_module_forward_hook(self._forwarded),
        ]
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._note_gradients()
        self._modules.clear()

    def _forwarded(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if torch.is_grad_enabled():
            self._modules.setdefault(id(module), module)

    def _note_gradients(self) -> None:
        """Which parameters of the modules run so far hold a gradient right now."""
        for module in self._modules.values():
            for param in module.parameters(recurse=False):
                if param.grad is not None:
                    self.gradient_ids.add(id(param))

    def _record(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
        self.stepped.add(id(optimizer))
        self._note_gradients()
        for group in optimizer.param_groups:
            for param in group["params"]:
                self.held[id(param)] = param
                if param.requires_grad:
                    self.trainable_ids.add(id(param))
                if param.grad is not None:
                    self.graded_ids.add(id(param))


@dataclass(frozen=True)
class Group:
    """Some parameters, by name, with how many numbers they hold."""

    names: list[str] = field(default_factory=list)
    count: int = 0

    def __bool__(self) -> bool:
        return bool(self.names)

    def listed(self, limit: int = 4) -> str:
        shown = ", ".join(self.names[:limit])
        return shown + (f" and {len(self.names) - limit} more" if len(self.names) > limit else "")


@dataclass(frozen=True)
class Audit:
    """The optimizer's parameters set against the ones that can train (counts are numbers)."""

    model_count: int
    held_count: int
    steps: int
    #: held by a stepped optimizer, yet without a gradient at every one of its steps
    idle: Group
    #: how many of the idle ones were frozen (requires_grad=False) at every step
    idle_frozen_count: int
    #: received a gradient but no optimizer ever stepped them
    orphans: Group
    orphan_grad_norm: float | None
    #: names of optimizers left in the namespace that hold orphans but never stepped
    unstepped_holders: list[str]
    #: numbers that require grad yet never received a gradient, and are in no optimizer
    cut_off_count: int
    #: every backbone parameter is held and idle: the bug as shipped, untouched
    backbone_idle: bool

    @property
    def consistent(self) -> bool:
        return not self.idle and not self.orphans

    @property
    def consistency(self) -> float:
        """Share of the model's numbers on the right side of the invariant, 0-1."""
        wrong = self.idle.count + self.orphans.count
        return 1.0 - wrong / self.model_count if self.model_count else 0.0

    @property
    def trained_count(self) -> int:
        return self.held_count - self.idle.count


def audit(
    model: torch.nn.Module | None,
    probe: TrainabilityProbe,
    backbone: list[torch.Tensor],
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
) -> Audit:
    """Set the probe's record against ``model``; ``optimizers`` are those the script left
    in its namespace, so an orphan held by one that never stepped can be named."""
    names = {} if model is None else {id(p): n for n, p in model.named_parameters()}
    params = [] if model is None else list(model.parameters())
    idle = [
        (names.get(pid, "a parameter outside the model"), param)
        for pid, param in probe.held.items()
        if pid not in probe.graded_ids
    ]
    received = probe.gradient_ids | {id(p) for p in params if p.grad is not None}
    orphans = [
        (names[id(param)], param)
        for param in params
        if id(param) in received and id(param) not in probe.held
    ]
    cut_off = sum(
        p.numel()
        for p in params
        if p.requires_grad and id(p) not in received and id(p) not in probe.held
    )
    grads = [param.grad.detach().double() for _, param in orphans if param.grad is not None]
    grad_norm = math.sqrt(sum(float(g.pow(2).sum()) for g in grads)) if grads else None
    return Audit(
        model_count=sum(param.numel() for param in params),
        held_count=sum(param.numel() for param in probe.held.values()),
        steps=probe.steps,
        idle=_group(idle),
        idle_frozen_count=sum(p.numel() for _, p in idle if id(p) not in probe.trainable_ids),
        orphans=_group(orphans),
        orphan_grad_norm=grad_norm,
        unstepped_holders=_unstepped_holders(optimizers or {}, probe, orphans),
        cut_off_count=cut_off,
        backbone_idle=bool(backbone)
        and all(id(p) in probe.held and id(p) not in probe.graded_ids for p in backbone),
    )


def _unstepped_holders(
    optimizers: dict[str, torch.optim.Optimizer],
    probe: TrainabilityProbe,
    orphans: list[tuple[str, torch.Tensor]],
) -> list[str]:
    orphan_ids = {id(param) for _, param in orphans}
    return [
        name
        for name, optimizer in optimizers.items()
        if id(optimizer) not in probe.stepped
        and any(id(p) in orphan_ids for group in optimizer.param_groups for p in group["params"])
    ]


def _group(named: list[tuple[str, torch.Tensor]]) -> Group:
    return Group([name for name, _ in named], sum(param.numel() for _, param in named))
