"""The prune stage's work: search per-unit ratios (LPB-RL), prune the teacher, fine-tune it."""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.nn import functional as F

from rcskd.config import Params, as_dict
from rcskd.data.dataset import TensorSplit, load_meta, load_splits
from rcskd.data.transforms import Preprocess
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.models import load_checkpoint, require_classes, save_checkpoint
from rcskd.progress import progress
from rcskd.prune.apply import prune_blocks, remaining
from rcskd.prune.blocks import find_blocks
from rcskd.prune.env import PruningEnv, make_units, unit_ratios_to_blocks
from rcskd.prune.proxy import proxy_score, proxy_subsets
from rcskd.prune.search import SearchResult, search_ddpg, search_random, search_uniform
from rcskd.teacher import run_fingerprint
from rcskd.train import CrossEntropy, build_optimizer, fit, predict_logits, resolve_device
from rcskd.train.loop import train_one_epoch


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file (ties a resumed fine-tune to the exact teacher)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def _taylor_gradients(model, images, labels, preprocess, batch_size: int = 64) -> None:
    """Accumulate loss gradients on `model`'s parameters (what Taylor importance reads)."""
    model.train()
    model.zero_grad()
    for i in range(0, len(images), batch_size):
        logits = model(preprocess(images[i : i + batch_size]))
        F.cross_entropy(logits, labels[i : i + batch_size], reduction="sum").backward()
    model.eval()


def proxy_data(params: Params, splits: dict[str, TensorSplit]) -> tuple[torch.Tensor, TensorSplit]:
    """Calibration images and scoring split of the proxy, as `prune.proxy` asks."""
    cfg = params.prune.proxy
    val = splits["val"] if cfg.data == "val" else None
    return proxy_subsets(splits["train"], cfg.calib_images, cfg.eval_images, params.seed, val)


def run_search(
    params: Params,
    teacher: torch.nn.Module,
    splits: dict[str, TensorSplit],
    preprocess: Preprocess,
    input_shape: tuple[int, ...],
    show_progress: bool = True,
) -> tuple[dict[str, SearchResult], list, list, Callable[[dict[str, float]], float]]:
    """Every configured search method's result, plus the blocks, units and scoring function."""
    cfg = params.prune
    blocks = find_blocks(teacher, input_shape)
    units = make_units(blocks, cfg.granularity)
    calib, held = proxy_data(params, splits)
    if cfg.importance == "taylor":
        _taylor_gradients(teacher, held.images, held.labels, preprocess)
    total = count_params(teacher) if cfg.resource == "params" else count_flops(teacher, input_shape)
    methods = [cfg.search]
    if cfg.compare_baselines:
        methods += [m for m in ("ddpg", "random", "uniform") if m != cfg.search]
    evaluations = sum(1 if m == "uniform" else cfg.agent.episodes for m in methods)
    bar = progress(range(evaluations), "prune: candidates", evaluations, show_progress)
    counter = iter(bar)

    def score(unit_ratios: dict[str, float]) -> float:
        ratios = unit_ratios_to_blocks(units, unit_ratios)
        candidate = prune_blocks(teacher, blocks, ratios, input_shape, cfg.importance, cfg.round_to)
        result = proxy_score(candidate, calib, held, preprocess)
        next(counter, None)
        bar.set_postfix(acc=f"{result['acc']:.3f}", refresh=False)
        if cfg.reward == "accuracy":
            return result["acc"]
        kept = remaining(blocks, ratios, total, cfg.resource, cfg.round_to)
        return -(1.0 - result["acc"]) * math.log(max(kept, 2))  # AMC's -error * log(resource)

    env = PruningEnv(units, total, cfg.budget, cfg.resource, cfg.max_ratio, score)
    results: dict[str, SearchResult] = {}
    for method in methods:
        if method == "ddpg":
            results[method] = search_ddpg(env, cfg.agent, params.seed)
        elif method == "random":
            results[method] = search_random(env, cfg.agent.episodes, params.seed)
        else:
            results[method] = search_uniform(env)
    bar.close()
    return results, blocks, units, score


