"""Similarity-preserving KD (Tung & Mori, 2019): match the batch's sample-similarity matrices."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def similarity_matrix(feature: Tensor) -> Tensor:
    """Row-normalised Gram matrix of the flattened features, (N, N)."""
    flat = feature.flatten(1)
    return F.normalize(flat @ flat.t(), dim=1)


@dataclass(frozen=True)
class SpConfig(TermConfig):
    """Similarity-preserving KD (Tung & Mori 2019)."""

    weight: float = field(default=3000.0, metadata=bounds(0.0))
    tap: str = "stage4"


@LOSSES.register("sp")
class SimilarityPreservingLoss(DistillLoss):
    """||G_s - G_t||_F^2 / N^2 at one tap (channel counts may differ)."""

    Config = SpConfig

    def __init__(self, tap: str) -> None:
        super().__init__()
        self.taps = (tap,)

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> SimilarityPreservingLoss:
        return cls(cfg.tap)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        tap = self.taps[0]
        g_s, g_t = similarity_matrix(s.features[tap]), similarity_matrix(t.features[tap])
        n = g_s.shape[0]
        return (g_s - g_t).pow(2).sum() / (n * n)
