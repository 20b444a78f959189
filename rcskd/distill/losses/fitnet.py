"""FitNet (Romero et al., 2015): a regressor maps the student's hint layer onto the teacher's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig, channels, match_spatial
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


@dataclass(frozen=True)
class FitnetConfig(TermConfig):
    """FitNet: hint tap and the weight of its MSE (Romero et al. 2015)."""

    weight: float = field(default=100.0, metadata=bounds(0.0))
    tap: str = "stage3"


@LOSSES.register("fitnet")
class FitNetLoss(DistillLoss):
    """MSE between regressor(student hint) and the teacher's feature at the same tap."""

    Config = FitnetConfig

    def __init__(self, tap: str, student_channels: int, teacher_channels: int) -> None:
        super().__init__()
        self.taps = (tap,)
        self.regressor = nn.Sequential(
            nn.Conv2d(student_channels, teacher_channels, 1, bias=False),
            nn.BatchNorm2d(teacher_channels),
        )

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> FitNetLoss:
        return cls(cfg.tap, channels(shapes.student[cfg.tap]), channels(shapes.teacher[cfg.tap]))

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        tap = self.taps[0]
        f_t = t.features[tap]
        return F.mse_loss(match_spatial(self.regressor(s.features[tap]), f_t), f_t)
