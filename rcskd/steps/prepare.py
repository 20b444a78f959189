"""The prepare step: raw data -> the prepared cache (tensors, manifest, duplicates, meta)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rcskd.config import Params
from rcskd.data.prepare import prepare


@dataclass
class PrepareResult:
    """The cache folder and its summary (meta.json plus the wall time)."""

    summary: dict[str, Any]
    out_dir: Path

    @property
    def manifest(self) -> Path:
        """One row per kept image."""
        return self.out_dir / "manifest.csv"

    @property
    def duplicates(self) -> Path:
        """Every dropped duplicate and the copy kept."""
        return self.out_dir / "duplicates.csv"


def run_prepare(params: Params, out_dir: str | Path, show_progress: bool = True) -> PrepareResult:
    """Read `params.data`, split, dedup and cache into `out_dir` (atomically)."""
    summary = prepare(params, out_dir, progress=show_progress)
    return PrepareResult(summary, Path(out_dir))
