"""Task 6's probe: what shapes reach the network, and what the loss is given.

Most partial fixes of this task crash, so the evidence has to be collected on
the way to the crash.  While the learner's code runs, :class:`ShapeProbe`
records, for every outermost module call (normally ``model(...)``):

* the input shape, whether gradients were enabled and the module was training,
* the input of its first ``Conv2d`` (with ``in_channels``) and of its first
  ``Linear`` (with ``in_features``),
* the output shape, or the innermost module that raised;

and for every loss (any ``nn`` loss module, and ``F.cross_entropy`` /
``F.nll_loss`` called directly) the logits' and target's shapes and dtypes.
The first convolution input of the first training call is kept (8 images) so the
grader can check which way the images were permuted.

Global module hooks with ``always_call=True`` keep the call stack balanced
even when a module raises; everything is removed on exit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.modules.loss import _Loss
from torch.nn.modules.module import (
    register_module_forward_hook,
    register_module_forward_pre_hook,
)

from whipnb.core.instrument import Probe

Shape = tuple[int, ...]

#: Outermost calls kept per module and phase (training or not); later ones only
#: update ``last_call``, so a runaway loop cannot fill the grader's memory and a
#: long training run cannot crowd out the validation calls.
MAX_CALLS = 2_000
KEPT_IMAGES = 8


@dataclass
class ModelCall:
    """One outermost module call (normally ``model(x)``) and what happened inside it."""

    module_id: int
    input_shape: Shape | None
    grad: bool
    training: bool
    conv_input: Shape | None = None
    conv_channels: int | None = None
    linear_input: Shape | None = None
    linear_features: int | None = None
    output_shape: Shape | None = None
    raised_in: str = ""

    @property
    def is_training(self) -> bool:
        return self.grad and self.training


#: Losses that take class indices (the fix), functional or module.
CLASS_INDEX_LOSSES = frozenset({"cross_entropy", "nll_loss", "CrossEntropyLoss", "NLLLoss"})


@dataclass
class LossCall:
    """One loss call (any ``nn`` loss module, or functional cross-entropy / NLL)."""

    function: str
    input_shape: Shape
    target_shape: Shape
    target_dtype: torch.dtype
    error: str = ""

    @property
    def takes_class_indices(self) -> bool:
        return self.function in CLASS_INDEX_LOSSES

    @property
    def target_is_float(self) -> bool:
        return self.target_dtype.is_floating_point

    @property
    def target_kind(self) -> str:
        """``indices``, ``probabilities`` (float, same shape) or ``onehot_int`` / ``other``."""
        same_shape = self.target_shape == self.input_shape
        if same_shape:
            return "probabilities" if self.target_is_float else "onehot_int"
        if not self.target_is_float and self.target_shape == self.input_shape[:1]:
            return "indices"
        return "other"


@dataclass
class ProbeRecord:
    """Everything :class:`ShapeProbe` saw during one run."""

    calls: list[ModelCall] = field(default_factory=list)
    #: The modules called outermost, by id (so a model the script never named is still found).
    modules: dict[int, nn.Module] = field(default_factory=dict)
    last_call: ModelCall | None = None
    call_count: int = 0
    losses: list[LossCall] = field(default_factory=list)
    #: Distinct class ids seen in index targets over the whole run.
    target_classes: set[int] = field(default_factory=set)
    #: A copy of the first training call's first convolution input (a few images).
    first_conv_images: torch.Tensor | None = None


def error_text(error: BaseException) -> str:
    """``Type: first line of the message``, safe for exceptions without a message."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _shape(value: Any) -> Shape | None:
    return tuple(value.shape) if isinstance(value, torch.Tensor) else None


