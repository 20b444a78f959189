"""How bright and how contrasted the training images were, to flag inputs far outside that.

A model only knows the intensities it was trained on: a scan from another scanner, an
inverted or blank image, or a photograph gives confident nonsense. The profile is the mean and
spread, over the training split, of each image's mean and of its standard deviation (pixel /
255); `rcskd predict` warns when an input lies more than `LIMIT_SD` spreads from either.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LIMIT_SD = 4.0  # spreads from the training mean beyond which an input is flagged
_MIN_SPREAD = 0.01  # a floor, so a training set of near-identical images flags not everything


def per_image_stats(images: Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, std) of each uint8 image (N x C x H x W, or one C x H x W) as pixel / 255."""
    x = torch.as_tensor(images).float().div(255.0)
    if x.dim() == 3:
        x = x[None]
    flat = x.flatten(1)
    return flat.mean(1).numpy(), flat.std(1, unbiased=False).numpy()


def intensity_profile(images: Tensor) -> dict[str, float]:
    """The training split's profile: mean and spread of the per-image mean and std."""
    means, stds = per_image_stats(images)
    return {
        "mean_mu": round(float(means.mean()), 6),
        "mean_sd": round(float(means.std()), 6),
        "std_mu": round(float(stds.mean()), 6),
        "std_sd": round(float(stds.std()), 6),
    }


def intensity_warning(image: Tensor | np.ndarray, profile: dict[str, float]) -> str | None:
    """Why one uint8 image (C x H x W, prepared like training data) is far from `profile`;
    None when it is within `LIMIT_SD` spreads on both statistics or no profile is known."""
    if not profile:
        return None
    means, stds = per_image_stats(image)
    far = []
    for name, value in (("mean", float(means[0])), ("std", float(stds[0]))):
        mu, sd = profile[f"{name}_mu"], max(profile[f"{name}_sd"], _MIN_SPREAD)
        if abs(value - mu) > LIMIT_SD * sd:
            far.append(f"{name} intensity {value:.3f} vs {mu:.3f} +- {sd:.3f}")
    if not far:
        return None
    return ("intensity far outside the training data (" + "; ".join(far) +
            "): the prediction is unreliable")  # fmt: skip
