"""Named feature layers, so pruning and distillation refer to layers by name, never by index."""

from __future__ import annotations

from torch import nn

from rcskd.errors import ConfigError


def taps(model: nn.Module) -> dict[str, nn.Module]:
    """The model's named taps, e.g. {"stage1": ..., "stage4": ..., "pool": ...}."""
    if not hasattr(model, "taps"):
        raise ConfigError(f"{type(model).__name__} defines no taps")
    return model.taps()
