"""The saturation drill: does the learner's loss survive predictions of exactly 0 and 1?

Whether a hand-written binary cross-entropy turns NaN depends on how confident
the model gets during one particular run, so a run without NaN proves little:
a smaller learning rate or fewer epochs can keep ``sigmoid(logits)`` away from
1.0 while ``log(1 - pred)`` stays unprotected.  The drill tests the loss itself,
on one training step in five, without touching the learner's training:

* the output of the model's last ``nn.Linear`` layer (the logits) gets a
  *shadow*: a separate tensor of the same shape holding saturated logits (+M
  and -M alternately, so ``sigmoid`` gives exactly 1.0 and 0.0 in float32);
* a :class:`~torch.overrides.TorchFunctionMode` replays every torch operation
  that reads a shadowed tensor on the shadows, so the shadows flow through the
  learner's own loss code exactly as the real values do;
* when ``backward()`` is called on a loss, the shadow of that loss says what the
  same code returns once the model is fully confident: finite, or NaN/inf.

The replay runs under ``no_grad``, keeps the RNG state, never writes to a
tensor the learner owns, and skips any operation it cannot replay; it also
records the bounds of every ``clamp`` on the loss path and which ``log`` calls
received an exact zero, so findings can say why a fix did not hold.
"""

from __future__ import annotations

import contextlib
import math
import struct
import weakref
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.nn.modules.module import register_module_forward_hook
from torch.optim.optimizer import register_optimizer_step_pre_hook
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack

from whipnb.core.instrument import BACKWARD, Probe

#: Saturated logit: sigmoid(+M) == 1.0 and sigmoid(-M) == 0.0 exactly in float32
#: (1.0 from about 16.6, 0.0 below about -88.7).
MAGNITUDE = 120.0

#: Drill one training step in this many (the first included): the loss code is the
#: same on every step, and replaying costs about as much as the loss itself.
DRILL_EVERY = 5

_NEVER_REPLAY = {"backward", "grad", "register_hook", "retain_grad"}
_LOGS = {"log", "log_", "log2", "log2_", "log10", "log10_", "log1p", "log1p_", "xlogy"}
_GUARDS = {"where", "nan_to_num", "nan_to_num_", "masked_fill", "masked_fill_"}
_CLAMPS = {"clamp", "clamp_", "clip", "clip_", "clamp_min", "clamp_min_", "clamp_max", "clamp_max_"}


@dataclass(frozen=True)
class BackwardRecord:
    """One ``backward()`` on a scalar loss, seen by the drill."""

    logit_min: float  #: smallest real output of the latest linear layer before it
    logit_max: float  #: largest real output of the latest linear layer before it
    drill: float | None  #: the loss recomputed on saturated logits; None if it could not be


@dataclass
class DrillReport:
    """What the drill found over a whole run."""

    records: list[BackwardRecord] = field(default_factory=list)
    #: (min, max) of every clamp applied on the loss path, in order of first use.
    clamp_bounds: list[tuple[float | None, float | None]] = field(default_factory=list)
    #: Which logs received an exact zero under saturation: "log(pred)", "log(1 - pred)", "log".
    zero_logs: list[str] = field(default_factory=list)
    #: Python numbers on the loss path that differ from 1 but are exactly 1.0 in float32
    #: (``1 + 1e-15``, ``1 - 1e-15``): an epsilon that float32 cannot hold.
    lost_epsilons: list[float] = field(default_factory=list)
    #: Largest logit of any training forward pass, backpropagated or not.
    peak_logit: float = math.nan
    #: Training forward passes whose loss never reached ``backward()`` (skipped batches).
    skipped: int = 0
    #: The dtypes of the real sigmoids on the loss path (drilled steps), in order of first use.
    sigmoid_dtypes: list[str] = field(default_factory=list)
    #: Whether a real sigmoid on the loss path returned exactly 1.0 (drilled steps).
    sigmoid_reached_one: bool = False
    #: Operations on the loss path that can hide a NaN or infinity from the loss value
    #: while backward() still differentiates what they hide (``where``, ``nan_to_num``).
    guards: list[str] = field(default_factory=list)

    @property
    def tested(self) -> list[float]:
        return [record.drill for record in self.records if record.drill is not None]

    @property
    def first_failure(self) -> int | None:
        """Index of the first backward whose saturated replay was NaN or infinite."""
        return next(
            (
                i
                for i, record in enumerate(self.records)
                if record.drill is not None and not math.isfinite(record.drill)
            ),
            None,
        )

    @property
    def verdict(self) -> str:
        """``failed`` (NaN/inf on saturation), ``held`` (always finite) or ``untested``."""
        if self.first_failure is not None:
            return "failed"
        return "held" if self.tested else "untested"

    @property
    def logit_max(self) -> float:
        """The largest logit among backpropagated steps (NaN if none was finite)."""
        finite = [record.logit_max for record in self.records if math.isfinite(record.logit_max)]
        return max(finite, default=math.nan)

    @property
    def logit_min(self) -> float:
        """The smallest logit among backpropagated steps (NaN if none was finite)."""
        finite = [record.logit_min for record in self.records if math.isfinite(record.logit_min)]
        return min(finite, default=math.nan)


