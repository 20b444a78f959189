"""Class-per-folder image trees (Kaggle Brain-4, Brain-CT, any folder dataset), read with PIL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from rcskd.config import DataConfig
from rcskd.data.sources.base import Sample, Source, decoding, to_uint8
from rcskd.data.sources.folders import scan
from rcskd.data.sources.parallel import ordered_map
from rcskd.errors import DataError
from rcskd.registry import SOURCES

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp", ".pgm"}


def read_image(path: Path) -> np.ndarray:
    """Decode an image file fully into uint8 HxW (grey) or HxWx3 (colour).

    Raises one DataError naming the file for unreadable, truncated or degenerate images.
    """
    with decoding(path, "cannot decode image"), Image.open(path) as img:
        img.load()  # forces a full decode: truncated files fail here, not later
        if img.mode in ("1", "L", "LA"):
            image = np.asarray(img.convert("L"))
        elif img.mode.startswith("I") or img.mode == "F":  # 16/32-bit grey
            image = to_uint8(np.asarray(img))
        else:
            image = np.asarray(img.convert("RGB"))
            grey = np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(
                image[..., 1], image[..., 2]
            )
            if grey:  # grey stored as RGB: keep one channel
                image = np.ascontiguousarray(image[..., 0])
    if image.size == 0 or min(image.shape[:2]) < 2:
        raise DataError(f"{path}: image is too small: {image.shape}")
    return image


@SOURCES.register("imagefolder")
class ImageFolderSource(Source):
    """Images in class folders, optionally under Training/Testing split folders."""

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        super().__init__(cfg, seed)
        self.layout = scan(Path(cfg.root), cfg, lambda p: p.suffix.lower() in IMAGE_SUFFIXES)
        self.classes = self.layout.classes

    def __len__(self) -> int:
        return len(self.layout.files)

    def __iter__(self) -> Iterator[Sample]:
        files = self.layout.files
        decoded = ordered_map(_read, [f.path for f in files])
        for f, (image, error) in zip(files, decoded, strict=True):
            if error is not None:  # reported here, in order, whichever worker decoded it
                self.bad_file(f.path, error.removeprefix(f"{f.path}: "))
                continue
            yield Sample(image, f.label, None, str(f.path), f.split)


def _read(path: Path) -> tuple[np.ndarray | None, str | None]:
    """(image, None), or (None, the DataError's message): errors cross process boundaries as
    text, and the source decides whether they stop the stage or are skipped."""
    try:
        return read_image(path), None
    except DataError as exc:
        return None, str(exc)
