"""Distil a (pruned) student from the teacher with one method, and score it.

Every method (TKD-CA, DKD-SG and the baselines) goes through `run_distill`: same data, same
augmentation, optimiser, epochs and seed (`distill.train`, `seed`), so that their results differ
only by the loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from rcskd.config import Params, as_dict
from rcskd.data.dataset import load_meta, load_splits
from rcskd.data.transforms import Preprocess
from rcskd.distill import build_objective, method_terms
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import load_checkpoint, require_classes, save_checkpoint
from rcskd.pruning import file_digest
from rcskd.teacher import run_fingerprint, score_splits
from rcskd.train import fit, resolve_device


def run_distill(
    params: Params,
    method: str,
    prepared: str | Path,
    teacher_path: str | Path,
    student_path: str | Path,
    model_out: str | Path,
    resume_path: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train the student at `student_path` with `method` against the teacher; save and report.

    The saved checkpoint is the student alone (state_dict + spec): the loss's adapters are
    training aids and are not exported.
    """
    start = time.perf_counter()
    cfg = params.distill
    terms = method_terms(method, cfg)  # fails early on an unknown method
    meta = load_meta(prepared)
    classes = meta["classes"]
    teacher, _, t_extra = load_checkpoint(teacher_path)
    student, spec, s_extra = load_checkpoint(student_path)
    require_classes(teacher_path, t_extra, classes)
    require_classes(student_path, s_extra, classes)
    splits = load_splits(prepared)
    # The student keeps the teacher's input normalisation (pruning does not change it).
    preprocess = Preprocess.from_dict(s_extra["preprocess"])
    shape = (meta["channels"], meta["image_size"], meta["image_size"])
    torch.manual_seed(params.seed)
    objective, weights = build_objective(method, cfg, teacher, student, shape)
    device = resolve_device(params.device)
    fingerprint = run_fingerprint(
        method,
        as_dict(cfg),
        params.seed,
        file_digest(teacher_path),
        file_digest(student_path),
        meta["fingerprint"],
    )
    try:
        result = fit(
            student,
            objective,
            splits["train"],
            splits["val"],
            cfg.train,
            preprocess,
            seed=params.seed,
            device=device,
            resume_path=resume_path,
            fingerprint=fingerprint,
            weights=weights,
            desc=method,
            show_progress=show_progress,
            on_epoch=on_epoch,
        )
    finally:
        objective.close()
    student.cpu().eval()
    scores = score_splits(student, splits, preprocess, classes)
    extra = {
        **{k: v for k, v in s_extra.items() if k not in ("role", "best_epoch")},
        "role": method,
        "distilled_from": str(teacher_path),
        "initialised_from": str(student_path),
        "best_epoch": result.best_epoch,
    }
    save_checkpoint(model_out, student, spec, extra)
    return {
        "method": method,
        "terms": {name: weights[name] for name in ["ce", *terms]},
        "val_acc": scores["val"]["acc"],
        "val_balanced_acc": scores["val"]["balanced_acc"],
        "test_acc": scores["test"]["acc"],
        "test_balanced_acc": scores["test"]["balanced_acc"],
        "test_macro_f1": scores["test"]["macro_f1"],
        "params": count_params(student),
        "flops": count_flops(student, shape),
        "teacher_params": count_params(teacher),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "resumed_from_epoch": result.resumed_from,
        "train_seconds": round(result.seconds, 2),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "history": result.history,
    }
