"""Task 2 data: two interleaved spirals of 2-D points, in raw (unnormalised) units.

The arms wind out to a radius of about 20, so a small MLP that has learned
the spirals soon becomes very sure of the far-out points: its logits there
pass +17 within the first dozen epochs, which is where ``sigmoid`` rounds to
exactly 1.0 in float32 and a hand-written ``log(1 - pred)`` returns ``-inf``.
The noise makes the arms overlap a little, so no model is perfect (the best
reach about 0.96 on fresh data).  The grader draws its held-out set from
:func:`make_samples` with its own seed.
"""

from __future__ import annotations

import math

import torch

TURNS = 1.5
NOISE = 1.5


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points and their labels (float 0.0 or 1.0, one arm each)."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    turn = torch.rand(n, generator=generator).sqrt() * TURNS * 2 * math.pi
    radius = 1 + 2 * turn
    angle = turn + math.pi * labels
    points = torch.stack([radius * torch.cos(angle), radius * torch.sin(angle)], dim=1)
    points = points + NOISE * torch.randn(n, 2, generator=generator)
    return points, labels.float()


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2,000 training and 500 validation samples: ``X_train, y_train, X_val, y_val``."""
    points, labels = make_samples(2500, seed)
    return points[:2000], labels[:2000], points[2000:], labels[2000:]
