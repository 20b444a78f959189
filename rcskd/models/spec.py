"""Architecture specs and checkpoints: a state_dict plus a plain spec, never a pickled module.

A `ModelSpec` names a registered architecture and its build arguments, plus the channel counts
of every conv / batch-norm / linear layer whose size differs from the architecture's default (a
pruned model). `build_model(spec)` rebuilds the model with those sizes, so a checkpoint loads
with `torch.load(..., weights_only=True)`, which cannot run code.
"""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rcskd.errors import RcskdError
from rcskd.io import save_torch_atomic
from rcskd.registry import MODELS

FORMAT = "rcskd-checkpoint/1"


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


def save_checkpoint(
    path: str | Path, model: nn.Module, spec: ModelSpec, extra: dict[str, Any] | None = None
) -> None:
    """Write {format, spec, state_dict, extra} atomically; `extra` must be plain data."""
    payload = {
        "format": FORMAT,
        "spec": dataclasses.asdict(spec_of(model, spec)),
        "state_dict": model.state_dict(),
        "extra": extra or {},
    }
    save_torch_atomic(path, payload)


def load_checkpoint(path: str | Path) -> tuple[nn.Module, ModelSpec, dict[str, Any]]:
    """(model, spec, extra) from a checkpoint written by `save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: the file holds pickled Python objects (e.g. a whole nn.Module), "
            "and loading those can run code. rcskd checkpoints hold a state_dict and a plain "
            "spec: re-save the model with rcskd.models.save_checkpoint"
        ) from None
    except (RuntimeError, EOFError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable checkpoint ({exc})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an rcskd checkpoint (expected format {FORMAT})")
    spec = ModelSpec(**payload["spec"])
    model = build_model(spec)
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: weights do not fit the spec ({exc})") from None
    return model, spec, payload["extra"]


def require_classes(path: str | Path, extra: dict[str, Any], classes: list[str]) -> None:
    """Stop with a clear error when the checkpoint at `path` was trained for other classes."""
    if extra.get("classes") != classes:
        raise CheckpointError(
            f"{path}: trained for classes {extra.get('classes')}, but the prepared data has "
            f"{classes}; rerun the pipeline (dvc repro)"
        )
