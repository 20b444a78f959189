"""TKD-CA: target-class, gradient-weighted, corrective-attention feature distillation.

For a teacher feature F_T at a tap and g = d z_y / d F_T (z_y: the teacher's logit for the
target class, computed by the trainer with `torch.autograd.grad` on the feature only).

`variant: effective` (the default), where every part reaches the loss:

1. gradient channel weights alpha = C * softmax(kappa * z(mean_hw g)), z standardising over
   channels per sample (mean 1; kappa sharpens); F1 = F_T * alpha;
2. channel attention beta = sigmoid(kappa * z(std / |mean|)) of F1 per channel (spatial
   statistics, standardised over channels so that channels differ); w = alpha * beta;
3. spatial attention s = softmax over positions of kappa * z(channel mean of |F1|), which
   weights each position's term:
   L = sum_p s_p (1 - cos(w * adapter(F_S)_p, w * F_T_p)), averaged over the batch.

`variant: reference`, the formula of the paper's code, kept for comparison: alpha =
softmax(exp(2 softmax(mean_hw g))), F2 = F1 * beta * softmax(normalise(mean_c |F1|)), and
L = mean_p (1 - cos(adapter(F_S)_p, F2_p)). Inert in it (measured on a stage4 tap with 256
channels): alpha's max/min ratio is 1.00025 (~1/C each), and the spatial factor is one positive
number per position, which a per-position cosine ignores; only beta shapes the loss, so it is
within ~1% a plain per-position cosine hint.

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


def _standardise(x: Tensor, eps: float) -> Tensor:
    """Zero mean, unit (population) deviation along dim 1."""
    return (x - x.mean(1, keepdim=True)) / (x.std(1, keepdim=True, correction=0) + eps)


def effective_attention(
    feature: Tensor, grad: Tensor, kappa: float = 1.0, eps: float = 1e-6
) -> tuple[Tensor, Tensor, Tensor]:
    """(alpha (N, C), beta (N, C), s (N, H*W)) of the effective variant (module docstring)."""
    channels = feature.shape[1]
    alpha = channels * F.softmax(kappa * _standardise(grad.mean(dim=(2, 3)), eps), dim=1)
    f1 = feature * alpha[:, :, None, None]
    flat = f1.flatten(2)
    spread = flat.std(2, correction=0) / (flat.mean(2).abs() + eps)  # per channel
    beta = (kappa * _standardise(spread, eps)).sigmoid()
    spatial = F.softmax(kappa * _standardise(f1.abs().mean(1).flatten(1), eps), dim=1)
    return alpha, beta, spatial


def weighted_position_distance(student: Tensor, teacher: Tensor, w: Tensor, s: Tensor) -> Tensor:
    """sum_p s_p (1 - cos(w * student_p, w * teacher_p)), averaged over the batch."""
    w = w[:, :, None, None]
    cos = F.cosine_similarity(w * student, w * teacher, dim=1, eps=1e-8).flatten(1)
    return ((1 - cos) * s).sum(1).mean()


@dataclass(frozen=True)
class TkdConfig(TermConfig):
    """TKD-CA: its weight (the paper's beta), taps and the class whose gradient weights channels."""

    # weight, kappa and taps: chosen on Brain-4 validation (benchmarks/distill_brain4.py
    # --select, weight 1/3/10 x kappa 0.5/1/2 x taps); the paper's beta is 3
    weight: float = field(default=10.0, metadata=bounds(0.0))
    # tap -> weight; stage3, since stage4 is 2x2 at the protocol's 64 px
    taps: dict[str, float] = field(default_factory=lambda: {"stage3": 1.0})
    target: Literal["label", "teacher_argmax"] = "label"
    variant: Literal["effective", "reference"] = "effective"
    kappa: float = field(default=0.5, metadata=bounds(0.0))  # sharpness of alpha and s (effective)


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
        variant: str = "reference",
        kappa: float = 1.0,
    ) -> None:
        super().__init__()
        self.taps = tuple(tap_weights)
        self.grad_taps = self.taps
        self.tap_weights = dict(tap_weights)
        self.target = target
        self.eps = eps
        self.variant, self.kappa = variant, kappa
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
            variant=cfg.variant,
            kappa=cfg.kappa,
        )

    def forward(self, s: Outputs, t: Outputs, labels: Tensor) -> Tensor:
        total = s.logits.new_zeros(())
        for tap, weight in self.tap_weights.items():
            feature, grad = t.features[tap], t.feature_grads[tap]
            student = match_spatial(self.adapters[tap](s.features[tap]), feature)
            if self.variant == "reference":
                target = corrective_attention(feature, grad, self.eps)
                term = channel_cosine_distance(student, target)
            else:
                alpha, beta, spatial = effective_attention(feature, grad, self.kappa, self.eps)
                term = weighted_position_distance(student, feature, alpha * beta, spatial)
            total = total + weight * term
        return total
