"""The teacher step: build the architecture, train it on the prepared cache, save it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import torch

from rcskd.config import Params, as_dict
from rcskd.data.dataset import load_meta, load_splits
from rcskd.data.intensity import intensity_profile
from rcskd.data.transforms import fit_preprocess
from rcskd.io import run_fingerprint, save_torch_atomic
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

    With `teacher.refine.epochs` > 0 a second phase trains on from the first phase's best
    weights with its own settings (a fresh schedule); the saved model is the second phase's
    best epoch on validation. The curve holds both phases (`phase` 1 and 2, epochs counted
    on). The summary holds validation scores, size, FLOPs and wall time; the test split is
    left to the evaluate step.
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
    fingerprint = run_fingerprint(as_dict(cfg), params.seed, meta["fingerprint"], params.device)
    provenance = {"role": TEACHER.name, "data_fingerprint": meta["fingerprint"]}
    phases = [cfg.train] + ([cfg.refine] if cfg.refine.epochs > 0 else [])
    history: list[dict] = []
    seconds = 0.0
    for phase, train_cfg in enumerate(phases, start=1):
        resume, on_epoch, offset = run.resume_path, run.on_epoch, len(history)
        if phase > 1:
            resume = f"{resume}.phase{phase}" if resume is not None else None
            if on_epoch is not None:  # epochs count on across phases (MLflow steps too)
                on_epoch = _shifted(run.on_epoch, offset, phase)
        job = TrainJob(
            cfg=train_cfg,
            seed=params.seed,
            device=device,
            fingerprint=run_fingerprint(fingerprint, phase),
            desc=TEACHER.name if len(phases) == 1 else f"{TEACHER.name} phase {phase}",
            run=dataclasses.replace(run, resume_path=resume, on_epoch=on_epoch),
            sync_batchnorm=params.distributed.sync_batchnorm,
        )
        done = _phase_done(run.resume_path, phase, job.fingerprint, len(phases))
        if done is not None:  # finished before a kill in a later phase: not trained again
            model.load_state_dict(done["model"])
            result = TrainResult(done["summary"], done["history"], Path(model_out))
        else:
            result = train_and_save(
                model, CrossEntropy(train_cfg.label_smoothing), spec, inputs, splits, job,
                model_out, provenance,
            )  # fmt: skip
            if phase < len(phases) and run.resume_path is not None:
                save_torch_atomic(
                    f"{run.resume_path}.phase{phase}.done",
                    {"fingerprint": job.fingerprint, "model": model.state_dict(),
                     "summary": result.summary, "history": result.history},
                )  # fmt: skip
        history += [_shift(row, offset, phase) for row in result.history]
        seconds += result.summary["train_seconds"]
    for phase in range(1, len(phases)):  # the whole run finished: no resume state is left
        if run.resume_path is not None:
            Path(f"{run.resume_path}.phase{phase}.done").unlink(missing_ok=True)
    result.history = history
    result.summary["train_seconds"] = round(seconds, 2)
    result.summary["epochs_run"] = len(history)
    result.summary["phases"] = len(phases)
    result.summary = {
        "arch": cfg.arch,
        "width": cfg.width,
        "pretrained": cfg.pretrained or None,
        "pretrained_left_initialised": initialised,
        **result.summary,
        "spec": dataclasses.asdict(spec),
    }
    return result


def _shift(row: dict, offset: int, phase: int) -> dict:
    """A phase's history row with its epoch counted on from the earlier phases."""
    return {**row, "epoch": row["epoch"] + offset, "phase": phase}


def _shifted(on_epoch: Callable[[dict], None], offset: int, phase: int) -> Callable[[dict], None]:
    return lambda row: on_epoch(_shift(row, offset, phase))


def _phase_done(
    resume: str | Path | None, phase: int, fingerprint: str, phases: int
) -> dict | None:
    """The saved result of an earlier phase that finished before the run was killed."""
    if resume is None or phase == phases:
        return None
    path = Path(f"{resume}.phase{phase}.done")
    if not path.is_file():
        return None
    saved = torch.load(path, map_location="cpu", weights_only=True)
    return saved if saved.get("fingerprint") == fingerprint else None
