"""Mini-batches over in-memory uint8 tensors (the prepared cache fits in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from rcskd.data.dataset import TensorSplit


class Batches:
    """(images, labels) batches: in order, shuffled, or class-balanced (with replacement).

    Randomness comes only from `generator`, so the same generator state gives the same batches.
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = False,
        balanced: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.balanced = balanced
        self.generator = generator

    def __len__(self) -> int:
        return (len(self.split.labels) + self.batch_size - 1) // self.batch_size

    def _order(self) -> Tensor:
        n = len(self.split.labels)
        if self.balanced:
            counts = torch.bincount(self.split.labels).float()
            weights = (1.0 / counts.clamp_min(1))[self.split.labels]
            return torch.multinomial(weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            yield self.split.images[idx], self.split.labels[idx]
