"""The prune step (LPB-RL): search per-unit ratios, prune the teacher, fine-tune the student."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rcskd.config import Params, as_dict
from rcskd.data.dataset import TensorSplit, load_meta, load_splits
from rcskd.distributed import broadcast_object, dist_context
from rcskd.io import file_digest, run_fingerprint
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import Checkpoint, load_checkpoint
from rcskd.prune.apply import prune_blocks
from rcskd.prune.blocks import find_blocks
from rcskd.prune.env import unit_ratios_to_blocks
from rcskd.prune.journal import SearchJournal
from rcskd.prune.latency import load_latency_table, predicted_ms
from rcskd.prune.lpb_rl import prime_importance, proxy_data, rerank_with_finetune, run_search
from rcskd.prune.search import SearchResult
from rcskd.roles import PRUNED
from rcskd.train import (
    DEFAULT_RUN,
    CrossEntropy,
    RunOptions,
    TrainJob,
    TrainResult,
    resolve_device,
    train_and_save,
)


@dataclass
class PruneResult(TrainResult):
    """The fine-tune's result plus the search: every method's log and the ratios per block."""

    search_history: list[dict[str, Any]] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)
    uniform_ratios: dict[str, float] | None = None


def run_prune(
    params: Params,
    prepared: str | Path,
    teacher_path: str | Path,
    model_out: str | Path,
    run: RunOptions = DEFAULT_RUN,
    latency_table: str | Path | None = None,
) -> PruneResult:
    """Search, prune, fine-tune and save the student (validation scores only). With
    `prune.resource: latency`, `latency_table` is the measured table (stages/latency_table.py).

    Under torchrun the search (and its re-rank) runs on rank 0 alone and its ratios are
    broadcast, so every process cuts the same student; the fine-tune then runs data-parallel.
    Other processes return an empty summary (only rank 0 writes).
    """
    start = time.perf_counter()
    loaded = _load(prepared, teacher_path)
    search = _search(params, loaded, run, latency_table) if dist_context().is_main else None
    ratios = broadcast_object(search.ratios if search else None)
    if search is None:  # what the search primed on rank 0 (Taylor importance reads gradients)
        _prime(params, loaded)
    # the teacher the search cut (and primed for its importance), not a second copy
    result, params_ratio, flops_ratio = _finetune(params, loaded, ratios, model_out, run)
    if search is None:
        return PruneResult(summary={}, history=result.history, checkpoint=result.checkpoint)
    search.journal.finish()
    summary = _summary(params, search, loaded, params_ratio, flops_ratio, ratios)
    summary.update(result.summary)
    summary["wall_time_s"] = round(time.perf_counter() - start, 2)
    summary["search_wall_time_s"] = round(search.seconds, 2)
    summary["search_candidates_replayed"] = search.journal.replayed  # > 0: resumed after a kill
    summary["blocks"], summary["units"] = len(search.blocks), len(search.units)
    uniform = search.results.get("uniform")
    return PruneResult(
        summary=summary,
        history=result.history,
        checkpoint=result.checkpoint,
        search_history=[row for r in search.results.values() for row in r.history],
        ratios=ratios,
        uniform_ratios=unit_ratios_to_blocks(search.units, uniform.ratios) if uniform else None,
    )


@dataclass
class _Search:
    """What the search found: every method's result, the chosen per-block ratios, the blocks
    and units, the latency table and the journal (finished after the fine-tune)."""

    results: dict[str, SearchResult]
    ratios: dict[str, float]
    blocks: list
    units: list
    table: dict | None
    journal: SearchJournal
    seconds: float


def _search(
    params: Params, loaded: _Loaded, run: RunOptions, latency_table: str | Path | None
) -> _Search:
    """Run every configured search on the teacher (and the optional re-rank); rank 0 only."""
    start = time.perf_counter()
    cfg = params.prune
    inputs = loaded.teacher.require_inputs()
    model, device = loaded.teacher.model, resolve_device(params.device)
    table = load_latency_table(latency_table) if cfg.resource == "latency" else None
    search_settings = {k: v for k, v in as_dict(cfg).items() if k != "finetune"}
    journal = SearchJournal.open(
        f"{run.resume_path}.search.json" if run.resume_path else None,
        run_fingerprint(
            search_settings, params.seed, loaded.teacher_digest, loaded.meta["fingerprint"],
            str(device), table,
        ),
    )  # fmt: skip
    results, blocks, units, _ = run_search(
        params, model, loaded.splits, inputs.preprocess, inputs.shape, run.show_progress,
        device, journal, table,
    )  # fmt: skip
    seconds = time.perf_counter() - start
    chosen = results[cfg.search]
    unit_ratios = chosen.ratios
    if cfg.proxy.finetune_top_k > 0 and cfg.search != "uniform":
        unit_ratios = rerank_with_finetune(
            params, model, chosen, blocks, units, loaded.splits, inputs.preprocess, inputs.shape,
            device,
        )  # fmt: skip
    ratios = unit_ratios_to_blocks(units, unit_ratios)
    return _Search(results, ratios, blocks, units, table, journal, seconds)


def _summary(
    params: Params,
    search: _Search,
    loaded: _Loaded,
    params_ratio: float,
    flops_ratio: float,
    ratios: dict[str, float],
) -> dict[str, Any]:
    """The search's part of the prune report: budget, what was achieved, every method's score."""
    cfg = params.prune
    chosen = search.results[cfg.search]
    achieved = {"params": params_ratio, "flops": flops_ratio}.get(cfg.resource)
    latency = {}
    table, blocks = search.table, search.blocks
    if table is not None:  # predicted from the table, as the search saw it
        whole = table["rest_ms"] + sum(b.latency_at(1.0) for b in blocks)
        achieved = predicted_ms(blocks, ratios, table, cfg.round_to) / whole
        latency = {"achieved_latency_ratio": round(achieved, 6),
                   "teacher_latency_ms": round(whole, 4)}  # fmt: skip
    return {
        "budget": cfg.budget,
        "resource": cfg.resource,
        "granularity": cfg.granularity,
        "importance": cfg.importance,
        "search": cfg.search,
        "achieved_params_ratio": round(params_ratio, 6),
        "achieved_flops_ratio": round(flops_ratio, 6),
        **latency,
        "budget_error": round(achieved - cfg.budget, 6),
        "budget_met": abs(achieved - cfg.budget) <= 0.02,
        "proxy_score": chosen.score,
        "best_episode": chosen.best_episode,
        "search_scores": {m: r.score for m, r in search.results.items()},
        "search_seconds": {m: round(r.seconds, 2) for m, r in search.results.items()},
        "teacher_params": count_params(loaded.teacher.model),
    }


@dataclass
class _Loaded:
    """What the prune step reads: the teacher, the prepared data's meta and splits."""

    teacher: Checkpoint
    meta: dict[str, Any]
    splits: dict[str, TensorSplit]
    teacher_digest: str


