"""Function matching (Beyer et al., CVPR 2022, "Knowledge distillation: A good teacher is
patient and consistent"): the student matches the teacher's output on the very same
aggressively mixed image, with no label term.

Teacher and student always see the identical augmented batch here (the objective runs both on
it), which is the paper's "consistent" teaching; the method adds mixup or CutMix with
lambda ~ U(0, 1) on every batch (the engine's batch mixing, rcskd/data/mixing.py) and trains on
KL(teacher || student) alone (`ce_weight: 0`). The paper's point is patience: it keeps improving
for very long schedules, so compare it at equal and long epochs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor

from rcskd.config import MixConfig, bounds
from rcskd.distill.losses.base import DistillLoss, Shapes, TermConfig
from rcskd.distill.losses.kd import kd_divergence
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


@dataclass(frozen=True)
class FunctionMatchingConfig(TermConfig):
    """Function matching: KL to the teacher on mixed batches, no label term by default."""

    weight: float = field(default=1.0, metadata=bounds(0.0))
    temperature: float = field(default=1.0, metadata=bounds(0.01))  # the paper's T = 1
    ce_weight: float = field(default=0.0, metadata=bounds(0.0))  # label term; 0 = none (paper)
    mix: Literal["mixup", "cutmix", "both"] = "mixup"  # the paper's FunMatch: mixup
    mix_alpha: float = field(default=1.0, metadata=bounds(0.01, 100.0))  # 1: lambda ~ U(0, 1)


@LOSSES.register("function_matching")
class FunctionMatchingLoss(DistillLoss):
    """T^2 * KL(softmax(t/T) || softmax(s/T)) on the mixed batch the engine built."""

    Config = FunctionMatchingConfig

    def __init__(self, temperature: float = 1.0, mix: str = "mixup", alpha: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.mix = MixConfig(mode=mix, alpha=alpha, prob=1.0)

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> FunctionMatchingLoss:
        return cls(cfg.temperature, cfg.mix, cfg.mix_alpha)

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        return kd_divergence(s.logits, t.logits, self.temperature)
