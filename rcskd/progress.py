"""tqdm progress bars that stay readable in DVC and CI logs (few refreshes off a terminal)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, enabled: bool = True, **kw: Any
) -> tqdm:
    """A tqdm bar over `iterable`; refreshes every second on a TTY, every 10 s otherwise."""
    return tqdm(
        iterable,
        desc=desc,
        total=total,
        disable=not enabled,
        mininterval=1.0 if sys.stderr.isatty() else 10.0,
        dynamic_ncols=True,
        **kw,
    )


def warn(message: str) -> None:
    """Print `warning: message` on its own line to stderr, above any running progress bar
    (printing directly would land on the bar's line)."""
    tqdm.write(f"warning: {message}", file=sys.stderr)
