"""The distill step: train a (pruned) student against the frozen teacher with one method.

Every method (RC-SKD's TKD-CA and DKD-SG stages and every baseline) goes through
`run_distill`: same data, augmentation, optimiser, epochs and seed (`distill.train`, `seed`),
so that their results differ only by the objective, which `distill.methods` defines as data.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from rcskd.config import Params, as_dict
from rcskd.data.dataset import load_meta, load_splits
from rcskd.distill import build_objective, method_terms
from rcskd.io import file_digest, run_fingerprint
from rcskd.metrics.complexity import count_params
from rcskd.models import load_checkpoint
from rcskd.train import (
    DEFAULT_RUN,
    RunOptions,
    TrainJob,
    TrainResult,
    resolve_device,
    train_and_save,
)


def run_distill(
    params: Params,
    method: str,
    prepared: str | Path,
    teacher_path: str | Path,
    student_path: str | Path,
    model_out: str | Path,
    run: RunOptions = DEFAULT_RUN,
) -> TrainResult:
    """Train the student at `student_path` with `method` against the teacher; save and report.

    The saved checkpoint is the student alone (specs + state_dict): the loss's adapters are
    training aids and are not exported.
    """
    start = time.perf_counter()
    cfg = params.distill
    terms = method_terms(method, cfg)  # a bad method fails before anything is loaded
    meta = load_meta(prepared)
    teacher = load_checkpoint(teacher_path)
    student = load_checkpoint(student_path)
    teacher.require_classes(meta["classes"])
    student.require_classes(meta["classes"])
    # The student keeps the teacher's input contract (pruning does not change it).
    inputs = student.require_inputs()
    splits = load_splits(prepared)
    torch.manual_seed(params.seed)
    objective = build_objective(method, cfg, teacher.model, student.model, inputs.shape)
    job = TrainJob(
        cfg=cfg.train,
        seed=params.seed,
        device=resolve_device(params.device),
        fingerprint=run_fingerprint(
            method,
            as_dict(cfg),
            params.seed,
            file_digest(teacher_path),
            file_digest(student_path),
            meta["fingerprint"],
        ),  # fmt: skip
        desc=method,
        run=run,
        sync_batchnorm=params.distributed.sync_batchnorm,
    )
    provenance = {
        **{k: v for k, v in student.provenance.items() if k not in ("role", "best_epoch")},
        "role": method,
        "distilled_from": str(teacher_path),
        "initialised_from": str(student_path),
    }
    try:
        result = train_and_save(
            student.model, objective, student.spec, inputs, splits, job, model_out, provenance
        )
    finally:
        objective.close()
    result.summary = {
        "method": method,
        "terms": {"ce": cfg.ce_weight, **{t.name: t.weight for t in terms}},
        **result.summary,
        "teacher_params": count_params(teacher.model),
        "wall_time_s": round(time.perf_counter() - start, 2),
    }
    return result
