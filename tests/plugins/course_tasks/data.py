"""Two well-separated blobs of 2-D points; the grader draws its own with another seed."""

import torch


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=generator)
    points = torch.randn(n, 2, generator=generator) + 3.0 * labels[:, None] - 1.5
    return points, labels


def make_data() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """200 training and 100 validation points: ``X_train, y_train, X_val, y_val``."""
    points, labels = make_samples(300, 0)
    return points[:200], labels[:200], points[200:], labels[200:]
