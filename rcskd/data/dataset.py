"""A torch Dataset over one split of the prepared cache."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor
from torch.utils.data import Dataset

from rcskd.errors import DataError


class TensorSplit(NamedTuple):
    """One split of the prepared cache: uint8 images N x C x S x S and int64 labels N."""

    images: Tensor
    labels: Tensor


def load_split(prepared: str | Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 N x C x S x S, labels int64 N) of one split."""
    path = Path(prepared) / f"{split}.pt"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the prepare stage first (dvc repro prepare)")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for damaged files
        raise DataError(f"{path}: cannot load the prepared split ({exc})") from None
    return blob["images"], blob["labels"]


def load_splits(prepared: str | Path) -> dict[str, TensorSplit]:
    """train, val and test of the prepared cache."""
    return {s: TensorSplit(*load_split(prepared, s)) for s in ("train", "val", "test")}


def load_meta(prepared: str | Path) -> dict:
    """The prepared cache's meta.json (classes, image size, counts, fingerprint)."""
    path = Path(prepared) / "meta.json"
    if not path.is_file():
        raise DataError(f"{path}: not found; run the prepare stage first (dvc repro prepare)")
    return json.loads(path.read_text())


class PreparedDataset(Dataset):
    """Images as float tensors in [0, 1] (C x S x S) with int labels; optional transform."""

    def __init__(
        self,
        prepared: str | Path,
        split: str,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.images, self.labels = load_split(prepared, split)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index].float().div_(255.0)
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])
