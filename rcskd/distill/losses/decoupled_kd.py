"""Decoupled KD (Zhao et al., CVPR 2022): target-class KD plus weighted non-target-class KD.

Named `decoupled_kd` so that it is not confused with DKD-SG (the sample-graph loss).
"""

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


@dataclass(frozen=True)
class DecoupledKdConfig(TermConfig):
    """Decoupled KD (Zhao et al. 2022)."""

    weight: float = field(default=1.0, metadata=bounds(0.0))
    alpha: float = field(default=1.0, metadata=bounds(0.0))  # target-class term
    beta: float = field(default=8.0, metadata=bounds(0.0))  # non-target-class term
    temperature: float = field(default=4.0, metadata=bounds(0.01))


@LOSSES.register("decoupled_kd")
class DecoupledKDLoss(DistillLoss):
    """alpha * TCKD (binary target / rest) + beta * NCKD (among the non-target classes), x T^2."""

    Config = DecoupledKdConfig

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> None:
        super().__init__()
        self.alpha, self.beta, self.temperature = alpha, beta, temperature

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> DecoupledKDLoss:
        return cls(cfg.alpha, cfg.beta, cfg.temperature)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        temp = self.temperature
        gt = F.one_hot(labels, s.logits.shape[1]).to(s.logits.dtype)
        p_s = F.softmax(s.logits / temp, dim=1)
        p_t = F.softmax(t.logits / temp, dim=1)
        # target vs. all other classes, as two-way distributions
        b_s = torch.stack([(p_s * gt).sum(1), (p_s * (1 - gt)).sum(1)], dim=1)
        b_t = torch.stack([(p_t * gt).sum(1), (p_t * (1 - gt)).sum(1)], dim=1)
        tckd = F.kl_div(b_s.clamp_min(1e-12).log(), b_t, reduction="batchmean")
        # distributions over the non-target classes only (target pushed to -inf)
        log_q_s = F.log_softmax(s.logits / temp - 1000.0 * gt, dim=1)
        q_t = F.softmax(t.logits / temp - 1000.0 * gt, dim=1)
        nckd = F.kl_div(log_q_s, q_t, reduction="batchmean")
        return (self.alpha * tckd + self.beta * nckd) * temp**2
