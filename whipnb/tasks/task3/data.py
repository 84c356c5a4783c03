"""Task 3 data: small grayscale images of four symbols, and the augmentation the
script applies to them.

Every image is 16x16 with one channel: a symbol of random size, stroke width,
brightness and position on a noisy background.  The four classes draw the same
amount of ink, so the mean pixel value says nothing about the class: only the
shape does, which is what the convolutions are for.  About one image in twelve
shows a second symbol of another class, as strong as the first; its label names
the first.  Those images are genuinely ambiguous, so no model scores much above
0.96 on fresh images, while a model that has seen an augmented copy of the very
same image can simply remember its label.  That is the gap data leakage opens.

The script loads :func:`load_images` (600 originals); the grader draws its own
fresh images from :func:`make_samples` with another seed.
"""

from __future__ import annotations

import torch

IMAGE_SIZE = 16
CLASSES = ("two horizontal bars", "two vertical bars", "plus", "diagonal cross")
ORIGINALS = 600
#: Share of images that show a second symbol of another class.
AMBIGUOUS = 0.08
NOISE = 0.2


def _symbol(kind: int, size: int, width: int) -> torch.Tensor:
    """A ``size`` x ``size`` stroke mask of one class (all four use similar ink)."""
    mask = torch.zeros(size, size)
    middle = size // 2 - width // 2
    diagonal = torch.arange(size)
    if kind == 0:
        mask[1 : 1 + width, :] = 1
        mask[size - 1 - width : size - 1, :] = 1
    elif kind == 1:
        mask[:, 1 : 1 + width] = 1
        mask[:, size - 1 - width : size - 1] = 1
    elif kind == 2:
        mask[middle : middle + width, :] = 1
        mask[:, middle : middle + width] = 1
    else:
        for offset in range(width):
            mask[diagonal, (diagonal + offset).clamp(max=size - 1)] = 1
            mask[diagonal, (size - 1 - diagonal - offset).clamp(min=0)] = 1
    return mask


def _draw(image: torch.Tensor, kind: int, generator: torch.Generator) -> None:
    """Draw one symbol of class ``kind`` at a random place, size, width and brightness."""
    size = int(torch.randint(8, 14, (1,), generator=generator))
    width = int(torch.randint(1, 3, (1,), generator=generator))
    brightness = 0.8 + 0.4 * float(torch.rand(1, generator=generator))
    row, col = torch.randint(0, IMAGE_SIZE - size + 1, (2,), generator=generator).tolist()
    patch = image[row : row + size, col : col + size]
    patch.copy_(torch.maximum(patch, brightness * _symbol(kind, size, width)))


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` images ``(n, 1, 16, 16)`` and their labels, drawn with their own generator."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(CLASSES), (n,), generator=generator)
    others = (labels + torch.randint(1, len(CLASSES), (n,), generator=generator)) % len(CLASSES)
    ambiguous = torch.rand(n, generator=generator) < AMBIGUOUS
    images = torch.zeros(n, 1, IMAGE_SIZE, IMAGE_SIZE)
    for index in range(n):
        _draw(images[index, 0], int(labels[index]), generator)
        if ambiguous[index]:
            _draw(images[index, 0], int(others[index]), generator)
    images += NOISE * torch.randn(images.shape, generator=generator)
    return images, labels


def load_images(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The script's dataset: 600 labelled originals, ``images, labels``."""
    return make_samples(ORIGINALS, seed)


def augment(
    images: torch.Tensor, labels: torch.Tensor, copies: int = 1
) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` augmented versions of every image: a random horizontal flip, a
    brightness change of up to 20% and a little fresh noise (torch's global RNG,
    like torchvision's transforms).  Returns all copies and their labels."""
    images = images.repeat(copies, 1, 1, 1)
    flip = torch.rand(len(images)) < 0.5
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    images = images * (0.8 + 0.4 * torch.rand(len(images), 1, 1, 1))
    return images + 0.1 * torch.randn(images.shape), labels.repeat(copies)
