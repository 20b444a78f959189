"""One training loop for teacher training, fine-tuning and distillation."""

from rcskd.data.dataset import TensorSplit
from rcskd.train.batches import Batches
from rcskd.train.loop import FitResult, TrainingError, evaluate, fit, predict_logits
from rcskd.train.objective import CrossEntropy, Objective
from rcskd.train.optim import build_optimizer, lr_factor, resolve_device
from rcskd.train.run import DEFAULT_RUN, RunOptions, TrainJob, TrainResult, train_and_save

__all__ = [
    "DEFAULT_RUN",
    "Batches",
    "CrossEntropy",
    "FitResult",
    "Objective",
    "RunOptions",
    "TensorSplit",
    "TrainJob",
    "TrainResult",
    "TrainingError",
    "build_optimizer",
    "evaluate",
    "fit",
    "lr_factor",
    "predict_logits",
    "resolve_device",
    "train_and_save",
]
