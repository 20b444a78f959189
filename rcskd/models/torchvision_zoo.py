"""`arch: torchvision.<name>`: any torchvision classifier, where torchvision imports.

PyPI's torchvision cannot be imported beside the CPU torch of our reference machine, so it stays
optional: this family resolves only when asked for and fails with a clear message otherwise.
The 3-channel stem is replaced for grey input (pretrained weights are then adapted by
`load_pretrained`, which sums the RGB filters). Taps are inferred by `rcskd.models.taps`.
"""

from __future__ import annotations

import importlib
from typing import Any

from torch import nn

from rcskd.errors import ConfigError
from rcskd.registry import MODELS


def _import_torchvision() -> Any:
    try:
        return importlib.import_module("torchvision")
    except Exception as exc:  # ImportError, or RuntimeError from a torch/torchvision mismatch
        raise ConfigError(
            f"arch 'torchvision.*' needs an importable torchvision ({type(exc).__name__}: {exc}); "
            "install the torchvision build that matches your torch, or use a built-in arch "
            f"({', '.join(MODELS.names())})"
        ) from None


def _adapt_stem(model: nn.Module, in_channels: int) -> None:
    """Swap the first 3-channel conv for one with `in_channels` inputs (same name and geometry)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d) and module.in_channels == 3:
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            new = nn.Conv2d(
                in_channels,
                module.out_channels,
                module.kernel_size,
                module.stride,
                module.padding,
                module.dilation,
                module.groups,
                module.bias is not None,
            )
            setattr(parent, child, new)
            return
    raise ConfigError(f"{type(model).__name__}: no 3-channel input convolution to adapt")


@MODELS.register_prefix("torchvision.")
def torchvision_model(
    name: str, num_classes: int, in_channels: int = 1, width: float = 1.0
) -> nn.Module:
    """torchvision.models.get_model(name) without weights, for `num_classes` and `in_channels`."""
    if width != 1.0:
        raise ConfigError(f"arch 'torchvision.{name}': width must be 1.0 (got {width})")
    tv = _import_torchvision()
    try:
        model = tv.models.get_model(name, weights=None, num_classes=num_classes)
    except ValueError as exc:
        raise ConfigError(f"arch 'torchvision.{name}': {exc}") from None
    if in_channels != 3:
        _adapt_stem(model, in_channels)
    return model
