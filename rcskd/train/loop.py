"""The training loop: train_one_epoch, evaluate, and fit with per-epoch resume checkpoints.

Reproducibility: every epoch draws its batches, augmentation and dropout from generators seeded
by (seed, epoch), so a run resumed after epoch k continues exactly as the uninterrupted run.
The resume file is written atomically after each epoch and records a fingerprint of everything
that defines the run; a different fingerprint starts afresh instead of resuming a stale run.
"""

from __future__ import annotations

import copy
import math
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from rcskd.config import TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import Preprocess, augment
from rcskd.errors import RcskdError
from rcskd.io import save_torch_atomic
from rcskd.metrics.classification import summary_scores
from rcskd.progress import progress
from rcskd.train.batches import Batches
from rcskd.train.objective import Objective
from rcskd.train.optim import build_optimizer, lr_factor

RESUME_FORMAT = "rcskd-resume/1"


class TrainingError(RcskdError):
    """Training cannot go on (a non-finite loss, an unusable resume file)."""


@dataclass
class FitResult:
    """What `fit` returns: per-epoch history and the best (restored) epoch."""

    history: list[dict[str, float]]
    best_epoch: int
    best: dict[str, float]
    resumed_from: int = 0  # epochs already done when this call started
    stopped_early: bool = False
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Tensor,
    preprocess: Preprocess,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> Tensor:
    """Logits (CPU, float) of uint8 images in eval mode."""
    model.eval()
    out = [
        model(preprocess(images[i : i + batch_size].to(device))).float().cpu()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(out) if out else torch.zeros(0)


def evaluate(
    model: nn.Module,
    split: TensorSplit,
    preprocess: Preprocess,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Cross-entropy, accuracy, balanced accuracy and macro-F1 on a split."""
    logits = predict_logits(model, split.images, preprocess, batch_size, device)
    labels = split.labels
    scores = summary_scores(labels.numpy(), logits.argmax(1).numpy(), logits.shape[1])
    return {"loss": float(F.cross_entropy(logits, labels)), **scores}


def train_one_epoch(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    split: TensorSplit,
    cfg: TrainConfig,
    preprocess: Preprocess,
    epoch: int,
    seed: int,
    device: torch.device,
    show_progress: bool = True,
    desc: str = "train",
) -> dict[str, float]:
    """One pass over `split`; returns mean loss, accuracy, each term and the last lr."""
    model.train()
    objective.train()
    generator = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    torch.manual_seed(_epoch_seed(seed, epoch) + 1)  # dropout and other layer randomness
    batches = Batches(split, cfg.batch_size, True, cfg.balanced_sampling, generator)
    steps = len(batches)
    sums: dict[str, float] = {}
    correct = seen = 0
    lr = cfg.lr
    bar = progress(batches, f"{desc} epoch {epoch + 1}/{cfg.epochs}", steps, show_progress)
    for step, (images, labels) in enumerate(bar):
        x = augment(images.float().div(255.0), cfg.augment, generator)
        x, labels = preprocess(x.to(device)), labels.to(device)
        lr = cfg.lr * lr_factor(cfg, epoch * steps + step, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        logits, terms = objective(model, x, labels)
        loss = sum(terms.values())  # the objective weighted its terms
        if not torch.isfinite(loss):
            detail = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            raise TrainingError(
                f"{desc}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1} "
                f"({detail}); lower the learning rate or check the inputs"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(labels)
        seen += n
        correct += int((logits.argmax(1) == labels).sum())
        sums["loss"] = sums.get("loss", 0.0) + loss.item() * n
        for name, value in terms.items():
            sums[name] = sums.get(name, 0.0) + value.item() * n
        bar.set_postfix(
            loss=f"{sums['loss'] / seen:.3f}", acc=f"{correct / seen:.3f}", refresh=False
        )
    row = {f"train_{k}": v / max(seen, 1) for k, v in sums.items()}
    row["train_acc"] = correct / max(seen, 1)
    row["lr"] = lr
    return row


def _better(monitor: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if monitor == "loss" else value > best


def _load_resume(path: Path, fingerprint: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
        raise TrainingError(
            f"{path}: resume file is damaged ({exc}); delete it to start over"
        ) from None
    if payload.get("format") != RESUME_FORMAT or payload.get("fingerprint") != fingerprint:
        return None  # another run's state (params or data changed): start afresh
    return payload


def fit(
    model: nn.Module,
    objective: Objective,
    train: TensorSplit,
    val: TensorSplit,
    cfg: TrainConfig,
    preprocess: Preprocess,
    seed: int = 0,
    device: torch.device | str = "cpu",
    resume_path: str | Path | None = None,
    fingerprint: str = "",
    desc: str = "train",
    show_progress: bool = True,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> FitResult:
    """Train `model` (and the objective's own parameters); restore the best epoch on validation.

    With `resume_path`, the state after every epoch is saved there and a matching saved state
    (same `fingerprint`) is picked up, so an interrupted run continues where it stopped. The
    file is removed when training finishes. `on_epoch` receives each epoch's history row.
    """
    start = time.perf_counter()
    device = torch.device(device)
    model.to(device)
    objective.to(device)
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = build_optimizer(params, cfg)
    history: list[dict[str, float]] = []
    best_value: float | None = None
    best_state = copy.deepcopy(model.state_dict())
    best_epoch, stale, first_epoch = 0, 0, 0
    resume = Path(resume_path) if resume_path else None
    saved = _load_resume(resume, fingerprint) if resume else None
    if saved is not None:
        model.load_state_dict(saved["model"])
        objective.load_state_dict(saved["objective"])
        optimizer.load_state_dict(saved["optimizer"])
        best_state, history = saved["best_state"], saved["history"]
        best_value, best_epoch, stale = saved["best_value"], saved["best_epoch"], saved["stale"]
        first_epoch = saved["epoch"]
    stopped_early = False
    for epoch in range(first_epoch, cfg.epochs):
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1}
        row.update(
            train_one_epoch(
                model,
                objective,
                optimizer,
                train,
                cfg,
                preprocess,
                epoch,
                seed,
                device,
                show_progress,
                desc,
            )
        )
        scores = evaluate(model, val, preprocess, max(cfg.batch_size, 128), device)
        row.update({f"val_{k}": v for k, v in scores.items()})
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if _better(cfg.monitor, scores[cfg.monitor], best_value):
            best_value, best_epoch, stale = scores[cfg.monitor], epoch + 1, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        if on_epoch is not None:
            on_epoch(row)
        done = epoch + 1 == cfg.epochs or (cfg.early_stopping and stale >= cfg.early_stopping)
        if resume and not done:
            save_torch_atomic(
                resume,
                {
                    "format": RESUME_FORMAT,
                    "fingerprint": fingerprint,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "objective": objective.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "best_state": best_state,
                    "best_value": best_value,
                    "best_epoch": best_epoch,
                    "stale": stale,
                    "history": history,
                },
            )
        if done:
            stopped_early = epoch + 1 < cfg.epochs
            break
    model.load_state_dict(best_state)
    if resume is not None:
        resume.unlink(missing_ok=True)
    best_row = next((r for r in history if r["epoch"] == best_epoch), {})
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best={k: v for k, v in best_row.items() if k.startswith("val_")},
        resumed_from=first_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start,
    )
