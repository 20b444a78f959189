"""CIFAR-100 from its local python files (`cifar-100-python/{train,test,meta}`), fine labels.

The files are pickles. Unpickling can run code, so they are read with an unpickler that only
admits the few numpy constructors these files use.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from rcskd.config import DataConfig
from rcskd.data.sources.base import Sample, Source, decoding
from rcskd.errors import DataError
from rcskd.registry import SOURCES

_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _SafeUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def load_pickle(path: Path) -> dict:
    """Load one CIFAR python file; keys are decoded to str."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found (expected the cifar-100-python files)") from None
    # a damaged pickle raises almost any type (UnpicklingError, EOFError, AttributeError, ...)
    with decoding(path, "not a CIFAR python pickle"):
        raw = _SafeUnpickler(io.BytesIO(data), encoding="bytes").load()
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a dict, found {type(raw).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in raw.items()}


@SOURCES.register("cifar100")
class Cifar100Source(Source):
    """The 50,000 training and 10,000 test images with their 100 fine labels."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        root = Path(cfg.root)
        self.folder = root / "cifar-100-python" if (root / "cifar-100-python").is_dir() else root
        meta = load_pickle(self.folder / "meta")
        if "fine_label_names" not in meta:
            raise DataError(f"{self.folder / 'meta'}: missing fine_label_names")
        with decoding(self.folder / "meta", "fine_label_names is not a list of names"):
            names = [
                n.decode() if isinstance(n, bytes) else str(n) for n in meta["fine_label_names"]
            ]
        self.classes = names
        self.parts = {split: load_pickle(self.folder / split) for split in ("train", "test")}
        for split, part in self.parts.items():
            with decoding(self.folder / split, "not CIFAR-100 data"):
                self._check(self.folder / split, part)

    def _check(self, path: Path, part: dict) -> None:
        """`part` holds uint8 N x 3072 images and N fine labels within the classes."""
        if "data" not in part or "fine_labels" not in part:
            raise DataError(f"{path}: missing 'data' or 'fine_labels'")
        data = np.asarray(part["data"])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise DataError(f"{path}: data must be uint8 N x 3072, got {data.dtype} {data.shape}")
        if len(part["fine_labels"]) != len(data):
            raise DataError(f"{path}: {len(data)} images but {len(part['fine_labels'])} labels")
        labels = np.asarray(part["fine_labels"])
        if labels.size and (labels.min() < 0 or labels.max() >= len(self.classes)):
            raise DataError(f"{path}: fine_labels outside 0..{len(self.classes) - 1}")

    def __len__(self) -> int:
        return sum(len(p["fine_labels"]) for p in self.parts.values())

    def __iter__(self) -> Iterator[Sample]:
        for split, part in self.parts.items():
            images = np.asarray(part["data"]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            path = self.folder / split
            for i, (image, label) in enumerate(zip(images, part["fine_labels"], strict=True)):
                yield Sample(np.ascontiguousarray(image), int(label), None, f"{path}#{i}", split)
