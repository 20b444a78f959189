"""An rcskd checkpoint served as an MLflow pyfunc model (MLflow's "models from code").

MLflow copies this file beside the checkpoint when a model is logged and runs it when the model
is loaded (`mlflow.pyfunc.load_model("models:/rcskd-student/1")`), so no Python object is ever
pickled: the checkpoint is read with `weights_only=True` as everywhere in rcskd. Input: uint8
images N x C x H x W prepared like the training data (`rcskd predict` prepares raw files);
output: class probabilities N x classes.
"""

from __future__ import annotations

import mlflow
import numpy as np
import torch
from mlflow.pyfunc import PythonModel


class CheckpointModel(PythonModel):
    """Softmax probabilities of an rcskd checkpoint (artifact `checkpoint`)."""

    # (no type hints on these two: MLflow reads predict's hints as a schema and warns)
    def load_context(self, context):  # noqa: ANN001
        from rcskd.models import load_checkpoint

        checkpoint = load_checkpoint(context.artifacts["checkpoint"])
        self.model = checkpoint.model
        self.preprocess = checkpoint.require_inputs().preprocess

    def predict(self, context, model_input, params=None):  # noqa: ANN001
        if isinstance(model_input, dict):  # a named tensor input arrives as {name: array}
            (model_input,) = model_input.values()
        images = torch.as_tensor(np.asarray(model_input, dtype=np.uint8))
        with torch.no_grad():
            return self.model(self.preprocess(images)).softmax(1).numpy().astype(np.float32)


mlflow.models.set_model(CheckpointModel())
