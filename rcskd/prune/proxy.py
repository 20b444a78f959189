"""Cheap candidate scoring: adaptive BatchNorm recalibration, then held-out accuracy and loss.

Pruning shifts every downstream activation distribution, so a pruned model's stored BN
statistics are stale and its raw accuracy says little (EagleEye, Li et al. 2020). Re-estimating
them from a few training batches (train-mode forward passes, no gradients) takes seconds and
ranks candidates far better. Candidates are scored on images the search holds out of the
training split; the test split is never used here.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import Preprocess
from rcskd.train import predict_logits
from rcskd.train.runtime import autocast


def proxy_subsets(
    train: TensorSplit,
    calib_images: int,
    eval_images: int,
    seed: int,
    val: TensorSplit | None = None,
) -> tuple[Tensor, TensorSplit]:
    """BN calibration images (from train) and scoring images: a disjoint part of train, or the
    first `eval_images` of `val` when given (images the teacher never trained on)."""
    n = len(train.labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    calib = order[: min(calib_images, n)]
    held = order[len(calib) : len(calib) + min(eval_images, max(n - len(calib), 0))]
    if val is not None:
        return train.images[calib], TensorSplit(val.images[:eval_images], val.labels[:eval_images])
    if len(held) == 0:
        held = order[: min(eval_images, n)]  # tiny data: score on the calibration images
    return train.images[calib], TensorSplit(train.images[held], train.labels[held])


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    images: Tensor,
    preprocess: Preprocess,
    batch_size: int = 64,
    dtype: torch.dtype | None = None,
) -> None:
    """Re-estimate every BatchNorm's running mean/var as the plain average over `images`
    (forward passes under autocast in `dtype`; the statistics stay fp32 buffers)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m, m.momentum) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    was_training = model.training
    model.train()
    device = images.device
    try:
        with autocast(device, dtype):
            for i in range(0, len(images), batch_size):
                model(preprocess(images[i : i + batch_size]))
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)


def proxy_score(
    model: nn.Module,
    calib: Tensor,
    held: TensorSplit,
    preprocess: Preprocess,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Accuracy and cross-entropy on `held` after BN recalibration on `calib` (modifies model).

    Runs on `device` (the model and the images should already be there), forward passes under
    autocast in `dtype` (the engine's precision); the scores are computed on the CPU in fp32.
    """
    recalibrate_batchnorm(model, calib, preprocess, dtype=dtype)
    logits = predict_logits(model, held.images, preprocess, device=device, dtype=dtype)
    labels = held.labels.cpu()
    return {
        "acc": float((logits.argmax(1) == labels).float().mean()),
        "loss": float(F.cross_entropy(logits, labels)),
    }