class SaturationDrill(Probe):
    """Context manager that runs the drill (see the module doc) and fills :attr:`report`.

    The replaying torch function mode is pushed only from the first linear layer
    of a training forward pass to the next ``optimizer.step()``, so the
    optimizer's own arithmetic never pays for it.
    """

    def __init__(self, magnitude: float = MAGNITUDE) -> None:
        self.magnitude = magnitude
        self.report = DrillReport()
        self._mode = _Replay(self)
        self._armed = False
        self._shadows: dict[int, tuple[weakref.ref[torch.Tensor], torch.Tensor]] = {}
        self._origin_size = 0
        self._logit_range = (math.nan, math.nan)
        self._in_hook = False
        #: The linear layer that ran last before the latest backward: the logits' layer.
        self._final: torch.nn.Module | None = None
        self._latest: torch.nn.Module | None = None
        self._awaiting_backward = False
        self._handles: list[Any] = []
        self._subscription = contextlib.ExitStack()

    # --- installing -------------------------------------------------------------

    def __enter__(self) -> SaturationDrill:
        self._handles = [
            register_module_forward_hook(self._after_forward),
            register_optimizer_step_pre_hook(self._before_step),
        ]
        self._subscription.enter_context(BACKWARD.subscribed(self._before_backward))
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.report.skipped += self._awaiting_backward
        self._disarm()
        self._subscription.close()
        for handle in self._handles:
            handle.remove()
        self._shadows.clear()
        self._final = self._latest = None

    def _arm(self) -> None:
        if not self._armed:
            self._mode.__enter__()
            self._armed = True

    def _disarm(self) -> None:
        if self._armed and _current_mode() is self._mode:
            self._mode.__exit__(None, None, None)
            self._armed = False

    def _before_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self._disarm()

    def _before_backward(self, tensors: Any) -> None:
        if isinstance(tensors, torch.Tensor) and tensors.numel() == 1:
            self._record(tensors)

    def _record(self, loss: torch.Tensor) -> None:
        shadow = self._shadow_of(loss)
        drill = None if shadow is None else float(shadow.detach().reshape(()).double())
        self.report.records.append(BackwardRecord(*self._logit_range, drill))
        self.report.peak_logit = _nanmax(self.report.peak_logit, self._logit_range[1])
        self._final = self._latest
        self._awaiting_backward = False

    # --- shadows ------------------------------------------------------------------

    def _shadow_of(self, value: Any) -> torch.Tensor | None:
        if not isinstance(value, torch.Tensor):
            return None
        entry = self._shadows.get(id(value))
        if entry is None or entry[0]() is not value:
            return None
        return entry[1]

    def _set_shadow(self, tensor: torch.Tensor, shadow: torch.Tensor) -> None:
        key = id(tensor)
        shadows = self._shadows

        def forget(_: object, key: int = key) -> None:
            shadows.pop(key, None)

        shadows[key] = (weakref.ref(tensor, forget), shadow)

    def _after_forward(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        """Give the logits (the last linear layer's output, in training) a saturated shadow.

        Until the first ``backward()`` shows which linear layer is the last one,
        every linear layer's output gets a shadow; later layers overwrite it.
        """
        if self._in_hook or not isinstance(module, torch.nn.Linear):
            return
        if not (isinstance(output, torch.Tensor) and output.is_floating_point()):
            return
        if not torch.is_grad_enabled() or output.numel() == 0:
            return
        self._latest = module
        if self._final is not None and module is not self._final:
            return
        if self._final is not None:
            self.report.skipped += self._awaiting_backward
            self._awaiting_backward = True
        self._in_hook = True
        try:
            with torch.no_grad():
                values = output.detach()
                self._logit_range = (float(values.min()), float(values.max()))
                if self._final is not None:  # before the first backward, any layer may run here
                    self.report.peak_logit = _nanmax(self.report.peak_logit, self._logit_range[1])
                if len(self.report.records) % DRILL_EVERY == 0:
                    signs = torch.ones(output.numel(), dtype=output.dtype)
                    signs[1::2] = -1.0
                    self._set_shadow(output, (signs * self.magnitude).reshape(output.shape))
                    self._origin_size = output.numel()
                    self._arm()
        except Exception:  # noqa: BLE001 - a probe must never break the learner's forward pass
            pass
        finally:
            self._in_hook = False

    def _replay(self, func: Any, args: tuple, kwargs: dict, result: Any) -> None:
        """Run ``func`` again on the shadows of its arguments; give the result their shadow."""
        mutated = result is None or (bool(args) and result is args[0])
        if not (mutated or _holds_tensors(result)):
            return  # .item(), .shape, comparisons to Python values...: nothing to follow
        replay_args = tuple(self._substitute(value) for value in args)
        replay_kwargs = {key: self._substitute(value) for key, value in kwargs.items()}
        unchanged = _same(tuple(replay_kwargs.values()), tuple(kwargs.values()))
        if unchanged and _same(replay_args, args):
            return
        name = getattr(func, "__name__", "")
        self._note_real(name, result)
        if name in _NEVER_REPLAY or "out" in kwargs:
            return  # side effects, or a learner's tensor as the output: never redo those
        shadowed_target = bool(args) and isinstance(args[0], torch.Tensor)
        if mutated and not (shadowed_target and replay_args[0] is not args[0]):
            return  # an in-place change to a tensor without a shadow: never redo it for real
        with torch.no_grad(), _rng_kept(name):
            replayed = func(*replay_args, **replay_kwargs)
        self._observe(name, replay_args, replay_kwargs)
        if mutated:
            if result is not None:
                self._set_shadow(result, replay_args[0])
        elif isinstance(result, torch.Tensor):
            if isinstance(replayed, torch.Tensor) and replayed.shape == result.shape:
                self._set_shadow(result, replayed)
        elif isinstance(replayed, (list, tuple)) and len(replayed) == len(result):
            for real, shadow in zip(result, replayed, strict=True):
                if isinstance(real, torch.Tensor) and isinstance(shadow, torch.Tensor):
                    self._set_shadow(real, shadow)

    def _note_real(self, name: str, result: Any) -> None:
        """What the real computation on the loss path did: its sigmoids, its guards."""
        report = self.report
        if name in _GUARDS and name not in report.guards:
            report.guards.append(name)
        if name in ("sigmoid", "sigmoid_") and isinstance(result, torch.Tensor):
            dtype = str(result.dtype).removeprefix("torch.")
            if dtype not in report.sigmoid_dtypes:
                report.sigmoid_dtypes.append(dtype)
            report.sigmoid_reached_one |= bool((result.detach() == 1).any())

    def _substitute(self, value: Any) -> Any:
        """``value`` with each shadowed tensor (itself, or an item of a list or tuple) swapped."""
        if isinstance(value, torch.Tensor):
            shadow = self._shadow_of(value)
            return value if shadow is None else shadow
        if isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value):
            swapped = [self._substitute(item) for item in value]
            if _same(swapped, value):
                return value
            return type(value)(swapped) if type(value) in (list, tuple) else tuple(swapped)
        return value

    def _observe(self, name: str, args: tuple, kwargs: dict) -> None:
        """Remember clamp bounds, lost epsilons and logs of exact zeros on the loss path."""
        lost = self.report.lost_epsilons
        for value in (*args, *kwargs.values()):
            if isinstance(value, float) and float32(value) == 1.0 != value and value not in lost:
                lost.append(value)
        name = name.removeprefix("special_")  # torch.special.xlogy and friends
        if name in _CLAMPS:
            bounds = _clamp_bounds(name, args, kwargs)
            if bounds not in self.report.clamp_bounds:
                self.report.clamp_bounds.append(bounds)
        elif name in _LOGS and args and isinstance(args[-1], torch.Tensor):
            value = args[-1]  # the logged tensor; xlogy(x, y) logs its last argument
            edge = -1.0 if name.startswith("log1p") else 0.0
            side = self._which_log(value.detach() <= edge)
            if side and side not in self.report.zero_logs:
                self.report.zero_logs.append(side)

    def _which_log(self, at_edge: torch.Tensor) -> str:
        """Name the log by where its zeros are: under +M (pred == 1) or -M (pred == 0)."""
        if not bool(at_edge.any()):
            return ""
        if at_edge.numel() != self._origin_size or self._origin_size < 2:
            return "log"
        flat = at_edge.reshape(-1)
        saturated_high, saturated_low = bool(flat[0::2].any()), bool(flat[1::2].any())
        if saturated_high and not saturated_low:
            return "log(1 - pred)"
        if saturated_low and not saturated_high:
            return "log(pred)"
        return "log"


