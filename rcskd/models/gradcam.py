"""Grad-CAM (Selvaraju et al.) heat maps with captum's LayerGradCam on a named tap."""

from __future__ import annotations

from captum.attr import LayerGradCam
from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.models.taps import default_feature_tap
from rcskd.models.taps import tap as tap_module


def gradcam_maps(
    model: nn.Module, inputs: Tensor, targets: Tensor, tap: str | None = None
) -> Tensor:
    """Grad-CAM of `targets` (class indices) at tap `tap` (default: the last spatial one).

    Returns N x H x W maps upsampled to the input size, each scaled to [0, 1] (ReLU applied,
    as in the paper; an all-zero map stays zero).
    """
    model.eval()
    layer = tap_module(model, tap or default_feature_tap(model), "Grad-CAM tap")
    # captum needs grads on the inputs' graph; inplace ReLUs after the tap are fine for hooks
    cam = LayerGradCam(model, layer).attribute(
        inputs, target=targets.tolist(), relu_attributions=True
    )
    cam = F.interpolate(cam.detach(), size=inputs.shape[-2:], mode="bilinear", align_corners=False)
    cam = cam[:, 0]
    peak = cam.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)
    return cam / peak
