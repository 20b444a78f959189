"""Named feature layers, so pruning and distillation refer to layers by name, never by index.

Zoo models define `taps()`. For others (torchvision's, say) the usual layouts are recognised:
ResNet-like (`layer1..4`), DenseNet-like (`features.denseblockN`) and `features` + pooling
(MobileNet, EfficientNet, VGG, ConvNeXt: one tap at the last child of each resolution).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from rcskd.errors import ConfigError


def taps(model: nn.Module) -> dict[str, nn.Module]:
    """The model's named taps, e.g. {"stage1": ..., "stage4": ..., "pool": ...}."""
    if hasattr(model, "taps"):
        return model.taps()
    found = _infer_taps(model)
    if not found:
        raise ConfigError(
            f"{type(model).__name__} defines no taps and its layout is not recognised; "
            "give it a taps() method returning name -> module"
        )
    return found


def tap(model: nn.Module, name: str, purpose: str = "tap") -> nn.Module:
    """The module at tap `name`; an unknown name is a ConfigError listing the model's taps."""
    named = taps(model)
    if name not in named:
        raise ConfigError(
            f"{purpose} {name!r}: {type(model).__name__} has no such tap; its taps are "
            f"{', '.join(named)}"
        )
    return named[name]


def default_feature_tap(model: nn.Module) -> str:
    """The last spatial tap (the one just before "pool"): the default distillation layer."""
    names = [n for n in taps(model) if n != "pool"]
    if not names:
        raise ConfigError(f"{type(model).__name__} has no spatial taps")
    return names[-1]


def _infer_taps(model: nn.Module) -> dict[str, nn.Module]:
    named: dict[str, nn.Module] = OrderedDict()
    stages = [f"layer{i}" for i in range(1, 5)]
    features = getattr(model, "features", None)
    if all(isinstance(getattr(model, s, None), nn.Module) for s in stages):
        for i, s in enumerate(stages):
            named[f"stage{i + 1}"] = getattr(model, s)
    elif isinstance(features, nn.Sequential) and hasattr(features, "denseblock1"):
        for i in (1, 2, 3):
            named[f"stage{i}"] = getattr(features, f"denseblock{i}")
        named["stage4"] = features
    elif isinstance(features, nn.Sequential) and len(features) > 1:
        for k, index in enumerate(_last_child_per_scale(model, features)):
            named[f"stage{k + 1}"] = features[index]
    pools = [m for m in model.children() if isinstance(m, nn.AdaptiveAvgPool2d)]
    if named and pools:
        named["pool"] = pools[0]
    return named


def _last_child_per_scale(model: nn.Module, features: nn.Sequential) -> list[int]:
    """Indices of `features` children that end a resolution level (found by a dummy forward)."""
    first = next(m for m in features.modules() if isinstance(m, nn.Conv2d))
    x = torch.zeros(1, first.in_channels, 64, 64)
    sizes = []
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for child in features:
            x = child(x)
            sizes.append(x.shape[-1])
    model.train(was_training)
    ends = [i for i in range(len(sizes) - 1) if sizes[i + 1] < sizes[i] and 64 // sizes[i] >= 4]
    return ends[-3:] + [len(sizes) - 1]
