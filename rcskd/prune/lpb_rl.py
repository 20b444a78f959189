"""LPB-RL's search: score pruning candidates with the proxy, run the agent and its baselines.

`run_search` builds the blocks and units of the teacher, the proxy's data and the environment,
and runs every configured search method through it with the same number of evaluations;
`rerank_with_finetune` optionally re-ranks the best candidates after a short fine-tune.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch.nn import functional as F

from rcskd.config import Params
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import Preprocess
from rcskd.errors import ConfigError
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.progress import progress
from rcskd.prune.apply import prune_blocks, remaining
from rcskd.prune.blocks import find_blocks
from rcskd.prune.env import PruningEnv, make_units, unit_ratios_to_blocks
from rcskd.prune.journal import SearchJournal
from rcskd.prune.latency import with_latency
from rcskd.prune.proxy import proxy_score, proxy_subsets
from rcskd.prune.search import (
    SearchResult,
    search_cem,
    search_ddpg,
    search_random,
    search_uniform,
)
from rcskd.train import CrossEntropy, build_optimizer
from rcskd.train.loop import train_one_epoch
from rcskd.train.runtime import autocast_dtype, use_channels_last


def _taylor_gradients(
    model, images, labels, preprocess, device: torch.device, batch_size: int = 64
) -> None:
    """Accumulate loss gradients on `model`'s parameters (what Taylor importance reads).

    The passes run on `device`; the model (which Torch-Pruning traces on the CPU) stays where it
    is and receives the gradients.
    """
    work = copy.deepcopy(model).to(device).train()
    work.zero_grad()
    for i in range(0, len(images), batch_size):
        logits = work(preprocess(images[i : i + batch_size].to(device)))
        target = labels[i : i + batch_size].to(device)
        F.cross_entropy(logits, target, reduction="sum").backward()
    for param, trained in zip(model.parameters(), work.parameters(), strict=True):
        param.grad = None if trained.grad is None else trained.grad.to(param.device)
    model.eval()


def prime_importance(
    params: Params,
    teacher: torch.nn.Module,
    held: TensorSplit,
    preprocess: Preprocess,
    device: torch.device | str = "cpu",
) -> None:
    """Give `teacher` what `prune.importance` reads before channels are cut: Taylor importance
    needs loss gradients on the proxy's held-out images; the others read the weights alone."""
    if params.prune.importance == "taylor":
        _taylor_gradients(teacher, held.images, held.labels, preprocess, torch.device(device))


def proxy_data(
    params: Params, splits: dict[str, TensorSplit], device: torch.device | str = "cpu"
) -> tuple[torch.Tensor, TensorSplit]:
    """Calibration images and scoring split of the proxy, as `prune.proxy` asks, on `device`."""
    cfg = params.prune.proxy
    val = splits["val"] if cfg.data == "val" else None
    calib, held = proxy_subsets(
        splits["train"], cfg.calib_images, cfg.eval_images, params.seed, val
    )
    return calib.to(device), TensorSplit(held.images.to(device), held.labels.to(device))


