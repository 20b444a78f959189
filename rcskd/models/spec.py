"""Architecture specs: what it takes to rebuild a model, as plain data.

A `ModelSpec` names a registered architecture and its build arguments, plus the channel counts
of every conv / batch-norm / linear layer whose size differs from the architecture's default (a
pruned model). `build_model(spec)` rebuilds the model with those sizes, so a checkpoint (see
`rcskd.models.checkpoint`) holds plain data and loads with `weights_only=True`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from torch import nn

from rcskd.errors import RcskdError
from rcskd.registry import MODELS


class CheckpointError(RcskdError):
    """A checkpoint file cannot be used."""


@dataclass(frozen=True)
class ModelSpec:
    """What it takes to rebuild a model: architecture, build arguments, resized layers."""

    arch: str
    num_classes: int
    in_channels: int = 1
    width: float = 1.0
    layers: dict[str, list[int]] = field(default_factory=dict)  # name -> [in, out] or [features]


def layer_shapes(model: nn.Module) -> dict[str, list[int]]:
    """Channel counts of every conv ([in, out]), linear ([in, out]) and batch norm ([n])."""
    shapes: dict[str, list[int]] = {}
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            shapes[name] = [m.in_channels, m.out_channels]
        elif isinstance(m, nn.Linear):
            shapes[name] = [m.in_features, m.out_features]
        elif isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
            shapes[name] = [m.num_features]
    return shapes


def _default(spec: ModelSpec) -> nn.Module:
    return MODELS.build(
        spec.arch, num_classes=spec.num_classes, in_channels=spec.in_channels, width=spec.width
    )


def spec_of(model: nn.Module, spec: ModelSpec) -> ModelSpec:
    """`spec` with `layers` set to where `model` differs from the architecture's default."""
    default = layer_shapes(_default(dataclasses.replace(spec, layers={})))
    current = layer_shapes(model)
    if current.keys() != default.keys():
        extra = sorted(current.keys() ^ default.keys())[:3]
        raise CheckpointError(f"model is not a resized {spec.arch}: layers differ at {extra}")
    changed = {name: shape for name, shape in current.items() if shape != default[name]}
    return dataclasses.replace(spec, layers=changed)


def _resized(m: nn.Module, shape: list[int]) -> nn.Module:
    if isinstance(m, nn.Conv2d):
        depthwise = m.groups > 1 and m.groups == m.in_channels == m.out_channels
        return nn.Conv2d(
            shape[0],
            shape[1],
            m.kernel_size,
            m.stride,
            m.padding,
            m.dilation,
            groups=shape[0] if depthwise else m.groups,
            bias=m.bias is not None,
        )
    if isinstance(m, nn.Linear):
        return nn.Linear(shape[0], shape[1], bias=m.bias is not None)
    if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
        return type(m)(shape[0], m.eps, m.momentum, m.affine, m.track_running_stats)
    raise CheckpointError(f"cannot resize a {type(m).__name__}")


def build_model(spec: ModelSpec) -> nn.Module:
    """Build the architecture, then resize the layers listed in `spec.layers`."""
    model = _default(spec)
    for name, shape in spec.layers.items():
        parent_name, _, child = name.rpartition(".")
        try:
            parent = model.get_submodule(parent_name)
            old = getattr(parent, child)
        except AttributeError:
            raise CheckpointError(f"spec names layer {name!r}, which {spec.arch} has not") from None
        setattr(parent, child, _resized(old, shape))
    return model
