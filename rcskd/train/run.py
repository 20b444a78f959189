"""The training skeleton every training step shares: fit, score validation, save, summarise.

Teacher training, the pruned model's fine-tune and every distillation differ only in the model
they start from and the objective; `train_and_save` does the rest the same way for all three,
and never looks at the test split (only the evaluate step does).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from rcskd.config import TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.distributed import barrier, dist_context
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import InputSpec, ModelSpec, save_checkpoint
from rcskd.train.loop import evaluate, fit
from rcskd.train.objective import Objective
from rcskd.train.runtime import autocast_dtype


@dataclass
class TrainResult:
    """What a training step hands its stage: a JSON-ready summary, the curve, the checkpoint."""

    summary: dict[str, Any]
    history: list[dict[str, float]]
    checkpoint: Path


@dataclass(frozen=True)
class RunOptions:
    """How a training step runs, beside what it trains: its resume file, a per-epoch callback
    (the stage logs each epoch to MLflow) and the progress bar."""

    resume_path: str | Path | None = None
    on_epoch: Callable[[dict[str, float]], None] | None = None
    show_progress: bool = True
    # a benchmark's look at the model after each epoch (e.g. a test curve); never a choice
    observe: Callable[[nn.Module, dict[str, float]], None] | None = None


DEFAULT_RUN = RunOptions()  # no resume file, no callback, a progress bar


@dataclass(frozen=True)
class TrainJob:
    """Where and how a run trains: settings, seed, device and its resume identity."""

    cfg: TrainConfig
    seed: int
    device: torch.device
    fingerprint: str
    desc: str
    run: RunOptions = DEFAULT_RUN
    sync_batchnorm: bool = False  # under torchrun: batch statistics over all processes


def train_and_save(
    model: nn.Module,
    objective: Objective,
    spec: ModelSpec,
    inputs: InputSpec,
    splits: dict[str, TensorSplit],
    job: TrainJob,
    model_out: str | Path,
    provenance: dict[str, Any],
) -> TrainResult:
    """Fit on train (best epoch on validation), save model + specs, summarise on validation."""
    preprocess = inputs.preprocess
    result = fit(
        model,
        objective,
        splits["train"],
        splits["val"],
        job.cfg,
        preprocess,
        seed=job.seed,
        device=job.device,
        resume_path=job.run.resume_path,
        fingerprint=job.fingerprint,
        desc=job.desc,
        show_progress=job.run.show_progress,
        on_epoch=job.run.on_epoch,
        observe=job.run.observe,
        sync_batchnorm=job.sync_batchnorm,
    )
    # the saved model's validation scores, computed as fit scored it (same device and dtype)
    dtype = autocast_dtype(job.cfg.precision, torch.device(job.device))
    val = evaluate(
        model, splits["val"], preprocess, max(job.cfg.batch_size, 128), job.device, dtype
    )
    model.cpu().eval()
    if dist_context().is_main:  # one checkpoint, however many processes trained it
        provenance = {**provenance, "best_epoch": result.best_epoch}
        save_checkpoint(model_out, model, spec, inputs, provenance)
    barrier()
    summary = {
        "val_acc": val["acc"],
        "val_balanced_acc": val["balanced_acc"],
        "val_macro_f1": val["macro_f1"],
        "params": count_params(model),
        "flops": count_flops(model, inputs.shape),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        **result.engine,  # device, precision (what `auto` resolved to), channels-last, threads
        "train_seconds": round(result.seconds, 2),
    }
    return TrainResult(summary, result.history, Path(model_out))
