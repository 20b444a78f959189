"""Relational KD (Park et al., 2019): match pairwise distances and triplet angles of embeddings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def pairwise_distances(e: Tensor, eps: float = 1e-12) -> Tensor:
    """Euclidean distance matrix (N, N) with an exact zero diagonal."""
    sq = e.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * e @ e.t()).clamp_min(eps).sqrt()
    return d * (1 - torch.eye(len(e), dtype=e.dtype, device=e.device))


def _normalised_distances(e: Tensor) -> Tensor:
    """Distances over their mean off-diagonal value (a batch of one has none: all zeros, not
    the NaN of an empty mean; no boolean indexing, so no host synchronisation)."""
    d = pairwise_distances(e)
    positive = (d > 0).to(d.dtype)
    mean = (d * positive).sum() / positive.sum().clamp_min(1.0)
    return d / mean.clamp_min(1e-12)


def _angles(e: Tensor) -> Tensor:
    """cos of the angle at every anchor j between (i - j) and (k - j), flattened."""
    diff = F.normalize(e[None, :, :] - e[:, None, :], p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).flatten()


@dataclass(frozen=True)
class RkdConfig(TermConfig):
    """Relational KD on an embedding tap (Park et al. 2019)."""

    weight: float = field(default=1.0, metadata=bounds(0.0))
    distance: float = field(default=25.0, metadata=bounds(0.0))
    angle: float = field(default=50.0, metadata=bounds(0.0))
    tap: str = "pool"


@LOSSES.register("rkd")
class RelationalKDLoss(DistillLoss):
    """distance_weight * Huber(distances) + angle_weight * Huber(angles), on one embedding tap."""

    Config = RkdConfig

    def __init__(self, tap: str = "pool", distance: float = 25.0, angle: float = 50.0) -> None:
        super().__init__()
        self.taps, self.distance, self.angle = (tap,), distance, angle

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> RelationalKDLoss:
        return cls(cfg.tap, cfg.distance, cfg.angle)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        e_s, e_t = s.feature(self.taps[0]).flatten(1), t.feature(self.taps[0]).flatten(1)
        loss_d = F.smooth_l1_loss(_normalised_distances(e_s), _normalised_distances(e_t))
        loss_a = F.smooth_l1_loss(_angles(e_s), _angles(e_t))
        return self.distance * loss_d + self.angle * loss_a
