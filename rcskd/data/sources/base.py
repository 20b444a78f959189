"""What every data source shares: the `Sample` record, the `Source` base class, 8-bit conversion."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import numpy as np

from rcskd.config import DataConfig
from rcskd.errors import DataError, RcskdError
from rcskd.progress import warn

SPLITS = ("train", "val", "test")


class Sample(NamedTuple):
    """One image as a source yields it.

    `split` is the split the dataset itself assigns ("train", "val" or "test"), or None when the
    dataset has no split of its own and prepare carves one.
    """

    image: np.ndarray  # uint8, H x W or H x W x 3
    label: int
    patient: str | None
    origin: str  # file path (or path#frame, or a phantom:// address)
    split: str | None = None


class Source:
    """A dataset reader: `classes` known up front, samples streamed by `__iter__`.

    Subclasses set `self.classes` in `__init__`, implement `__len__` (the expected number of
    samples, for progress bars) and `__iter__`. Unreadable inputs go through `bad_file`, which
    raises or, with `data.on_bad_file: skip`, counts and logs them.
    """

    classes: list[str]

    def __init__(self, cfg: DataConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        self.skipped: list[str] = []

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[Sample]:
        raise NotImplementedError

    def bad_file(self, path: object, reason: str) -> None:
        """Raise a DataError naming `path`, or record a skip when params allow it."""
        message = f"{path}: {reason}"
        if self.cfg.on_bad_file == "error":
            raise DataError(message + " (set data.on_bad_file: skip to skip such files)")
        warn(f"skipping {message}")
        self.skipped.append(message)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (decoders write paragraphs), shortened."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if text.endswith(":") and len(lines) > 1:  # "...raised by all plugins:" + the first one
        text = f"{text} {lines[1]}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


@contextmanager
def decoding(path: str | Path, what: str) -> Iterator[None]:
    """Turn any failure inside the block into one DataError `<path>: <what> (<Type>: <reason>)`.

    Decoders (PIL, pydicom and its plugins, h5py, numpy) raise dozens of exception types for
    broken, truncated or unsupported files; a user needs the file's name and one line, and
    `data.on_bad_file: skip` must be able to skip every one of them.
    """
    try:
        yield
    except RcskdError:
        raise
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a bad file
        raise DataError(f"{path}: {what} ({type(exc).__name__}: {first_line(exc)})") from None


def to_uint8(values: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Scale any numeric image to uint8, clipping at robust percentiles (uint8 passes through)."""
    if values.dtype == np.uint8:
        return values
    values = values.astype(np.float64)
    lo, hi = np.percentile(values, [low_pct, high_pct])
    if hi <= lo:
        lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return np.zeros(values.shape, np.uint8)
    scaled = np.clip((values - lo) / (hi - lo), 0.0, 1.0)
    return (scaled * 255.0 + 0.5).astype(np.uint8)
