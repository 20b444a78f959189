"""A resumable search: every evaluated candidate is saved as it completes and replayed after a kill.

The search methods are deterministic for a seed, and the candidates' scores are their only
input from outside, so a rerun that answers the first evaluations from the journal walks the
same path as the interrupted run and continues where it stopped, with the same result as an
uninterrupted run. Two things make that exact:
- scoring runs with the global random states saved and restored (`preserved_rng`), so whether a
  score is computed or replayed never changes what the agent draws next (stable-baselines3
  samples its replay buffer from NumPy's global generator);
- a replayed evaluation must ask for the same method and the same ratios as the journal's entry;
  at the first that does not, the rest of the journal is discarded and scoring resumes for real.
The journal is tied to its run by a fingerprint (search params, seed, teacher, data, device).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rcskd.distributed import dist_context
from rcskd.io import write_json_atomic


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the block without consuming Python's, NumPy's or torch's global random state."""
    py, np_state, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


@dataclass
class SearchJournal:
    """The evaluated candidates of one search run, in order, saved to `path` (if any)."""

    path: Path | None
    fingerprint: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    position: int = 0
    replayed: int = 0

    @classmethod
    def open(cls, path: str | Path | None, fingerprint: str) -> SearchJournal:
        """The journal at `path` when it belongs to this run (same fingerprint), else empty."""
        path = Path(path) if path else None
        entries: list[dict[str, Any]] = []
        if path is not None and path.is_file():
            try:
                saved = json.loads(path.read_text())
            except (OSError, ValueError):  # a damaged journal: start over
                saved = {}
            if isinstance(saved, dict) and saved.get("fingerprint") == fingerprint:
                entries = list(saved.get("entries", []))
        return cls(path, fingerprint, entries)

    def evaluate(self, method: str, ratios: dict[str, float], score: Callable[[], float]) -> float:
        """The reward of the next candidate: replayed from the journal, or scored and saved."""
        key = {name: float(value) for name, value in ratios.items()}
        index, self.position = self.position, self.position + 1
        if index < len(self.entries):
            entry = self.entries[index]
            if entry["method"] == method and entry["ratios"] == key:
                self.replayed += 1
                return float(entry["reward"])
            del self.entries[index:]  # the path diverged: nothing after this can be reused
        with preserved_rng():
            reward = float(score())
        self.entries.append({"method": method, "ratios": key, "reward": reward})
        if self.path is not None and dist_context().is_main:
            write_json_atomic(self.path, {"fingerprint": self.fingerprint, "entries": self.entries})
        return reward

    def finish(self) -> None:
        """The search's result is safe elsewhere: remove the journal."""
        if self.path is not None and dist_context().is_main:
            self.path.unlink(missing_ok=True)
