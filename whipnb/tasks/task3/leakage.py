"""Direct evidence of leakage: validation images that are augmented copies of
training images.

Two augmented copies of one original share its exact background noise, which
no other image has.  So each image is reduced to its fine detail (the image
minus its 3x3 local mean: mostly that noise), normalised, and compared with
every training image, flipped both ways, by correlation.  A copy of a training
original correlates far more strongly than any genuinely new image does; the
grader measures how strongly new images correlate (its own fresh images against
the same training images) and calls a validation image a near-duplicate when it
beats the new images' 99th percentile by a clear margin.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: A near-duplicate beats the fresh images' 99th-percentile correlation by this much.
MARGIN = 0.10
#: Training rows compared (the first ones seen), to bound the cost.
MAX_TRAINING_ROWS = 12_000


@dataclass(frozen=True)
class Overlap:
    """How many validation images have a near-duplicate among the training images."""

    validated: int
    duplicated: int
    threshold: float
    typical_copy: float  #: median best correlation of the validation images
    typical_fresh: float  #: median best correlation of the grader's fresh images
    #: validation images identical to a training image: trained on directly, not augmented
    identical: int = 0

    @property
    def share(self) -> float:
        return self.duplicated / self.validated if self.validated else 0.0


def fingerprints(rows: torch.Tensor, side: int) -> torch.Tensor:
    """Fine detail of each ``(n, side*side)`` image, centred and of unit length."""
    images = rows.reshape(len(rows), 1, side, side).float()
    local_mean = F.avg_pool2d(F.pad(images, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    detail = (images - local_mean).reshape(len(rows), -1)
    detail = detail - detail.mean(dim=1, keepdim=True)
    return detail / detail.norm(dim=1, keepdim=True).clamp_min(1e-8)


def best_match(rows: torch.Tensor, training: torch.Tensor, side: int) -> torch.Tensor:
    """For each row, its highest correlation with any training image under any flip."""
    reference = fingerprints(training, side).T
    images = rows.reshape(len(rows), side, side)
    flips = (images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2))
    scores = [fingerprints(flipped.reshape(len(rows), -1), side) @ reference for flipped in flips]
    return torch.stack(scores).amax(dim=0).amax(dim=1)


def overlap(
    training: torch.Tensor, validation: torch.Tensor, fresh: torch.Tensor, side: int
) -> Overlap:
    """Near-duplicates of ``training`` among ``validation``, calibrated on ``fresh``."""
    if len(training) == 0 or len(validation) == 0:
        return Overlap(len(validation), 0, float("nan"), float("nan"), float("nan"))
    identical = _identical(training, validation)
    training = training[:MAX_TRAINING_ROWS]
    copies = best_match(validation, training, side)
    new = best_match(fresh, training, side)
    threshold = float(torch.quantile(new, 0.99)) + MARGIN
    return Overlap(
        validated=len(validation),
        duplicated=int((copies > threshold).sum()),
        threshold=threshold,
        typical_copy=float(copies.median()),
        typical_fresh=float(new.median()),
        identical=identical,
    )


def _identical(training: torch.Tensor, validation: torch.Tensor) -> int:
    """How many validation rows equal some training row exactly (byte for byte)."""
    seen = {row.tobytes() for row in training.detach().float().contiguous().numpy()}
    return sum(row.tobytes() in seen for row in validation.detach().float().contiguous().numpy())
