"""Load a local torchvision-format state_dict into a zoo model (no downloads, ever)."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
from torch import nn

from rcskd.models.spec import CheckpointError


def load_pretrained(model: nn.Module, path: str | Path) -> list[str]:
    """Copy matching weights from `path` into `model`; return the names left as initialised.

    A 3-channel stem loads into a 1-channel model by summing its RGB filters (a grey image
    replicated to RGB gives the same response). Tensors whose shape still differs (the classifier
    when the class count differs) are skipped and reported; unknown names are an error, since
    they mean the file is for another architecture.
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: pretrained weights not found") from None
    except pickle.UnpicklingError:
        raise CheckpointError(
            f"{path}: refused: not a plain state_dict (pickled objects)"
        ) from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state_dict (name -> tensor)")
    own = model.state_dict()
    unknown = sorted(set(state) - set(own))
    if unknown:
        raise CheckpointError(f"{path}: weights for another architecture (e.g. {unknown[:3]})")
    skipped = []
    for name, tensor in state.items():
        target = own[name]
        if tensor.ndim == 4 and tensor.shape[1] == 3 and target.shape[1] == 1:
            tensor = tensor.sum(dim=1, keepdim=True)
        if tensor.shape != target.shape:
            skipped.append(name)
            continue
        own[name] = tensor
    skipped += set(own) - set(state)
    model.load_state_dict(own)
    return sorted(skipped)