class ShapeProbe(Probe):
    """Records shapes at the network's entry, first conv, first linear, exit and loss."""

    def __init__(self) -> None:
        self.record = ProbeRecord()
        self._stack: list[ModelCall] = []
        self._open_losses: list[LossCall | None] = []
        self._kept: Counter[tuple[int, bool]] = Counter()
        self._handles: list[Any] = []
        self._originals: dict[str, Callable[..., Any]] = {}

    # --- installation -------------------------------------------------------------

    def __enter__(self) -> ProbeRecord:
        self._handles = [
            register_module_forward_pre_hook(self._before),
            register_module_forward_hook(self._after, always_call=True),
        ]
        for name in ("cross_entropy", "nll_loss"):
            original = getattr(F, name)
            self._originals[name] = original
            setattr(F, name, self._wrap_loss(name, original))
        return self.record

    def __exit__(self, *exc_info: Any) -> None:
        for handle in self._handles:
            handle.remove()
        for name, original in self._originals.items():
            setattr(F, name, original)
        self._handles, self._originals, self._stack, self._open_losses = [], {}, [], []

    # --- module hooks ---------------------------------------------------------------

    def _before(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        first = args[0] if args else None
        if self._stack:
            call = self._stack[0]
        else:
            call = ModelCall(id(module), _shape(first), torch.is_grad_enabled(), module.training)
            self._keep(call, module)
        self._stack.append(call)
        if isinstance(module, _Loss):
            target = args[1] if len(args) > 1 else None
            self._open_losses.append(self._loss_call(type(module).__name__, first, target))
        elif isinstance(module, nn.Conv2d) and call.conv_input is None:
            call.conv_input, call.conv_channels = _shape(first), module.in_channels
            if call.is_training and self.record.first_conv_images is None:
                self._keep_images(first)
        elif isinstance(module, nn.Linear) and call.linear_input is None:
            call.linear_input, call.linear_features = _shape(first), module.in_features

    def _after(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        if not self._stack:
            return
        call = self._stack.pop()
        if isinstance(module, _Loss) and self._open_losses:
            self._open_losses.pop()
        if output is None and not call.raised_in:
            call.raised_in = type(module).__name__  # the innermost module runs this first
        if not self._stack:
            call.output_shape = _shape(output)

    def _keep(self, call: ModelCall, module: nn.Module) -> None:
        self.record.call_count += 1
        self.record.last_call = call
        bucket = (call.module_id, call.is_training)
        if self._kept[bucket] < MAX_CALLS and len(self.record.calls) < 10 * MAX_CALLS:
            self._kept[bucket] += 1
            self.record.calls.append(call)
            self.record.modules.setdefault(call.module_id, module)

    def _keep_images(self, images: Any) -> None:
        if isinstance(images, torch.Tensor) and images.dim() in (3, 4):
            batch = images if images.dim() == 4 else images.unsqueeze(0)
            self.record.first_conv_images = batch[:KEPT_IMAGES].detach().float().clone()

    # --- losses -------------------------------------------------------------------------

    def _wrap_loss(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def loss(input: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
            # Inside nn.CrossEntropyLoss the module call was recorded already.
            if self._open_losses:
                call = self._open_losses[-1]
            else:
                call = self._loss_call(name, input, target)
            try:
                return original(input, target, *args, **kwargs)
            except Exception as error:
                if call is not None:
                    call.error = error_text(error)
                raise

        loss.__wrapped__ = original  # type: ignore[attr-defined]
        loss.__doc__ = original.__doc__
        return loss

    def _loss_call(self, name: str, input: Any, target: Any) -> LossCall | None:
        if not (isinstance(input, torch.Tensor) and isinstance(target, torch.Tensor)):
            return None
        call = LossCall(name, tuple(input.shape), tuple(target.shape), target.dtype)
        if len(self.record.losses) < MAX_CALLS:
            self.record.losses.append(call)
        if call.target_kind == "indices" and target.numel():
            self.record.target_classes.update(int(v) for v in torch.unique(target.detach()))
        return call


__all__ = ["LossCall", "ModelCall", "ProbeRecord", "ShapeProbe", "error_text"]