class _Replay(TorchFunctionMode):
    """Replays every torch operation on shadowed tensors; the drill pushes it only while armed."""

    def __init__(self, drill: SaturationDrill) -> None:
        super().__init__()
        self.drill = drill

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's API
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if self.drill._in_hook:
            return result
        with contextlib.suppress(Exception):  # an operation it cannot replay is skipped
            self.drill._replay(func, args, kwargs, result)
        return result


def _nanmax(current: float, new: float) -> float:
    if not math.isfinite(new):
        return current
    return new if math.isnan(current) else max(current, new)


def float32(value: float) -> float:
    """``value`` rounded to the nearest float32, the precision the loss is computed in."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _current_mode() -> Any:
    stack = _get_current_function_mode_stack()
    return stack[-1] if stack else None


def _same(new: Sequence[Any], old: Sequence[Any]) -> bool:
    """Nothing was swapped (identity, never ``==``, which compares tensors element-wise)."""
    return len(new) == len(old) and all(a is b for a, b in zip(new, old, strict=True))


def _holds_tensors(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return isinstance(value, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in value)


_RANDOM_WORDS = ("rand", "dropout", "bernoulli", "normal", "multinomial", "poisson", "uniform")


@contextlib.contextmanager
def _rng_kept(name: str) -> Iterator[None]:
    """Leave the global RNG as it was after a replay that may draw from it."""
    if not any(word in name for word in _RANDOM_WORDS):
        yield
        return
    state = torch.random.get_rng_state()
    try:
        yield
    finally:
        torch.random.set_rng_state(state)


def _clamp_bounds(name: str, args: tuple, kwargs: dict) -> tuple[float | None, float | None]:
    def number(value: Any) -> float | None:
        if value is None:
            return None
        if isinstance(value, torch.Tensor):
            return float(value.detach().reshape(-1)[0]) if value.numel() == 1 else None
        return float(value)

    if name.startswith("clamp_min"):
        return number(args[1] if len(args) > 1 else kwargs.get("min")), None
    if name.startswith("clamp_max"):
        return None, number(args[1] if len(args) > 1 else kwargs.get("max"))
    low = args[1] if len(args) > 1 else kwargs.get("min")
    high = args[2] if len(args) > 2 else kwargs.get("max")
    return number(low), number(high)
