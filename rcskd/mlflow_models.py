"""Log an rcskd checkpoint to the current MLflow run as a pyfunc model and register it.

The model is `rcskd/mlflow_pyfunc.py` (models from code, nothing pickled) with the checkpoint
as its artifact and an input signature from the checkpoint's InputSpec: uint8 images
(-1, C, H, W) in, probabilities (-1, classes) out. Registered names: `rcskd-student` (the final
student, export stage) and `rcskd-pruned` (prune stage).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rcskd import __version__
from rcskd.models.checkpoint import InputSpec

PYFUNC_CODE = Path(__file__).with_name("mlflow_pyfunc.py")


def signature_of(inputs: InputSpec) -> object:
    """MLflow's signature for a model trained with `inputs`."""
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    size = inputs.image_size
    # unnamed: `predict` takes the image array itself
    images = TensorSpec(np.dtype(np.uint8), (-1, inputs.channels, size, size))
    probs = TensorSpec(np.dtype(np.float32), (-1, len(inputs.classes)))
    return ModelSignature(Schema([images]), Schema([probs]))


def log_checkpoint_model(checkpoint: str | Path, inputs: InputSpec, name: str,
                         registered_name: str) -> str:  # fmt: skip
    """Log `checkpoint` as model `name` of the active run and register it as `registered_name`;
    returns the model URI."""
    import mlflow
    import torch

    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=str(PYFUNC_CODE),
        artifacts={"checkpoint": str(checkpoint)},
        signature=signature_of(inputs),
        registered_model_name=registered_name,
        # named, not inferred: inference would load the model in a subprocess (slow)
        pip_requirements=[
            f"rcskd=={__version__}",
            f"torch=={torch.__version__.split('+')[0]}",
            f"mlflow=={mlflow.__version__}",
        ],  # fmt: skip
        metadata={"classes": inputs.classes, "source": inputs.source},
    )
    return info.model_uri
