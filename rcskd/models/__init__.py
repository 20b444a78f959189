"""Model zoo (registered in `rcskd.registry.MODELS`), specs, checkpoints and taps."""

from rcskd.models import (  # noqa: F401  (each registers its architectures)
    densenet,
    mobilenet,
    resnet,
    shufflenet,
    torchvision_zoo,
)
from rcskd.models.checkpoint import Checkpoint, InputSpec, load_checkpoint, save_checkpoint
from rcskd.models.pretrained import load_pretrained
from rcskd.models.spec import CheckpointError, ModelSpec, build_model, spec_of
from rcskd.models.taps import default_feature_tap, tap, taps

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "InputSpec",
    "ModelSpec",
    "build_model",
    "default_feature_tap",
    "load_checkpoint",
    "load_pretrained",
    "save_checkpoint",
    "spec_of",
    "tap",
    "taps",
]
