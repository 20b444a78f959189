"""The teacher step: build the architecture, train it on the prepared cache, save it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from rcskd.config import Params, as_dict
from rcskd.data.dataset import load_meta, load_splits
from rcskd.data.intensity import intensity_profile
from rcskd.data.transforms import fit_preprocess
from rcskd.io import run_fingerprint
from rcskd.models import InputSpec, ModelSpec, build_model, load_pretrained
from rcskd.roles import TEACHER
from rcskd.train import (
    DEFAULT_RUN,
    CrossEntropy,
    RunOptions,
    TrainJob,
    TrainResult,
    resolve_device,
    train_and_save,
)


def train_teacher(
    params: Params,
    prepared: str | Path,
    model_out: str | Path,
    run: RunOptions = DEFAULT_RUN,
) -> TrainResult:
    """Train `params.teacher` on `prepared`; save the best-on-validation model to `model_out`.

    The summary holds validation scores, size, FLOPs and wall time; the test split is left to
    the evaluate step.
    """
    cfg = params.teacher
    meta = load_meta(prepared)
    splits = load_splits(prepared)
    torch.manual_seed(params.seed)
    spec = ModelSpec(cfg.arch, len(meta["classes"]), meta["channels"], cfg.width)
    model = build_model(spec)
    initialised = load_pretrained(model, cfg.pretrained) if cfg.pretrained else []
    train_images = splits["train"].images
    inputs = InputSpec.from_meta(
        meta, fit_preprocess(train_images), intensity_profile(train_images)
    )
    device = resolve_device(params.device)
    job = TrainJob(
        cfg=cfg.train,
        seed=params.seed,
        device=device,
        fingerprint=run_fingerprint(as_dict(cfg), params.seed, meta["fingerprint"], params.device),
        desc=TEACHER.name,
        run=run,
        sync_batchnorm=params.distributed.sync_batchnorm,
    )
    provenance = {"role": TEACHER.name, "data_fingerprint": meta["fingerprint"]}
    result = train_and_save(
        model, CrossEntropy(cfg.train.label_smoothing), spec, inputs, splits, job, model_out,
        provenance,
    )  # fmt: skip
    result.summary = {
        "arch": cfg.arch,
        "width": cfg.width,
        "pretrained": cfg.pretrained or None,
        "pretrained_left_initialised": initialised,
        **result.summary,
        "spec": dataclasses.asdict(spec),
    }
    return result
