"""Task 6 data: 32x32 RGB images of one short stroke in one of four orientations.

Images come the way image files decode, ``(N, 32, 32, 3)`` (height, width,
channels), with labels as int64 one-hot rows, as a labelling tool might export
them.  Each stroke has a random length, position and colour on a noisy
background, and every orientation carries the same amount of ink, so neither
the mean pixel value (chance, 0.25) nor a linear model on the pixels (about
0.35 on held-out images) tells the classes apart: it takes the convolution.
Swapping height and width turns horizontal strokes into vertical ones, which
is how the grader notices a permute with the wrong dimensions.

The grader draws its held-out images from :func:`make_samples` with its own seed.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

IMAGE_SIZE = 32
CLASSES = ("horizontal", "vertical", "diagonal \\", "diagonal /")
NUM_CLASSES = len(CLASSES)
TRAIN_SIZE = 2_000
VAL_SIZE = 500
NOISE = 0.2

#: Unit (dy, dx) direction of each class's stroke; y grows downwards.
_DIRECTIONS = torch.tensor(
    [[0.0, 1.0], [1.0, 0.0], [math.sqrt(0.5), math.sqrt(0.5)], [-math.sqrt(0.5), math.sqrt(0.5)]]
)


def _stroke_ink(labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """(N, H, W) anti-aliased strokes, 2 px wide, 10 to 18 px long, fully inside the frame."""
    n, size = len(labels), IMAGE_SIZE
    half = 5 + 4 * torch.rand(n, generator=generator)
    room = size - 2 * (half + 2)
    centre_y = half + 2 + torch.rand(n, generator=generator) * room
    centre_x = half + 2 + torch.rand(n, generator=generator) * room
    grid = torch.arange(size, dtype=torch.float32)
    dy = grid.view(1, size, 1) - centre_y.view(n, 1, 1)
    dx = grid.view(1, 1, size) - centre_x.view(n, 1, 1)
    direction = _DIRECTIONS[labels]
    uy, ux = direction[:, 0].view(n, 1, 1), direction[:, 1].view(n, 1, 1)
    along = dy * uy + dx * ux
    across = dx * uy - dy * ux
    return (1.5 - across.abs()).clamp(0, 1) * (half.view(n, 1, 1) + 0.5 - along.abs()).clamp(0, 1)


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 32, 32, 3)`` float32 (HWC) and their class ids ``(n,)`` int64."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, NUM_CLASSES, (n,), generator=generator)
    ink = _stroke_ink(labels, generator).unsqueeze(-1)
    colour = 0.5 + 0.5 * torch.rand(n, 1, 1, 3, generator=generator)
    background = 0.3 * torch.rand(n, 1, 1, 3, generator=generator)
    noise = NOISE * torch.randn(n, IMAGE_SIZE, IMAGE_SIZE, 3, generator=generator)
    return background + ink * (colour - background) + noise, labels


def make_data(
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2,000 training and 500 validation images with one-hot labels.

    Returns ``train_images, train_onehot, val_images, val_onehot``: images are
    ``(N, 32, 32, 3)`` float32 in HWC order, labels ``(N, 4)`` int64 one-hot rows.
    """
    images, labels = make_samples(TRAIN_SIZE + VAL_SIZE, seed)
    onehot = F.one_hot(labels, NUM_CLASSES)
    return images[:TRAIN_SIZE], onehot[:TRAIN_SIZE], images[TRAIN_SIZE:], onehot[TRAIN_SIZE:]
