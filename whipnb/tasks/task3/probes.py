"""Task 3 probes: a GPU-like memory budget for autograd graphs, and a record of
the images the model was trained and evaluated on.

On a CPU machine with gigabytes to spare, piled-up graphs never run out of
memory, so the out-of-memory error a GPU would raise is made real by a budget:
every tensor autograd saves for backward passes through
:class:`GraphMemoryBudget` (PyTorch's ``saved_tensors_hooks``), which counts the
bytes still held by graphs that are alive (each storage once; the model's own
parameters are not graph memory) and raises :class:`MemoryBudgetExceeded`, an
``OutOfMemoryError``, the moment they would pass the budget.  The count is exact
and deterministic: the same code fails at the same tensor on every run.

A graph is freed when ``backward()`` has used it or when nothing references its
outputs any more.  ``loss.backward()`` frees the activations of a training step
even if ``total_loss += loss`` keeps the loss; what piles up is the graph of a
forward pass that never reaches ``backward()`` (an evaluation without
``torch.no_grad()``) whose loss is kept.  The probe therefore numbers every
forward pass on data (a *generation*), notes which generations backward used,
and reports afterwards how many never-backpropagated graphs were alive at once,
older than the previous forward pass: a loop that keeps no graph has none.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from whipnb.core.instrument import Probe

MIB = 2**20


class MemoryBudgetExceeded(torch.OutOfMemoryError):
    """Raised inside a forward pass when autograd graphs would hold more than the budget."""

    def _render_traceback_(self) -> list[str]:
        """What IPython shows instead of the traceback: like a GPU's out-of-memory error,
        the message and the script's own lines that led to it, not the hundred frames of
        torch's internals and of the budget's hook that raised it."""
        frames = [f for f in traceback.extract_tb(self.__traceback__) if _scripts(f.filename)]
        heading = "Traceback (most recent call last; the script's own lines):\n"
        return [heading, *traceback.format_list(frames), f"{type(self).__name__}: {self}"]


#: Where library code lives: frames from here are not the learner's script.
_LIBRARIES = tuple(
    {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(torch.__file__).parent)}
    | {str(Path(__file__).parents[2])}  # whipnb itself, wherever it is installed
)


def _scripts(filename: str) -> bool:
    """A frame of the learner's script (a notebook cell, the submission), not a library's."""
    return not filename.startswith(_LIBRARIES) and not filename.startswith("<frozen")


def mib(n_bytes: float) -> str:
    return f"{n_bytes / MIB:.4g} MiB"


@dataclass
class _Generation:
    """One forward pass on data: the tensors its graph saved and what became of them."""

    alive: int = 0  #: saved tensors not yet released
    new_bytes: int = 0  #: bytes of storages this generation was first to save
    backpropagated: bool = False
    released_at: int | None = None  #: forward counter when its last saved tensor was freed


@dataclass(frozen=True)
class GraphReport:
    """What the budget saw, frozen when the learner's code finished."""

    budget_bytes: int
    peak_bytes: int  #: most bytes held, or asked for when the budget was exceeded
    held_at_exit_bytes: int
    exceeded: str  #: the error message, or "" when the budget was never passed
    forwards: int  #: forward passes on data with gradients enabled
    #: Most never-backpropagated graphs alive at once that were older than the
    #: forward pass before the current one, and the bytes they held then.
    piled_graphs: int
    piled_bytes: int
    piled_at: int  #: the forward pass at which that happened
    backpropagated: frozenset[int]


class _Saved:
    """What autograd keeps instead of a saved tensor; its release frees the budget."""

    __slots__ = ("budget", "tensor", "key", "generation")

    def __init__(self, budget: GraphMemoryBudget, tensor: torch.Tensor, key: int, generation: int):
        self.budget, self.tensor, self.key, self.generation = budget, tensor, key, generation

    def __del__(self) -> None:
        self.budget._release(self)