def _load(prepared: str | Path, teacher_path: str | Path) -> _Loaded:
    """The teacher and the prepared data, checked to share their classes."""
    teacher = load_checkpoint(teacher_path)
    meta = load_meta(prepared)
    teacher.require_classes(meta["classes"])
    return _Loaded(teacher, meta, load_splits(prepared), file_digest(teacher_path))


def finetune_ratios(
    params: Params,
    prepared: str | Path,
    teacher_path: str | Path,
    ratios: dict[str, float],
    model_out: str | Path,
    run: RunOptions = DEFAULT_RUN,
) -> tuple[TrainResult, float, float]:
    """Prune the teacher by per-block `ratios` (a search's result), fine-tune the student with
    `prune.finetune` and `seed`, and save it; returns the fine-tune's result and the parameter
    and FLOPs ratios kept. The prune step's second half, callable without a search (a benchmark
    refits one candidate under other fine-tune seeds)."""
    loaded = _load(prepared, teacher_path)
    _prime(params, loaded)  # what the search primed before cutting
    return _finetune(params, loaded, ratios, model_out, run)


def _prime(params: Params, loaded: _Loaded) -> None:
    """Prime the teacher as the search does before cutting (Taylor importance reads gradients
    on the proxy's held-out images)."""
    device = resolve_device(params.device)
    _, held = proxy_data(params, loaded.splits, device)
    inputs = loaded.teacher.require_inputs()
    prime_importance(params, loaded.teacher.model, held, inputs.preprocess, device)


def _finetune(
    params: Params,
    loaded: _Loaded,
    ratios: dict[str, float],
    model_out: str | Path,
    run: RunOptions,
) -> tuple[TrainResult, float, float]:
    """Cut the (primed) teacher by `ratios`, fine-tune and save the student."""
    cfg = params.prune
    teacher = loaded.teacher
    inputs = teacher.require_inputs()
    shape = inputs.shape
    model = teacher.model
    blocks = find_blocks(model, shape)
    student = prune_blocks(model, blocks, ratios, shape, cfg.importance, cfg.round_to)
    params_ratio = count_params(student) / count_params(model)
    flops_ratio = count_flops(student, shape) / count_flops(model, shape)
    job = TrainJob(
        cfg=cfg.finetune,
        seed=params.seed,
        device=resolve_device(params.device),
        fingerprint=run_fingerprint(
            as_dict(cfg.finetune),
            ratios,
            params.seed,
            loaded.teacher_digest,
            loaded.meta["fingerprint"],
        ),  # fmt: skip
        desc="prune fine-tune",
        run=run,
        sync_batchnorm=params.distributed.sync_batchnorm,
    )
    provenance = {
        **teacher.provenance,
        "role": PRUNED.name,
        "ratios": ratios,
        "budget": cfg.budget,
        "resource": cfg.resource,
    }
    result = train_and_save(
        student, CrossEntropy(cfg.finetune.label_smoothing), teacher.spec, inputs, loaded.splits,
        job, model_out, provenance,
    )  # fmt: skip
    return result, params_ratio, flops_ratio
