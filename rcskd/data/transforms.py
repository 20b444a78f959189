"""Batched transforms in plain torch: normalisation and MRI-suited augmentation.

Augmentation works on a whole batch at once (one `affine_grid` / `grid_sample` call), with
per-image random parameters drawn from an explicit generator, so a run is reproducible and a
resumed run draws exactly what an uninterrupted one would.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from rcskd.config import AugmentConfig


@dataclass(frozen=True)
class Preprocess:
    """How uint8 images become model input: x = (pixel / 255 - mean) / std, per channel."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    # (mean, std) tensors per device, built once: a new device tensor per call is a host-to-
    # device copy (a synchronisation on CUDA) at every step
    _constants: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __call__(self, images: Tensor) -> Tensor:
        """uint8 (or [0, 1] float) N x C x H x W -> normalised float."""
        x = images.float().div(255.0) if images.dtype == torch.uint8 else images.float()
        mean, std = self._on(x.device)
        return (x - mean) / std

    def _on(self, device: torch.device) -> tuple[Tensor, Tensor]:
        if device not in self._constants:
            self._constants[device] = (
                torch.tensor(self.mean, device=device).view(1, -1, 1, 1),
                torch.tensor(self.std, device=device).view(1, -1, 1, 1),
            )
        return self._constants[device]

    def as_dict(self) -> dict[str, list[float]]:
        """Plain data for checkpoints and model cards."""
        return {"mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, data: dict[str, list[float]]) -> Preprocess:
        """Inverse of `as_dict`."""
        return cls(tuple(data["mean"]), tuple(data["std"]))


def fit_preprocess(images: Tensor) -> Preprocess:
    """Per-channel mean and std of uint8 training images (N x C x H x W)."""
    x = images.float().div(255.0)
    mean = x.mean(dim=(0, 2, 3))
    std = x.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return Preprocess(
        tuple(round(float(m), 6) for m in mean), tuple(round(float(s), 6) for s in std)
    )


def _uniform(n: int, half_width: float, generator: torch.Generator) -> Tensor:
    return (_rand(n, generator) * 2 - 1) * half_width


def _rand(n: int, generator: torch.Generator) -> Tensor:
    return torch.rand(n, generator=generator, device=generator.device)


def augment(images: Tensor, cfg: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Random flips, rotation/translation/zoom and intensity jitter of [0, 1] images N x C x H x W.

    Parameters are drawn from `generator` on its device (a CUDA generator for images on the
    GPU: nothing goes back to the host); the same seed on the same device gives the same
    result. Outputs stay in [0, 1].
    """
    n = images.shape[0]
    x = images
    hflip = _rand(n, generator) < cfg.hflip
    vflip = _rand(n, generator) < cfg.vflip
    angle = _uniform(n, math.radians(cfg.rotate_deg), generator)
    shift = _uniform(2 * n, 2 * cfg.translate, generator).view(n, 2)  # grid units span 2
    zoom = 1 + _uniform(n, cfg.scale, generator)
    bright = _uniform(n, cfg.brightness, generator)
    contrast = 1 + _uniform(n, cfg.contrast, generator)
    gamma = torch.exp(_uniform(n, cfg.gamma, generator))

    if not (cfg.rotate_deg or cfg.translate or cfg.scale) and (cfg.hflip or cfg.vflip):
        # flips alone: index, no resampling (a grid_sample per batch is a large share of a
        # small model's step)
        x = torch.where(hflip.view(n, 1, 1, 1), x.flip(-1), x)
        x = torch.where(vflip.view(n, 1, 1, 1), x.flip(-2), x)
    elif cfg.rotate_deg or cfg.translate or cfg.scale or cfg.hflip or cfg.vflip:
        sx = torch.where(hflip, -1.0, 1.0) / zoom
        sy = torch.where(vflip, -1.0, 1.0) / zoom  # all on the generator's device
        cos, sin = torch.cos(angle), torch.sin(angle)
        theta = torch.stack(
            [
                torch.stack([cos * sx, -sin * sy, shift[:, 0]], 1),
                torch.stack([sin * sx, cos * sy, shift[:, 1]], 1),
            ],
            1,
        ).to(x)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.gamma:
        x = x.clamp(0, 1).pow(gamma.to(x).view(n, 1, 1, 1))
    if cfg.contrast or cfg.brightness:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * contrast.to(x).view(n, 1, 1, 1) + mean + bright.to(x).view(n, 1, 1, 1)
    return x.clamp(0, 1)