def run_search(
    params: Params,
    teacher: torch.nn.Module,
    splits: dict[str, TensorSplit],
    preprocess: Preprocess,
    input_shape: tuple[int, ...],
    show_progress: bool = True,
    device: torch.device | str = "cpu",
    journal: SearchJournal | None = None,
    latency_table: dict | None = None,
) -> tuple[dict[str, SearchResult], list, list, Callable[[dict[str, float]], float]]:
    """Every configured search method's result, plus the blocks, units and scoring function.

    Candidates are cut on the CPU (Torch-Pruning traces there) and scored on `device`: BN
    recalibration and the held-out accuracy run where training runs, in the precision and
    memory format the fine-tune (`prune.finetune`) resolves to there. Every evaluation goes
    through `journal` (a fresh in-memory one by default): a killed search replays it. With
    `prune.resource: latency`, `latency_table` (rcskd.prune.latency) prices the candidates.
    """
    journal = journal or SearchJournal(None, "")
    cfg = params.prune
    device = torch.device(device)
    blocks = find_blocks(teacher, input_shape)
    if cfg.resource == "latency":
        if latency_table is None or "blocks" not in latency_table:
            raise ConfigError("prune.resource: latency needs the measured latency table")
        blocks = with_latency(blocks, latency_table)
    units = make_units(blocks, cfg.granularity)
    calib, held = proxy_data(params, splits, device)
    prime_importance(params, teacher, held, preprocess, device)
    dtype = autocast_dtype(cfg.finetune.precision, device)
    layout = torch.channels_last if use_channels_last(cfg.finetune.memory_format, device) else None
    teacher_flops = count_flops(teacher, input_shape)
    total = {
        "params": lambda: count_params(teacher),
        "flops": lambda: teacher_flops,
        "latency": lambda: latency_table["rest_ms"] + sum(b.latency_at(1.0) for b in blocks),
    }[cfg.resource]()
    # uniform pruning (one candidate) always runs: the report compares the chosen ratios with it
    methods = list(dict.fromkeys([cfg.search, "uniform"]))
    if cfg.compare_baselines:
        methods += [m for m in ("ddpg", "cem", "random") if m not in methods]
    evaluations = sum(1 if m == "uniform" else cfg.agent.episodes for m in methods)
    bar = progress(range(evaluations), "prune: candidates", evaluations, show_progress)
    counter = iter(bar)

    current = {"method": ""}

    def score(unit_ratios: dict[str, float]) -> float:
        reward = journal.evaluate(current["method"], unit_ratios, lambda: fresh(unit_ratios))
        next(counter, None)
        return reward

    def fresh(unit_ratios: dict[str, float]) -> float:
        ratios = unit_ratios_to_blocks(units, unit_ratios)
        candidate = prune_blocks(teacher, blocks, ratios, input_shape, cfg.importance, cfg.round_to)
        candidate = candidate.to(device, memory_format=layout or torch.contiguous_format)
        result = proxy_score(candidate, calib, held, preprocess, device, dtype)
        bar.set_postfix(acc=f"{result['acc']:.3f}", refresh=False)
        if cfg.reward == "accuracy":
            reward = result["acc"]
        else:
            kept = remaining(blocks, ratios, total, cfg.resource, cfg.round_to)
            reward = -(1.0 - result["acc"]) * math.log(max(kept, 2))  # AMC: -error * log(res)
        if cfg.flops_budget < 1.0:
            kept_flops = remaining(blocks, ratios, teacher_flops, "flops", cfg.round_to)
            reward -= max(0.0, kept_flops / teacher_flops - cfg.flops_budget)
        return reward

    env = PruningEnv(units, total, cfg.budget, cfg.resource, cfg.max_ratio, score)
    seed = params.seed if cfg.search_seed < 0 else cfg.search_seed
    results: dict[str, SearchResult] = {}
    for method in methods:
        current["method"] = method
        if method == "ddpg":
            results[method] = search_ddpg(env, cfg.agent, seed)
        elif method == "cem":
            results[method] = search_cem(env, cfg.agent, seed)
        elif method == "random":
            results[method] = search_random(env, cfg.agent.episodes, seed)
        else:
            results[method] = search_uniform(env)
    bar.close()
    return results, blocks, units, score


def short_finetune_subset(params: Params, train: TensorSplit) -> TensorSplit:
    """`prune.proxy.finetune_steps` batches' worth of training images drawn at random (seeded by
    `seed`): the data of the multi-fidelity re-rank's short fine-tune. Random, not the first
    ones: prepared splits are stored class by class, and a prefix held one or two classes (on
    Brain-4 the short fine-tune then cut every candidate's proxy accuracy to about 0.49)."""
    cfg = params.prune
    n = min(len(train.labels), cfg.proxy.finetune_steps * cfg.finetune.batch_size)
    order = torch.randperm(len(train.labels), generator=torch.Generator().manual_seed(params.seed))
    pick = order[:n].sort().values
    return TensorSplit(train.images[pick], train.labels[pick])


def short_finetune_score(
    params: Params,
    model: torch.nn.Module,
    subset: TensorSplit,
    calib: torch.Tensor,
    held: TensorSplit,
    preprocess: Preprocess,
    device: torch.device | str = "cpu",
) -> float:
    """Proxy accuracy of a candidate after one pass over `subset` with the fine-tune's optimizer
    (the multi-fidelity score; `model` is trained in place, on `device`)."""
    cfg = params.prune
    model.to(device)
    optimizer = build_optimizer(model.parameters(), cfg.finetune)
    train_one_epoch(
        model, CrossEntropy(), optimizer, subset, cfg.finetune, preprocess, 0, params.seed,
        torch.device(device), show_progress=False, desc="rerank",
    )  # fmt: skip
    dtype = autocast_dtype(cfg.finetune.precision, torch.device(device))
    return proxy_score(model, calib, held, preprocess, device, dtype)["acc"]


def rerank_with_finetune(
    params: Params,
    teacher: torch.nn.Module,
    result: SearchResult,
    blocks: list,
    units: list,
    splits: dict[str, TensorSplit],
    preprocess: Preprocess,
    input_shape: tuple[int, ...],
    device: torch.device | str = "cpu",
) -> dict[str, float]:
    """Unit ratios of the best of the top-k episodes after a short fine-tune of each (on
    `device`)."""
    cfg = params.prune
    ranked = sorted(result.episodes, key=lambda e: -e["reward"])[: cfg.proxy.finetune_top_k]
    calib, held = proxy_data(params, splits, device)
    subset = short_finetune_subset(params, splits["train"])
    best, best_acc = ranked[0]["ratios"], -1.0
    for episode in ranked:
        ratios = unit_ratios_to_blocks(units, episode["ratios"])
        model = prune_blocks(teacher, blocks, ratios, input_shape, cfg.importance, cfg.round_to)
        acc = short_finetune_score(params, model, subset, calib, held, preprocess, device)
        if acc > best_acc:
            best, best_acc = episode["ratios"], acc
    return best
