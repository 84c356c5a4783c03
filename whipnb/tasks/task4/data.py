"""Task 4 data: feature vectors (think image embeddings) tagged with any of 8 tags.

Each tag is present with probability 0.3, independently, and a quarter of the
samples are stripped of every tag, so the label sets really vary: about 56% of
the samples carry two tags or more and 29% carry none (1.8 tags on average).
A sample's features are the sum of its tags' fixed prototype vectors plus
noise, so a linear model trained with a per-tag binary loss reaches a micro-F1
near 0.95.

That mix is what makes both bugs visible.  Argmax predicts exactly one tag per
sample, so it misses the second and third tags and invents one for the empty
samples (F1 about 0.5).  A softmax loss cannot say "no tag" or "three tags":
the tags compete for one unit of probability and a sample without tags gives
no gradient at all, so even with the right decision rule its model predicts
about twice as many tags as there are (F1 about 0.6).

The grader draws its held-out set from :func:`make_samples` with its own seed.
"""

from __future__ import annotations

import torch

TAGS = ("person", "dog", "cat", "car", "tree", "building", "sky", "water")
NUM_LABELS = len(TAGS)
NUM_FEATURES = 24
TAG_PROBABILITY = 0.3
UNTAGGED_FRACTION = 0.25
NOISE = 1.0
#: The prototypes are part of the distribution: the same for every seed.
PROTOTYPES = torch.randn(NUM_LABELS, NUM_FEATURES, generator=torch.Generator().manual_seed(1234))


def make_samples(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` feature vectors and their float multi-hot tags, shapes (n, 24) and (n, 8)."""
    generator = torch.Generator().manual_seed(seed)
    tags = (torch.rand(n, NUM_LABELS, generator=generator) < TAG_PROBABILITY).float()
    tags[torch.rand(n, generator=generator) < UNTAGGED_FRACTION] = 0.0
    features = tags @ PROTOTYPES + NOISE * torch.randn(n, NUM_FEATURES, generator=generator)
    return features, tags


def make_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """2,000 training and 500 validation samples: ``X_train, Y_train, X_val, Y_val``."""
    features, tags = make_samples(2500, seed)
    return features[:2000], tags[:2000], features[2000:], tags[2000:]
