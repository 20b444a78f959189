"""Model zoo (registered in `rcskd.registry.MODELS`), specs, checkpoints and taps."""

from rcskd.models import resnet  # noqa: F401  (registers the ResNets)
from rcskd.models.pretrained import load_pretrained
from rcskd.models.spec import (
    CheckpointError,
    ModelSpec,
    build_model,
    load_checkpoint,
    save_checkpoint,
    spec_of,
)
from rcskd.models.taps import taps

__all__ = [
    "CheckpointError",
    "ModelSpec",
    "build_model",
    "load_checkpoint",
    "load_pretrained",
    "save_checkpoint",
    "spec_of",
    "taps",
]
