"""Attention transfer (Zagoruyko & Komodakis, 2017): match normalised spatial attention maps."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig, match_spatial
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def attention_map(feature: Tensor, p: float) -> Tensor:
    """L2-normalised channel mean of |F|^p, flattened to (N, H*W)."""
    return F.normalize(feature.abs().pow(p).mean(1).flatten(1), dim=1)


@dataclass(frozen=True)
class AtConfig(TermConfig):
    """Attention transfer (Zagoruyko & Komodakis 2017)."""

    weight: float = field(default=1000.0, metadata=bounds(0.0))
    taps: list[str] = field(default_factory=lambda: ["stage2", "stage3", "stage4"])
    p: float = field(default=2.0, metadata=bounds(0.5))


@LOSSES.register("at")
class AttentionTransferLoss(DistillLoss):
    """Sum over taps of the mean squared difference of attention maps."""

    Config = AtConfig

    def __init__(self, taps: list[str], p: float = 2.0) -> None:
        super().__init__()
        self.taps, self.p = tuple(taps), p

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> AttentionTransferLoss:
        return cls(cfg.taps, cfg.p)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        total = s.logits.new_zeros(())
        for tap in self.taps:
            f_t = t.features[tap]
            f_s = match_spatial(s.features[tap], f_t)
            total = total + (attention_map(f_s, self.p) - attention_map(f_t, self.p)).pow(2).mean()
        return total
