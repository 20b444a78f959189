"""TKD-CA: target-class, gradient-weighted, corrective-attention feature distillation.

For a teacher feature F_T at a tap and g = d z_y / d F_T (z_y: the teacher's logit for the
target class, computed by the trainer with `torch.autograd.grad` on the feature only):

1. channel weights w = spatial mean of g, enhanced: softmax over channels, exp(2 .), softmax;
   F1 = F_T * w;
2. mixed attention: channel weights sigmoid(std / (mean + eps)) (spatial statistics of F1 per
   channel, population std) and spatial weights softmax over positions of the L2-normalised
   channel mean of |F1|; F2 = F1 * channel weights * spatial weights;
3. L = 1 - cosine(adapter(F_S), F2) along channels, averaged over positions and batch.

The adapter (1x1 conv + BN, only when channel counts differ) belongs to the loss. Several taps
may be distilled, each with a weight.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import bounds
from rcskd.distill.losses.base import (
    DistillLoss,
    Shapes,
    TermConfig,
    channels,
    conv_adapter,
    match_spatial,
)
from rcskd.distill.outputs import Outputs
from rcskd.registry import LOSSES


def enhanced_channel_weights(grad: Tensor) -> Tensor:
    """(N, C) weights from the teacher's feature gradient (N, C, H, W)."""
    w = grad.mean(dim=(2, 3))
    # exp(2 .) between the two softmaxes sharpens the weights
    return F.softmax((2 * F.softmax(w, dim=1)).exp(), dim=1)


def corrective_attention(feature: Tensor, grad: Tensor, eps: float = 1e-6) -> Tensor:
    """F2: the teacher feature re-weighted by target-class gradient and mixed attention."""
    f1 = feature * enhanced_channel_weights(grad)[:, :, None, None]
    flat = f1.flatten(2)  # (N, C, HW)
    mean = flat.mean(2)
    std = flat.std(2, correction=0)
    channel_att = (std / (mean + eps)).sigmoid()
    spatial = F.normalize(f1.abs().mean(1).flatten(1), dim=1)  # (N, HW)
    spatial_att = F.softmax(spatial, dim=1).view(f1.shape[0], 1, *f1.shape[2:])
    return f1 * channel_att[:, :, None, None] * spatial_att


def channel_cosine_distance(student: Tensor, target: Tensor) -> Tensor:
    """1 - cosine along channels, averaged over positions and batch."""
    return (1 - F.cosine_similarity(student, target, dim=1, eps=1e-8)).mean()


@dataclass(frozen=True)
class TkdConfig(TermConfig):
    """TKD-CA: its weight (the paper's beta), taps and the class whose gradient weights channels."""

    weight: float = field(default=3.0, metadata=bounds(0.0))
    taps: dict[str, float] = field(default_factory=lambda: {"stage4": 1.0})  # tap -> weight
    target: Literal["label", "teacher_argmax"] = "label"


@LOSSES.register("tkd_ca")
class TKDCALoss(DistillLoss):
    """Weighted sum over taps of the corrective-attention cosine distance."""

    Config = TkdConfig

    def __init__(
        self,
        tap_weights: dict[str, float],
        student_channels: dict[str, int],
        teacher_channels: dict[str, int],
        target: str = "label",
        eps: float = 1e-6,
    ) -> None:
        super().__init__()
        self.taps = tuple(tap_weights)
        self.grad_taps = self.taps
        self.tap_weights = dict(tap_weights)
        self.target = target
        self.eps = eps
        self.adapters = nn.ModuleDict(
            {tap: conv_adapter(student_channels[tap], teacher_channels[tap]) for tap in self.taps}
        )

    @classmethod
    def from_config(cls, cfg: Any, shapes: Shapes) -> TKDCALoss:
        taps = dict(cfg.taps)
        return cls(
            taps,
            {tap: channels(shapes.student[tap]) for tap in taps},
            {tap: channels(shapes.teacher[tap]) for tap in taps},
            cfg.target,
        )

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        total = s.logits.new_zeros(())
        for tap, weight in self.tap_weights.items():
            target = corrective_attention(t.features[tap], t.feature_grads[tap], self.eps)
            student = match_spatial(self.adapters[tap](s.features[tap]), target)
            total = total + weight * channel_cosine_distance(student, target)
        return total
