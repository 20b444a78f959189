"""The training loop: train_one_epoch, evaluate, and fit with per-epoch resume checkpoints.

Reproducibility: every epoch draws its batches, augmentation and dropout from generators seeded
by (seed, epoch), so a run resumed after epoch k continues exactly as the uninterrupted run.
The resume file is written atomically after each epoch and records a fingerprint of everything
that defines the run; a different fingerprint starts afresh instead of resuming a stale run.

Speed (see `rcskd.train.runtime`): batches are indexed where the cache lives (on the GPU when
it fits), augmented there, run under autocast, and the step loop never waits for the device:
running sums stay on it and are read every `train.log_every` steps. Under torchrun, each process
takes its share of every global batch and DDP averages the gradients; rank 0 alone writes.
"""

from __future__ import annotations

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
from rcskd.data.mixing import mix_or_pass, plan_mixing, plan_seed
from rcskd.data.transforms import Preprocess, augment
from rcskd.distributed import all_reduce_sum, barrier, broadcast_buffers, broadcast_object
from rcskd.errors import RcskdError
from rcskd.io import save_torch_atomic
from rcskd.metrics.classification import summary_scores
from rcskd.progress import progress
from rcskd.train.batches import Batches, share_weight
from rcskd.train.objective import Objective
from rcskd.train.optim import build_optimizer, lr_factor
from rcskd.train.runtime import (
    Engine,
    autocast,
    make_engine,
    place_split,
    prepare_model,
    release_model,
    to_device,
)

RESUME_FORMAT = "rcskd-resume/2"  # 2: records the resolved precision and memory format


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
    engine: dict[str, Any] = field(default_factory=dict)  # device, precision, channels-last


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**63)


