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
        self.steps = 0
        self._handle: Any = None

    def __enter__(self) -> TrainabilityProbe:
        self._handle = register_optimizer_step_pre_hook(self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._handle.remove()

    def _record(self, optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        self.steps += 1
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
    #: require grad (or received a gradient) but no optimizer ever stepped them
    orphans: Group
    orphan_grad_norm: float | None
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
    model: torch.nn.Module | None, probe: TrainabilityProbe, backbone: list[torch.Tensor]
) -> Audit:
    names = {} if model is None else {id(p): n for n, p in model.named_parameters()}
    params = [] if model is None else list(model.parameters())
    idle = [
        (names.get(pid, "a parameter outside the model"), param)
        for pid, param in probe.held.items()
        if pid not in probe.graded_ids
    ]
    orphans = [
        (names[id(param)], param)
        for param in params
        if (param.requires_grad or param.grad is not None) and id(param) not in probe.held
    ]
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
        backbone_idle=bool(backbone)
        and all(id(p) in probe.held and id(p) not in probe.graded_ids for p in backbone),
    )


def _group(named: list[tuple[str, torch.Tensor]]) -> Group:
    return Group([name for name, _ in named], sum(param.numel() for _, param in named))
