"""Batch mixing: mixup and CutMix on the training device, planned on the host.

Each epoch's mixing is drawn up front from a host generator seeded by (seed, epoch): whether a
batch is mixed, mixup or CutMix, lambda ~ Beta(alpha, alpha) and the box centre. Applying a plan
needs no random numbers on the device and no host synchronisation, and a resumed run mixes
exactly as an uninterrupted one. A batch is mixed with itself reversed (pairs i and n-1-i; the
batch order is already random), as timm does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from rcskd.config import MixConfig


@dataclass(frozen=True)
class MixedLabels:
    """The labels of a mixed batch: each image's own, its partner's, and the own share."""

    first: Tensor
    second: Tensor
    lam: float

    @property
    def dominant(self) -> Tensor:
        """Each image's label with the larger share (for label-indexed terms and accuracy)."""
        return self.first if self.lam >= 0.5 else self.second


@dataclass(frozen=True)
class BatchMix:
    """How one batch is mixed: `mode` mixup or cutmix, the drawn lambda, the box centre."""

    mode: str
    lam: float
    centre: tuple[float, float] = (0.5, 0.5)  # CutMix box centre, as fractions of H and W


def plan_mixing(cfg: MixConfig, steps: int, seed: int) -> list[BatchMix | None]:
    """One entry per batch of an epoch (None: not mixed), drawn from `seed` alone."""
    if cfg.mode == "none" or cfg.prob <= 0:
        return [None] * steps
    rng = np.random.default_rng(seed)
    plan: list[BatchMix | None] = []
    for _ in range(steps):
        # every draw happens for every batch, so the plan of batch k never depends on the others
        use, pick = rng.random(), rng.random()
        lam = float(rng.beta(cfg.alpha, cfg.alpha))
        centre = (float(rng.random()), float(rng.random()))
        mode = cfg.mode if cfg.mode != "both" else ("mixup" if pick < 0.5 else "cutmix")
        plan.append(BatchMix(mode, lam, centre) if use < cfg.prob else None)
    return plan


def cutmix_box(lam: float, height: int, width: int, centre: tuple[float, float]) -> tuple:
    """(y0, y1, x0, x1) of a box covering about 1 - lam of the image, clipped at its edges."""
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(round(height * cut)), int(round(width * cut))
    cy, cx = int(centre[0] * height), int(centre[1] * width)
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch - ch // 2, height)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw - cw // 2, width)
    return y0, y1, x0, x1


def apply_mix(images: Tensor, labels: Tensor, mix: BatchMix) -> tuple[Tensor, MixedLabels]:
    """(mixed images, their labels) of one batch; the labels' `lam` is each image's share of
    the mixed pixels (CutMix: the box area actually pasted, after clipping)."""
    partner = images.flip(0)
    if mix.mode == "mixup":
        lam = mix.lam
        mixed = images * lam + partner * (1.0 - lam)
    else:
        height, width = images.shape[-2:]
        y0, y1, x0, x1 = cutmix_box(mix.lam, height, width, mix.centre)
        mixed = images.clone()
        mixed[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / float(height * width)
    return mixed, MixedLabels(labels, labels.flip(0), lam)


def mix_or_pass(
    images: Tensor, labels: Tensor, mix: BatchMix | None
) -> tuple[Tensor, MixedLabels | None]:
    """`apply_mix` for a planned batch; the batch unchanged (no mixed labels) otherwise."""
    if mix is None or images.shape[0] < 2:
        return images, None
    return apply_mix(images, labels, mix)


def plan_seed(epoch_seed: int) -> int:
    """The mixing plan's seed, derived from the epoch's seed (independent of the batch order)."""
    return (epoch_seed * 2_654_435_761 + 97) % (2**63)


__all__ = ["BatchMix", "MixedLabels", "apply_mix", "cutmix_box", "mix_or_pass", "plan_mixing"]
