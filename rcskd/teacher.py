"""Train the teacher: build the architecture, fit on the prepared cache, score, save."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rcskd.config import Params, as_dict
from rcskd.data.dataset import TensorSplit, load_meta, load_splits
from rcskd.data.transforms import Preprocess, fit_preprocess
from rcskd.metrics.classification import classification_report
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import ModelSpec, build_model, load_pretrained, save_checkpoint
from rcskd.train import CrossEntropy, fit, predict_logits, resolve_device


def run_fingerprint(*parts: Any) -> str:
    """A short hash of plain data that defines a run (for resume files)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def score_splits(
    model: torch.nn.Module,
    splits: dict[str, TensorSplit],
    preprocess: Preprocess,
    classes: list[str],
    device: torch.device | str = "cpu",
) -> dict[str, dict[str, Any]]:
    """Classification report (no bootstrap) of a trained model on the val and test splits."""
    scores = {}
    for split in ("val", "test"):
        logits = predict_logits(model, splits[split].images, preprocess, 256, device)
        scores[split] = classification_report(
            splits[split].labels.numpy(), logits.softmax(1).numpy(), classes, n_resamples=0
        )
    return scores


def train_teacher(
    params: Params,
    prepared: str | Path,
    model_out: str | Path,
    resume_path: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train `params.teacher` on `prepared`; save the best-on-validation model to `model_out`.

    Returns the report: validation and test scores of the saved model, size, FLOPs, wall time
    and the per-epoch history.
    """
    cfg = params.teacher
    meta = load_meta(prepared)
    splits = load_splits(prepared)
    classes = meta["classes"]
    torch.manual_seed(params.seed)
    spec = ModelSpec(cfg.arch, len(classes), meta["channels"], cfg.width)
    model = build_model(spec)
    initialised: list[str] = []
    if cfg.pretrained:
        initialised = load_pretrained(model, cfg.pretrained)
    preprocess = fit_preprocess(splits["train"].images)
    device = resolve_device(params.device)
    fingerprint = run_fingerprint(as_dict(cfg), params.seed, meta["fingerprint"], params.device)
    result = fit(
        model,
        CrossEntropy(cfg.train.label_smoothing),
        splits["train"],
        splits["val"],
        cfg.train,
        preprocess,
        seed=params.seed,
        device=device,
        resume_path=resume_path,
        fingerprint=fingerprint,
        desc="teacher",
        show_progress=show_progress,
        on_epoch=on_epoch,
    )
    scores = score_splits(model, splits, preprocess, classes, device)
    model.cpu()
    size = (meta["channels"], meta["image_size"], meta["image_size"])
    extra = {
        "role": "teacher",
        "classes": classes,
        "image_size": meta["image_size"],
        "channels": meta["channels"],
        "preprocess": preprocess.as_dict(),
        "crop_border": params.prepare.crop_border,
        "data_fingerprint": meta["fingerprint"],
        "best_epoch": result.best_epoch,
    }
    save_checkpoint(model_out, model, spec, extra)
    return {
        "arch": cfg.arch,
        "width": cfg.width,
        "pretrained": cfg.pretrained or None,
        "pretrained_left_initialised": initialised,
        "val_acc": scores["val"]["acc"],
        "val_balanced_acc": scores["val"]["balanced_acc"],
        "test_acc": scores["test"]["acc"],
        "test_balanced_acc": scores["test"]["balanced_acc"],
        "test_macro_f1": scores["test"]["macro_f1"],
        "params": count_params(model),
        "flops": count_flops(model, size),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "resumed_from_epoch": result.resumed_from,
        "device": str(device),
        "train_seconds": round(result.seconds, 2),
        "history": result.history,
        "spec": dataclasses.asdict(spec),
    }
