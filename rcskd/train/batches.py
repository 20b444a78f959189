"""Mini-batches over in-memory uint8 tensors (the prepared cache fits in memory)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from rcskd.data.dataset import TensorSplit


class Batches:
    """(images, labels, global batch size) batches: in order, shuffled, or class-balanced.

    Randomness comes only from `generator` (a CPU generator: the order is drawn on the host and
    is the same on every device), so the same generator state gives the same batches. With
    `world` > 1, process `rank` takes its contiguous share of each global batch: the processes
    together see exactly the one-process batches, and the global size lets each weigh its share
    (`share_weight`). A last batch smaller than `world` is skipped by every process.

    Images are indexed where they live: the epoch's order goes to the device once (no copy per
    batch); from pinned host memory a batch is pinned again, so its copy to the GPU is
    asynchronous (indexing returns ordinary pageable memory).
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
        n = len(self.split.labels)
        full, last = divmod(n, self.batch_size)
        return full + (1 if last >= max(self.world, 1) and last > 0 else 0)

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

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, int]]:
        images, labels = self.split.images, self.split.labels
        order = self._order()
        starts = range(0, len(order), self.batch_size)
        sizes = [min(self.batch_size, len(order) - start) for start in starts]
        order = order.to(images.device)
        pinned = images.device.type == "cpu" and images.is_pinned()
        for index, start in enumerate(range(0, len(order), self.batch_size)):
            idx = order[start : start + self.batch_size]
            if self.world > 1:
                if sizes[index] < self.world:
                    continue  # a last batch too small to share: every process skips it
                idx = idx.tensor_split(self.world)[self.rank]
            batch_images, batch_labels = images[idx], labels[idx]
            if pinned:
                batch_images, batch_labels = batch_images.pin_memory(), batch_labels.pin_memory()
            yield batch_images, batch_labels, sizes[index]


def share_weight(local: int, global_size: int, world: int) -> float:
    """What a process multiplies its mean loss by so that DDP's average over processes equals
    the mean over the global batch, however unequal the shares (`tensor_split` gives the first
    processes one image more)."""
    return local * world / global_size if world > 1 else 1.0