def rerank_with_finetune(
    params: Params,
    teacher: torch.nn.Module,
    result: SearchResult,
    blocks: list,
    units: list,
    splits: dict[str, TensorSplit],
    preprocess: Preprocess,
    input_shape: tuple[int, ...],
) -> dict[str, float]:
    """Unit ratios of the best of the top-k episodes after a short fine-tune of each."""
    cfg = params.prune
    ranked = sorted(result.episodes, key=lambda e: -e["reward"])[: cfg.proxy.finetune_top_k]
    calib, held = proxy_data(params, splits)
    train = splits["train"]
    n = min(len(train.labels), cfg.proxy.finetune_steps * cfg.finetune.batch_size)
    subset = TensorSplit(train.images[:n], train.labels[:n])
    best, best_acc = ranked[0]["ratios"], -1.0
    for episode in ranked:
        ratios = unit_ratios_to_blocks(units, episode["ratios"])
        model = prune_blocks(teacher, blocks, ratios, input_shape, cfg.importance, cfg.round_to)
        optimizer = build_optimizer(model.parameters(), cfg.finetune)
        train_one_epoch(
            model, CrossEntropy(), optimizer, subset, cfg.finetune, preprocess, 0, params.seed,
            {}, torch.device("cpu"), show_progress=False, desc="rerank",
        )  # fmt: skip
        acc = proxy_score(model, calib, held, preprocess)["acc"]
        if acc > best_acc:
            best, best_acc = episode["ratios"], acc
    return best


def run_prune(
    params: Params,
    prepared: str | Path,
    teacher_path: str | Path,
    model_out: str | Path,
    resume_path: str | Path | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Search, prune, fine-tune and save the student; return the report (with search history)."""
    start = time.perf_counter()
    cfg = params.prune
    teacher, spec, extra = load_checkpoint(teacher_path)
    meta = load_meta(prepared)
    require_classes(teacher_path, extra, meta["classes"])
    splits = load_splits(prepared)
    preprocess = Preprocess.from_dict(extra["preprocess"])
    shape = (meta["channels"], meta["image_size"], meta["image_size"])
    teacher.eval()
    results, blocks, units, _ = run_search(
        params, teacher, splits, preprocess, shape, show_progress
    )
    search_seconds = time.perf_counter() - start
    chosen = results[cfg.search]
    unit_ratios = chosen.ratios
    if cfg.proxy.finetune_top_k > 0 and cfg.search != "uniform":
        unit_ratios = rerank_with_finetune(
            params, teacher, chosen, blocks, units, splits, preprocess, shape
        )
    ratios = unit_ratios_to_blocks(units, unit_ratios)
    student = prune_blocks(teacher, blocks, ratios, shape, cfg.importance, cfg.round_to)
    params_ratio = count_params(student) / count_params(teacher)
    flops_ratio = count_flops(student, shape) / count_flops(teacher, shape)
    device = resolve_device(params.device)
    fingerprint = run_fingerprint(
        as_dict(cfg.finetune), ratios, params.seed, file_digest(teacher_path), meta["fingerprint"]
    )
    result = fit(
        student,
        CrossEntropy(cfg.finetune.label_smoothing),
        splits["train"],
        splits["val"],
        cfg.finetune,
        preprocess,
        seed=params.seed,
        device=device,
        resume_path=resume_path,
        fingerprint=fingerprint,
        desc="prune fine-tune",
        show_progress=show_progress,
        on_epoch=on_epoch,
    )
    student.cpu().eval()
    test = splits["test"]
    test_acc = float(
        (predict_logits(student, test.images, preprocess).argmax(1) == test.labels).float().mean()
    )
    save_checkpoint(
        model_out,
        student,
        spec,
        {
            **extra,
            "role": "pruned",
            "ratios": ratios,
            "budget": cfg.budget,
            "resource": cfg.resource,
            "best_epoch": result.best_epoch,
        },
    )
    achieved = params_ratio if cfg.resource == "params" else flops_ratio
    uniform = results.get("uniform")
    return {
        "budget": cfg.budget,
        "resource": cfg.resource,
        "granularity": cfg.granularity,
        "importance": cfg.importance,
        "search": cfg.search,
        "achieved_params_ratio": round(params_ratio, 6),
        "achieved_flops_ratio": round(flops_ratio, 6),
        "budget_error": round(achieved - cfg.budget, 6),
        "budget_met": abs(achieved - cfg.budget) <= 0.02,
        "proxy_score": chosen.score,
        "best_episode": chosen.best_episode,
        "search_scores": {m: r.score for m, r in results.items()},
        "search_seconds": {m: round(r.seconds, 2) for m, r in results.items()},
        "teacher_params": count_params(teacher),
        "params": count_params(student),
        "flops": count_flops(student, shape),
        "finetune_val_acc": result.best.get("val_acc"),
        "test_acc": test_acc,
        "wall_time_s": round(time.perf_counter() - start, 2),
        "search_wall_time_s": round(search_seconds, 2),
        "blocks": len(blocks),
        "units": len(units),
        "ratios": ratios,
        "uniform_ratios": unit_ratios_to_blocks(units, uniform.ratios) if uniform else None,
        "search_history": [row for r in results.values() for row in r.history],
        "history": result.history,
    }