class GraphMemoryBudget(Probe):
    """Context manager: count graph memory, raise ``MemoryBudgetExceeded`` past the budget."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self.held_bytes = 0
        self.peak_bytes = 0
        self.forwards = 0
        self.exceeded = ""
        self.report: GraphReport | None = None
        self._storages: dict[int, list[int]] = {}  # data_ptr -> [bytes, saved tensors using it]
        self._generations: dict[int, _Generation] = {}
        self._saved_since_forward = True
        self._hooks: Any = None
        self._handle: Any = None

    def __enter__(self) -> GraphMemoryBudget:
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, self._unpack)
        self._hooks.__enter__()
        hook = torch.nn.modules.module.register_module_forward_pre_hook(self._before_forward)
        self._handle = hook
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        self._hooks.__exit__(None, None, None)
        self.report = self._freeze()

    # --- hooks ----------------------------------------------------------------

    def _before_forward(self, module: torch.nn.Module, inputs: Any) -> None:
        """A module with parameters called on data (not on activations) starts a new
        forward pass; the inner layers of the same call see the same input before
        anything is saved, so they do not count again."""
        if not torch.is_grad_enabled() or not self._saved_since_forward or not inputs:
            return
        data = inputs[0]
        on_data = isinstance(data, torch.Tensor) and data.grad_fn is None
        if on_data and next(module.parameters(), None) is not None:
            self.forwards += 1
            self._saved_since_forward = False

    def _pack(self, tensor: torch.Tensor) -> Any:
        if tensor.is_leaf and tensor.requires_grad:
            return tensor  # a parameter: model memory, alive with or without a graph
        key, n_bytes = _storage(tensor)
        entry = self._storages.get(key)
        new_bytes = 0
        if entry is None:
            if self.held_bytes + n_bytes > self.budget_bytes:
                raise self._exceed(n_bytes)
            entry = self._storages[key] = [n_bytes, 0]
            self.held_bytes += n_bytes
            self.peak_bytes = max(self.peak_bytes, self.held_bytes)
            new_bytes = n_bytes
        entry[1] += 1
        generation = self._generations.setdefault(self.forwards, _Generation())
        generation.alive += 1
        generation.new_bytes += new_bytes
        generation.released_at = None
        self._saved_since_forward = True
        # A detached alias: keeping the tensor itself would, for a saved output, make a
        # cycle through its grad_fn that runs through C++ and is never collected.
        return _Saved(self, tensor.detach(), key, self.forwards)

    def _unpack(self, packed: Any) -> torch.Tensor:
        if isinstance(packed, _Saved):
            self._generations[packed.generation].backpropagated = True
            return packed.tensor
        return packed

    def _release(self, saved: _Saved) -> None:
        entry = self._storages.get(saved.key)
        if entry is not None:
            entry[1] -= 1
            if entry[1] == 0:
                del self._storages[saved.key]
                self.held_bytes -= entry[0]
        generation = self._generations.get(saved.generation)
        if generation is not None:
            generation.alive -= 1
            if generation.alive == 0:
                generation.released_at = self.forwards

    def _exceed(self, n_bytes: int) -> MemoryBudgetExceeded:
        alive = sum(generation.alive > 0 for generation in self._generations.values())
        self.peak_bytes = max(self.peak_bytes, self.held_bytes + n_bytes)  # what was asked for
        message = (
            f"whipnb memory budget exceeded: tried to keep {mib(n_bytes)} more for backward "
            f"with {mib(self.held_bytes)} already held by autograd graphs that are still alive "
            f"(budget {mib(self.budget_bytes)}, like a GPU's memory); the graphs of {alive} "
            f"forward passes are alive at once"
        )
        self.exceeded = self.exceeded or message
        return MemoryBudgetExceeded(message)

    # --- afterwards -----------------------------------------------------------

    def _freeze(self) -> GraphReport:
        piled, piled_bytes, piled_at = _most_piled(self._generations, self.forwards)
        return GraphReport(
            budget_bytes=self.budget_bytes,
            peak_bytes=self.peak_bytes,
            held_at_exit_bytes=self.held_bytes,
            exceeded=self.exceeded,
            forwards=self.forwards,
            piled_graphs=piled,
            piled_bytes=piled_bytes,
            piled_at=piled_at,
            backpropagated=frozenset(
                number
                for number, generation in self._generations.items()
                if generation.backpropagated
            ),
        )


def _storage(tensor: torch.Tensor) -> tuple[int, int]:
    """The identity and size of the memory behind ``tensor`` (views share their base's)."""
    try:
        storage = tensor.untyped_storage()
        return storage.data_ptr(), storage.nbytes()
    except (RuntimeError, NotImplementedError):  # sparse or otherwise storage-less tensors
        return id(tensor), tensor.numel() * tensor.element_size()


def _most_piled(generations: dict[int, _Generation], forwards: int) -> tuple[int, int, int]:
    """Sweep over forward passes: at the start of pass ``t`` (or at the end of the run,
    ``t = forwards + 1``), a graph that backward never used, made by pass ``g <= t - 2``
    and not yet freed, is piling up."""
    end = forwards + 1  # the end of the run counts as one more moment
    count = [0] * (end + 2)
    size = [0] * (end + 2)
    for number, generation in generations.items():
        if generation.backpropagated:
            continue
        first = number + 2
        last = end if generation.released_at is None else generation.released_at
        if first <= last:
            count[first] += 1
            count[last + 1] -= 1
            size[first] += generation.new_bytes
            size[last + 1] -= generation.new_bytes
    best = (0, 0, 0)
    running_count = running_size = 0
    for moment in range(end + 1):
        running_count += count[moment]
        running_size += size[moment]
        if running_count > best[0]:
            best = (running_count, running_size, moment)
    return best


class ModelInputs(Probe):
    """Records every image batch the model was called on, and which forward pass
    (``GraphMemoryBudget`` generation) it was, so that afterwards the images the
    model was trained on (passes backward used) can be told from the images it
    was only evaluated on.  Rows are kept once each, by their exact bytes."""

    def __init__(
        self, budget: GraphMemoryBudget, image_shape: tuple[int, ...], max_rows: int = 40_000
    ) -> None:
        self.budget = budget
        self.image_shape = image_shape
        self.max_rows = max_rows
        self.rows: list[torch.Tensor] = []
        #: (generation, or None without gradients; indices of the batch's rows)
        self.batches: list[tuple[int | None, list[int]]] = []
        self._index: dict[bytes, int] = {}
        self._last: tuple[Any, int | None] = (None, None)
        self._handle: Any = None

    def __enter__(self) -> ModelInputs:
        self._handle = torch.nn.modules.module.register_module_forward_hook(self._after_forward)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()
        self._last = (None, None)

    def _after_forward(self, module: torch.nn.Module, inputs: Any, output: Any) -> None:
        if not inputs or next(module.parameters(), None) is None:
            return
        batch = inputs[0]
        if not isinstance(batch, torch.Tensor) or not batch.is_floating_point():
            return
        if batch.dim() != 1 + len(self.image_shape) or batch.grad_fn is not None:
            return
        if tuple(batch.shape[1:]) != self.image_shape:
            return
        generation = self.budget.forwards if torch.is_grad_enabled() else None
        if self._last[0] is batch and self._last[1] == generation:
            return  # the same call, seen again by an outer module
        self._last = (batch, generation)
        rows = batch.detach().flatten(1).float().cpu()
        indices = [index for index in map(self._row_index, rows) if index is not None]
        self.batches.append((generation, indices))

    def _row_index(self, row: torch.Tensor) -> int | None:
        key = row.numpy().tobytes()
        index = self._index.get(key)
        if index is None and len(self.rows) < self.max_rows:
            index = self._index[key] = len(self.rows)
            self.rows.append(row.clone())
        return index

    def split(
        self, backpropagated: frozenset[int], besides: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(trained, validated)``, each ``(n, pixels)``: the rows of forward passes that
        backward used, and the rows the model was only evaluated on, never trained on,
        apart from the rows of ``besides`` (the training set itself, evaluated as is
        while the model trained on augmented versions of it)."""
        trained: set[int] = set()
        evaluated: set[int] = set()
        for generation, indices in self.batches:
            learned = generation is not None and generation in backpropagated
            (trained if learned else evaluated).update(indices)
        excluded = set() if besides is None else self._known(besides)
        return self._stack(sorted(trained)), self._stack(sorted(evaluated - trained - excluded))

    def _known(self, rows: torch.Tensor) -> set[int]:
        flat = rows.detach().flatten(1).float().cpu()
        keys = (row.numpy().tobytes() for row in flat)
        return {self._index[key] for key in keys if key in self._index}

    def _stack(self, indices: list[int]) -> torch.Tensor:
        pixels = 1
        for dim in self.image_shape:
            pixels *= dim
        if not indices:
            return torch.zeros(0, pixels)
        return torch.stack([self.rows[index] for index in indices])
