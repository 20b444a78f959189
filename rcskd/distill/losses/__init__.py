"""Distillation losses, registered in `rcskd.registry.LOSSES` by method name."""

from rcskd.distill.losses import (  # noqa: F401  (each registers its loss)
    at,
    decoupled_kd,
    dist,
    dkd_sg,
    fitnet,
    kd,
    rkd,
    sp,
    tkd_ca,
)
from rcskd.distill.losses.base import DistillLoss, Shapes

__all__ = ["DistillLoss", "Shapes"]
