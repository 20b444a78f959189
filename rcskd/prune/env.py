"""A gymnasium environment in the style of AMC (He et al. 2018): one step per pruning unit.

A *unit* is a block (`granularity: block`) or all blocks of a stage (`stage`). At step t the
agent sees unit t's embedding and answers with its pruning ratio; the ratio is clipped so that
the budget stays reachable (the remaining units can still remove what is missing) and is never
overshot. The last unit takes exactly what is left, so every episode meets the budget. The
reward comes at the end, from `score(ratios)` (the proxy).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from rcskd.errors import ConfigError
from rcskd.prune.blocks import KINDS, Block


@dataclass(frozen=True)
class Unit:
    """What one action decides: the ratio shared by `blocks`."""

    name: str
    blocks: tuple[Block, ...]

    def removed(self, ratio: float, resource: str) -> float:
        """Resource removed at `ratio` (continuous channel counts; rounding comes later)."""
        return sum(b.removed(ratio * b.channels, resource) for b in self.blocks)  # type: ignore[arg-type]


def make_units(blocks: list[Block], granularity: str) -> list[Unit]:
    """One unit per block, or one per stage (named "stage<k>")."""
    if granularity == "block":
        return [Unit(b.name, (b,)) for b in blocks]
    stages = sorted({b.stage for b in blocks})
    return [Unit(f"stage{s}", tuple(b for b in blocks if b.stage == s)) for s in stages]


def unit_ratios_to_blocks(units: list[Unit], ratios: dict[str, float]) -> dict[str, float]:
    """Expand unit ratios to the per-block ratios the pruner applies."""
    return {b.name: ratios[u.name] for u in units for b in u.blocks}


def _solve(f: Callable[[float], float], target: float, lo: float, hi: float) -> float:
    """Smallest r in [lo, hi] with f(r) >= target, for non-decreasing f (bisection)."""
    if f(hi) < target:
        return hi
    for _ in range(40):
        mid = (lo + hi) / 2
        if f(mid) >= target:
            hi = mid
        else:
            lo = mid
    return hi


class PruningEnv(gym.Env):
    """Observation: the unit's normalised embedding (index, stage, in/out/internal channels,
    share of prunable params and FLOPs, block kind) plus budget used, budget still to remove and
    the previous action; action: a ratio in [0, 1] x `max_ratio`; reward: 0 until the last unit,
    then the episode's score."""

    metadata = {"render_modes": []}
    N_FEATURES = 10 + len(KINDS)  # 7 + one-hot kind describe the unit, 3 the episode so far

    def __init__(
        self,
        units: list[Unit],
        total: int,
        budget: float,
        resource: str,
        max_ratio: float,
        score: Callable[[dict[str, float]], float],
    ) -> None:
        super().__init__()
        self.units, self.total, self.budget = units, total, budget
        self.resource, self.max_ratio, self.score = resource, max_ratio, score
        self.need = total * (1.0 - budget)  # resource the episode must remove
        self.capacity = [u.removed(max_ratio, resource) for u in units]
        if sum(self.capacity) < self.need * (1 - 1e-9):
            reachable = 1.0 - sum(self.capacity) / total
            raise ConfigError(
                f"prune.budget {budget} is out of reach: pruning every unit by prune.max_ratio "
                f"{max_ratio} still keeps {reachable:.3f} of the {resource}; raise the budget "
                "or max_ratio"
            )
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.N_FEATURES,), np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (1,), np.float32)
        self._static = self._embeddings()
        self.episodes: list[dict] = []  # every finished episode: ratios, reward
        self._reset_state()

    def _embeddings(self) -> np.ndarray:
        max_ch = max(
            max(b.channels, b.in_channels, b.out_channels) for u in self.units for b in u.blocks
        )
        max_stage = max(b.stage for u in self.units for b in u.blocks)
        full = [u.removed(1.0, "params") for u in self.units]
        full_flops = [u.removed(1.0, "flops") for u in self.units]
        rows = []
        for t, unit in enumerate(self.units):
            b = unit.blocks[0]
            kind = [1.0 if b.kind == k else 0.0 for k in KINDS]
            rows.append(
                [
                    t / max(len(self.units) - 1, 1),
                    b.stage / max_stage,
                    b.in_channels / max_ch,
                    b.out_channels / max_ch,
                    b.channels / max_ch,
                    full[t] / max(sum(full), 1),
                    full_flops[t] / max(sum(full_flops), 1),
                    *kind,
                ]
            )
        return np.asarray(rows, np.float32)

    def _reset_state(self) -> None:
        self.t = 0
        self.removed = 0.0
        self.ratios: dict[str, float] = {}
        self.prev_action = 0.0

    def _observation(self) -> np.ndarray:
        t = min(self.t, len(self.units) - 1)
        dynamic = [
            self.removed / self.total,  # budget used so far
            max(self.need - self.removed, 0.0) / self.total,  # still to remove
            self.prev_action,
        ]
        obs = np.concatenate([self._static[t], dynamic])
        return np.clip(obs, 0.0, 1.0).astype(np.float32)

    def bounds(self) -> tuple[float, float]:
        """Allowed ratio range for the current unit: the budget reachable, never overshot."""
        unit = self.units[self.t]
        missing = self.need - self.removed
        later = sum(self.capacity[self.t + 1 :])
        f = lambda r: unit.removed(r, self.resource)  # noqa: E731
        lo = _solve(f, missing - later, 0.0, self.max_ratio) if missing > later else 0.0
        hi = _solve(f, missing, 0.0, self.max_ratio) if missing > 0 else 0.0
        if self.t == len(self.units) - 1:
            lo = hi  # the last unit takes what is left
        return lo, max(lo, hi)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_state()
        return self._observation(), {}

    def step(self, action):
        a = float(np.clip(np.asarray(action, np.float64).reshape(-1)[0], 0.0, 1.0))
        lo, hi = self.bounds()
        ratio = float(np.clip(a * self.max_ratio, lo, hi))
        unit = self.units[self.t]
        self.ratios[unit.name] = ratio
        self.removed += unit.removed(ratio, self.resource)
        self.prev_action = ratio / self.max_ratio if self.max_ratio > 0 else 0.0
        self.t += 1
        done = self.t == len(self.units)
        reward, info = 0.0, {"ratio": ratio}
        if done:
            reward = float(self.score(dict(self.ratios)))
            if not math.isfinite(reward):
                reward = -1.0
            self.episodes.append({"ratios": dict(self.ratios), "reward": reward})
            info["ratios"] = dict(self.ratios)
        return self._observation(), reward, done, False, info
