"""Mini-batches over in-memory uint8 tensors (the prepared cache fits in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from rcskd.data.dataset import TensorSplit


class Batches:
    """(images, labels) batches: in order, shuffled, or class-balanced (with replacement).

    Randomness comes only from `generator` (a CPU generator: the order is drawn on the host and
    is the same on every device), so the same generator state gives the same batches. With
    `world` > 1, process `rank` takes its contiguous share of each global batch: the processes
    together see exactly the one-process batches. Images are indexed where they live (GPU).
    """

    def __init__(
        self,
        split: TensorSplit,
        batch_size: int,
        shuffle: bool = False,
        balanced: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.balanced = balanced
        self.generator = generator
        self.rank, self.world = rank, world

    def __len__(self) -> int:
        return (len(self.split.labels) + self.batch_size - 1) // self.batch_size

    def _order(self) -> Tensor:
        n = len(self.split.labels)
        if self.balanced:
            labels = self.split.labels.cpu()
            counts = torch.bincount(labels).float()
            weights = (1.0 / counts.clamp_min(1))[labels]
            return torch.multinomial(weights, n, replacement=True, generator=self.generator)
        if self.shuffle:
            return torch.randperm(n, generator=self.generator)
        return torch.arange(n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self._order()
        device = self.split.images.device
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            if self.world > 1:
                if len(idx) < self.world:
                    continue  # a last batch too small to share: every process skips it
                idx = idx.tensor_split(self.world)[self.rank]
            idx = idx.to(device, non_blocking=True)
            yield self.split.images[idx], self.split.labels[idx]
