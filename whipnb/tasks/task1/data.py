"""Task 1 data: two classes of 2-D points measured in raw, unnormalised units.

The raw scale is deliberate: it is what makes ``lr=10.0`` blow the loss up,
while every common learning rate from 0.003 to 0.3 (SGD) or 0.001 to 0.1
(Adam) reaches the targets.  The grader draws its held-out set from
:func:`make_samples` with its own seed.
"""

from __future__ import annotations

import torch

CENTERS = torch.tensor([[-1.5, -0.75], [1.5, 0.75]])
SCALE = 4.0
OFFSET = 3.0


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    points = CENTERS[labels] + torch.randn(n, 2, generator=generator)
    return points * SCALE + OFFSET, labels


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2,000 training and 500 validation samples: ``X_train, y_train, X_val, y_val``."""
    points, labels = make_samples(2500, seed)
    return points[:2000], labels[:2000], points[2000:], labels[2000:]