def is_channels_last(model: nn.Module) -> bool:
    """Whether `model`'s convolution weights are in channels-last (inputs then follow)."""
    weight = next((p for p in model.parameters() if p.dim() == 4), None)
    return (
        weight is not None
        and not weight.is_contiguous()
        and weight.is_contiguous(memory_format=torch.channels_last)
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Tensor,
    preprocess: Preprocess,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> Tensor:
    """Logits of uint8 images in eval mode, as float32 on the CPU (the placement rule).

    The forward passes run on `device` under autocast in `dtype` (None: fp32), in the memory
    format the model is in.
    """
    model.eval()
    device = torch.device(device)
    channels_last = is_channels_last(model)
    out = []
    with autocast(device, dtype):
        for i in range(0, len(images), batch_size):
            x = preprocess(to_device(images[i : i + batch_size], device))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            out.append(model(x).float())
    return torch.cat(out).cpu() if out else torch.zeros(0)  # one copy back, not one per batch


def evaluate(
    model: nn.Module,
    split: TensorSplit,
    preprocess: Preprocess,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Cross-entropy, accuracy, balanced accuracy and macro-F1 on a split (computed on the CPU
    in fp32, wherever the split and the model live)."""
    logits = predict_logits(model, split.images, preprocess, batch_size, device, dtype)
    labels = split.labels.cpu()
    scores = summary_scores(labels.numpy(), logits.argmax(1).numpy(), logits.shape[1])
    return {"loss": float(F.cross_entropy(logits, labels)), **scores}


class TrainStep(nn.Module):
    """The model and the objective as one module (what DDP wraps): forward -> logits, terms."""

    def __init__(self, model: nn.Module, objective: Objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(
        self, inputs: Tensor, labels: Tensor, mixed: Any = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        return self.objective(self.model, inputs, labels, mixed)


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
    engine: Engine | None = None,
    step: nn.Module | None = None,
) -> dict[str, float]:
    """One pass over `split`; returns mean loss, accuracy, each term and the last lr.

    `step` (default `TrainStep(model, objective)`) runs the forward pass: under DDP, the wrapped
    module. The split may live on the device (batches are then indexed there). Batch mixing
    (mixup / CutMix) follows the objective's own request, else `cfg.mix`.
    """
    engine = engine or make_engine(cfg, device)
    step = step if step is not None else TrainStep(model, objective)
    device = engine.device
    rank, world = engine.dist.rank, engine.dist.world_size
    model.train()
    objective.train()
    generator = torch.Generator().manual_seed(_epoch_seed(seed, epoch))
    torch.manual_seed(_epoch_seed(seed, epoch) + 1)  # dropout and other layer randomness
    # augmentation draws where the images are; in one CPU process from the batch generator
    aug_generator = generator
    if device.type != "cpu" or world > 1:
        aug_generator = torch.Generator(device).manual_seed(_epoch_seed(seed, epoch) + 7 * rank + 3)
    batches = Batches(split, cfg.batch_size, True, cfg.balanced_sampling, generator, rank, world)
    steps = len(batches)
    mixing = plan_mixing(objective.mix or cfg.mix, steps, plan_seed(_epoch_seed(seed, epoch)))
    sums: dict[str, Tensor] = {}
    correct = torch.zeros((), dtype=torch.float64, device=device)
    seen = torch.zeros((), dtype=torch.float64, device=device)
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    bad_terms: dict[str, Tensor] = {}
    lr = cfg.lr
    show = show_progress and engine.dist.is_main
    bar = progress(range(steps), f"{desc} epoch {epoch + 1}/{cfg.epochs}", steps, show)
    for index, (images, labels, global_size) in zip(bar, batches, strict=False):
        images, labels = to_device(images, device), to_device(labels, device)
        x = augment(images.float().div(255.0), cfg.augment, aug_generator)
        x, mixed = mix_or_pass(x, labels, mixing[index])
        if mixed is not None:
            labels = mixed.dominant
        x = engine.inputs(preprocess(x))
        lr = cfg.lr * lr_factor(cfg, epoch * steps + index, steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        with engine.autocast():
            logits, terms = step(x, labels, mixed)
        loss = sum(terms.values())  # the objective weighted its terms
        # remember the first non-finite step (and its terms) without waiting for the device
        bad = (~torch.isfinite(loss.detach())) & (first_bad < 0)
        first_bad = torch.where(bad, index, first_bad)
        for name, value in {"loss": loss, **terms}.items():
            kept = bad_terms.get(name, torch.zeros((), device=device))
            bad_terms[name] = torch.where(bad, value.detach().float(), kept)
        optimizer.zero_grad(set_to_none=True)
        # DDP averages the processes' gradients: weigh each share so that the average is the
        # global batch's mean even when the shares differ in size
        scaled = loss * share_weight(labels.shape[0], global_size, world)
        if engine.scaler is not None:
            engine.scaler.scale(scaled).backward()
            engine.scaler.step(optimizer)
            engine.scaler.update()
        else:
            scaled.backward()
            optimizer.step()
        n = labels.shape[0]
        seen += n
        correct += (logits.detach().argmax(1) == labels).sum()
        for name, value in {"loss": loss, **terms}.items():
            sums[name] = sums.get(name, 0.0) + value.detach().double() * n
        if (index + 1) % engine.sync_every == 0 or index + 1 == steps:
            _stop_if_non_finite(first_bad, bad_terms, desc, epoch)
            if show:
                bar.set_postfix(loss=f"{float(sums['loss'] / seen):.3f}",
                                acc=f"{float(correct / seen):.3f}", refresh=False)  # fmt: skip
    bar.close()
    totals = all_reduce_sum({**{f"train_{k}": v for k, v in sums.items()}, "correct": correct,
                             "seen": seen})  # fmt: skip
    seen_all = max(float(totals.pop("seen")), 1.0)
    row = {k: float(v) / seen_all for k, v in totals.items() if k != "correct"}
    row["train_acc"] = float(totals["correct"]) / seen_all
    row["lr"] = lr
    return row


def _stop_if_non_finite(first_bad: Tensor, terms: dict[str, Tensor], desc: str, epoch: int) -> None:
    """Raise (one host sync) if a step of this epoch had a non-finite loss."""
    step = int(first_bad)
    if step < 0:
        return
    detail = ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items() if k != "loss")
    raise TrainingError(
        f"{desc}: loss is {terms['loss'].item()} at epoch {epoch + 1}, step {step + 1} "
        f"({detail}); lower the learning rate or check the inputs"
    )


def _better(monitor: str, value: float, best: float | None) -> bool:
    if best is None or math.isnan(best):
        return not math.isnan(value)
    return value < best if monitor == "loss" else value > best


def _load_resume(path: Path, fingerprint: str, engine: Engine) -> dict[str, Any] | None:
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
    saved = (payload.get("precision"), payload.get("channels_last"))
    if saved != (engine.precision, engine.channels_last):
        # the same params resolved differently (another machine): its weights were trained in
        # another dtype, so continuing would mix two runs
        print(
            f"{path}: saved by a {saved[0]} run (channels-last {saved[1]}); this run is "
            f"{engine.precision} (channels-last {engine.channels_last}): starting afresh"
        )
        return None
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
    sync_batchnorm: bool = False,
    observe: Callable[[nn.Module, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train `model` (and the objective's own parameters); restore the best epoch on validation.

    With `resume_path`, the state after every epoch is saved there and a matching saved state
    (same `fingerprint`, precision and memory format) is picked up, so an interrupted run
    continues where it stopped. The file is removed when training finishes. `on_epoch`
    receives each epoch's history row; `observe` (benchmarks only) the model and the row.
    Under torchrun the model trains data-parallel (DDP); every process then holds rank 0's
    BatchNorm statistics before validation, and rank 0's validation scores decide the best
    epoch and early stopping for all (no process leaves the loop alone). Only rank 0 writes
    the resume file.
    """
    start = time.perf_counter()
    engine = make_engine(cfg, device)
    device = engine.device
    prepare_model(model, engine, sync_batchnorm)
    objective.to(device)
    step: nn.Module = TrainStep(model, objective)
    if engine.dist.active:
        from torch.nn.parallel import DistributedDataParallel

        ids = [engine.dist.local_rank] if device.type == "cuda" else None
        step = DistributedDataParallel(step, device_ids=ids)
    if cfg.compile:
        step = torch.compile(step)
    train = place_split(train, device, cfg.data_on_device)
    val = place_split(val, device, cfg.data_on_device)
    params = list(model.parameters()) + list(objective.parameters())
    optimizer = build_optimizer(params, cfg)
    history: list[dict[str, float]] = []
    best_value: float | None = None
    best_state = _cpu_state(model)
    best_epoch, stale, first_epoch = 0, 0, 0
    resume = Path(resume_path) if resume_path else None
    saved = _load_resume(resume, fingerprint, engine) if resume else None
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
                model, objective, optimizer, train, cfg, preprocess, epoch, seed, device,
                show_progress, desc, engine=engine, step=step,
            )
        )  # fmt: skip
        broadcast_buffers(model)  # every process now holds rank 0's model
        scores = evaluate(model, val, preprocess, max(cfg.batch_size, 128), device, engine.dtype)
        scores = broadcast_object(scores)  # rank 0's scores decide for every process
        row.update({f"val_{k}": v for k, v in scores.items()})
        row["seconds"] = time.perf_counter() - t0
        history.append(row)
        if _better(cfg.monitor, scores[cfg.monitor], best_value):
            best_value, best_epoch, stale = scores[cfg.monitor], epoch + 1, 0
            best_state = _cpu_state(model)
        else:
            stale += 1
        if on_epoch is not None and engine.dist.is_main:
            on_epoch(row)
        if observe is not None and engine.dist.is_main:
            observe(model, row)
        done = epoch + 1 == cfg.epochs or (cfg.early_stopping and stale >= cfg.early_stopping)
        if resume and not done and engine.dist.is_main:
            save_torch_atomic(
                resume,
                {
                    "format": RESUME_FORMAT,
                    "fingerprint": fingerprint,
                    "precision": engine.precision,
                    "channels_last": engine.channels_last,
                    "epoch": epoch + 1,
                    "model": _cpu_state(model),
                    "objective": _cpu_state(objective),
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
    release_model(model)
    barrier()  # no process leaves (and rank 0 removes the resume file) before all are done
    if resume is not None and engine.dist.is_main:
        resume.unlink(missing_ok=True)
    best_row = next((r for r in history if r["epoch"] == best_epoch), {})
    return FitResult(
        history=history,
        best_epoch=best_epoch,
        best={k: v for k, v in best_row.items() if k.startswith("val_")},
        resumed_from=first_epoch,
        stopped_early=stopped_early,
        seconds=time.perf_counter() - start,
        engine=engine.describe(),
    )


def _cpu_state(module: nn.Module) -> dict[str, Tensor]:
    """A CPU copy of `module`'s state, in the contiguous layout (the placement rule: what is
    kept or saved lives on the host)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in module.state_dict().items()}
