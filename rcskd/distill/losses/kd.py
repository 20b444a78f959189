"""Hinton et al. (2015) knowledge distillation: KL between temperature-softened outputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def kd_divergence(student_logits: Tensor, teacher_logits: Tensor, temperature: float) -> Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), averaged over the batch."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    p_t = F.softmax(teacher_logits / temperature, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="batchmean") * temperature**2


@dataclass(frozen=True)
class KdConfig(TermConfig):
    """Hinton KD: its weight and the softening temperature."""

    weight: float = field(default=1.0, metadata=bounds(0.0))
    temperature: float = field(default=4.0, metadata=bounds(0.01))


@LOSSES.register("kd")
class KDLoss(DistillLoss):
    """Soft-target KD; T^2 keeps gradient sizes comparable across temperatures."""

    Config = KdConfig

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = temperature

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> KDLoss:
        return cls(cfg.temperature)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        return kd_divergence(s.logits, t.logits, self.temperature)
