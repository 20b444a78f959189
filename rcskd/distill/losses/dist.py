"""DIST (Huang et al., NeurIPS 2022): inter- and intra-class relations by Pearson correlation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def pearson_rows(a: Tensor, b: Tensor, eps: float = 1e-8) -> Tensor:
    """Pearson correlation of each row of `a` with the same row of `b`, shape (rows,)."""
    a = a - a.mean(1, keepdim=True)
    b = b - b.mean(1, keepdim=True)
    return (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1) + eps)


@dataclass(frozen=True)
class DistConfig(TermConfig):
    """DIST: Pearson-correlation relations (Huang et al. 2022)."""

    weight: float = field(default=1.0, metadata=bounds(0.0))
    beta: float = field(default=2.0, metadata=bounds(0.0))  # inter-class
    gamma: float = field(default=2.0, metadata=bounds(0.0))  # intra-class
    temperature: float = field(default=4.0, metadata=bounds(0.01))


@LOSSES.register("dist")
class DISTLoss(DistillLoss):
    """tau^2 * (beta * (1 - mean Pearson over classes) + gamma * (1 - mean Pearson over batch))."""

    Config = DistConfig

    def __init__(self, beta: float = 2.0, gamma: float = 2.0, temperature: float = 4.0) -> None:
        super().__init__()
        self.beta, self.gamma, self.temperature = beta, gamma, temperature

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> DISTLoss:
        return cls(cfg.beta, cfg.gamma, cfg.temperature)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        y_s = F.softmax(s.logits / self.temperature, dim=1)
        y_t = F.softmax(t.logits / self.temperature, dim=1)
        inter = 1 - pearson_rows(y_s, y_t).mean()
        intra = 1 - pearson_rows(y_s.t(), y_t.t()).mean()
        return self.temperature**2 * (self.beta * inter + self.gamma * intra)
