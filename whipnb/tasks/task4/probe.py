"""Which kind of loss did the learner's code really backpropagate?

Every ``backward()`` call hands over the loss tensor with its autograd graph
still attached.  The probe walks that graph before the gradients flow and
records the operations in it, so the verdict rests on the computation that
produced the gradients, not on a class name in the source: ``CrossEntropyLoss``,
``log_softmax`` + ``nll_loss`` and ``BCELoss`` on softmax outputs all show a
softmax across the tags; ``BCEWithLogitsLoss``, ``sigmoid`` + ``BCELoss``,
``MultiLabelSoftMarginLoss`` and a hand-written binary cross-entropy all show a
per-tag sigmoid or binary cross-entropy.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from whipnb.core.instrument import BACKWARD, Probe

#: A softmax normalises the tags against each other: a single-label loss.
SOFTMAX_NODES = frozenset({"LogSoftmaxBackward0", "SoftmaxBackward0", "NllLossBackward0"})
#: Nodes that by themselves make a per-tag binary cross-entropy.
BINARY_NODES = frozenset(
    {
        "BinaryCrossEntropyWithLogitsBackward0",
        "BinaryCrossEntropyBackward0",
        "LogSigmoidBackward0",
        "SoftplusBackward0",
    }
)
#: ``torch.log(torch.sigmoid(z))``: a hand-written binary cross-entropy.
HANDWRITTEN_BINARY = frozenset({"SigmoidBackward0", "LogBackward0"})
#: Enough for any model in these exercises; a larger graph is judged on what was seen.
MAX_NODES = 5_000

SOFTMAX, BINARY, OTHER = "softmax", "binary", "other"


def graph_nodes(loss: torch.Tensor) -> set[str]:
    """The names of the autograd operations that produced ``loss``."""
    names: set[str] = set()
    seen: set[int] = set()
    stack = [loss.grad_fn]
    while stack and len(seen) < MAX_NODES:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        names.add(type(node).__name__)
        stack.extend(parent for parent, _ in node.next_functions)
    return names


def loss_kind(nodes: set[str]) -> str:
    """``softmax`` (tags compete), ``binary`` (one yes/no per tag) or ``other``."""
    if nodes & SOFTMAX_NODES:
        return SOFTMAX
    if nodes & BINARY_NODES or nodes >= HANDWRITTEN_BINARY:
        return BINARY
    return OTHER


class LossKindProbe(Probe):
    """Records the kind of every scalar loss passed to ``backward()``, through the
    grader's one ``backward`` dispatcher (PyTorch has no global hook for it)."""

    def __init__(self) -> None:
        self.kinds: list[str] = []
        #: Every operation seen in any loss graph, to name what was used.
        self.nodes: set[str] = set()
        self._subscription = contextlib.ExitStack()

    def __enter__(self) -> LossKindProbe:
        self._subscription.enter_context(BACKWARD.subscribed(self._before_backward))
        return self

    def __exit__(self, *exc: object) -> None:
        self._subscription.close()

    def _before_backward(self, tensors: Any) -> None:
        if isinstance(tensors, torch.Tensor) and tensors.numel() == 1:
            nodes = graph_nodes(tensors)
            self.kinds.append(loss_kind(nodes))
            self.nodes.update(nodes)

    def fraction(self, kind: str) -> float:
        """Share of the backpropagated losses that were of ``kind``."""
        return self.kinds.count(kind) / len(self.kinds) if self.kinds else 0.0
