"""The top-k study of proxy_brain4.py: does a score separate the best pruning candidates?

Over random candidates the proxy ranks well (Spearman 0.74 on 12), but a search only cares about
the top of its pool. A pool of candidates is scored by the proxy; its K best are scored again by
the prune stage's multi-fidelity re-rank (`short_finetune_score`: a short fine-tune, then the
proxy) and by a reference fine-tune on the validation split. Resumable: results["pool"] and
results["top"] keep every finished candidate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from rcskd.config import Params
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import Preprocess
from rcskd.metrics.complexity import count_flops, count_params
from rcskd.prune.apply import prune_blocks
from rcskd.prune.env import PruningEnv, unit_ratios_to_blocks
from rcskd.prune.lpb_rl import proxy_data, short_finetune_score, short_finetune_subset
from rcskd.prune.proxy import proxy_score

POOL_SEED = 1  # the pool's own draws (the 12-candidate study uses 0)


@dataclass
class TopStudy:
    """Everything one study needs; `reference(ratios, k)` fine-tunes a candidate and returns
    its validation scores ({"acc", ...})."""

    params: Params
    teacher: torch.nn.Module
    blocks: list
    units: list
    env: PruningEnv
    shape: tuple[int, ...]
    preprocess: Preprocess
    splits: dict[str, TensorSplit]
    reference: Callable[[dict[str, float], int], dict[str, float]]

    def candidate(self, ratios: dict[str, float]) -> torch.nn.Module:
        """A fresh pruned copy of the teacher."""
        return prune_blocks(self.teacher, self.blocks, ratios, self.shape)

    def run(self, results: dict[str, Any], args, save: Callable[[], None]) -> None:
        """Score the pool (args.pool) by the proxy, then its args.top best by both scores."""
        calib, held = proxy_data(self.params, self.splits)
        pool = results.setdefault("pool", {})
        rng = np.random.default_rng(POOL_SEED)
        for k in range(args.pool):
            actions = rng.uniform(0, 1, size=len(self.units))  # drawn even when done: same pool
            if str(k) in pool:
                continue
            self.env.reset()
            for a in actions:
                *_, info = self.env.step(np.array([a], np.float32))
            ratios = unit_ratios_to_blocks(self.units, info["ratios"])
            model = self.candidate(ratios)
            pool[str(k)] = {
                "ratios": ratios,
                "params": count_params(model),
                "flops": count_flops(model, self.shape),
                "proxy_acc": proxy_score(model, calib, held, self.preprocess)["acc"],
            }
            print(f"pool {k}: proxy {pool[str(k)]['proxy_acc']:.3f}")
            save()
        top = results.setdefault("top", {})
        subset = short_finetune_subset(self.params, self.splits["train"])
        for k in top_keys(pool, args.top):
            if k in top:
                continue
            ratios = pool[k]["ratios"]
            short = short_finetune_score(
                self.params, self.candidate(ratios), subset, calib, held, self.preprocess
            )
            ref = self.reference(ratios, int(k))["acc"]
            top[k] = {"short_finetune_acc": short, "reference_val_acc": ref}
            print(f"top {k}: short fine-tune {short:.3f}, reference {ref:.3f}")
            save()
        steps = self.params.prune.proxy.finetune_steps
        results["top_summary"] = summarise_top(results, args, steps)


def top_keys(pool: dict[str, dict], k: int) -> list[str]:
    """The k candidates of the pool with the highest proxy accuracy (ties: lower index)."""
    return sorted(pool, key=lambda key: (-pool[key]["proxy_acc"], int(key)))[:k]


def summarise_top(results: dict[str, Any], args, finetune_steps: int) -> dict[str, Any]:
    """Rank correlations among the top K and what each score's pick loses to the best."""
    pool, top = results["pool"], results["top"]
    keys = [k for k in top_keys(pool, args.top) if k in top]
    ref = [top[k]["reference_val_acc"] for k in keys]
    proxy = [pool[k]["proxy_acc"] for k in keys]
    short = [top[k]["short_finetune_acc"] for k in keys]

    def rho(score: list[float]) -> float | None:
        return float(spearmanr(score, ref).statistic) if len(keys) > 2 else None

    def pick_loss(score: list[float]) -> float:
        return max(ref) - ref[int(np.argmax(score))]

    pool_proxy = [p["proxy_acc"] for p in pool.values()]
    return {
        "pool": len(pool),
        "top": len(keys),
        "pool_proxy_range": [min(pool_proxy), max(pool_proxy)],
        "top_proxy_range": [min(proxy), max(proxy)],
        "spearman_proxy": rho(proxy),
        "spearman_short_finetune": rho(short),
        "reference_range": [min(ref), max(ref)],
        "proxy_pick_loss": pick_loss(proxy),
        "short_finetune_pick_loss": pick_loss(short),
        "finetune_steps": finetune_steps,
    }


def top_markdown(results: dict[str, Any]) -> list[str]:
    """The study's section of proxy.md."""
    s = results["top_summary"]
    pool, top = results["pool"], results["top"]

    def fmt(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.3f}"

    lines = [
        f"## Among the best: the top {s['top']} of {s['pool']} random candidates by proxy",
        "",
        f"Proxy accuracy over the pool {s['pool_proxy_range'][0]:.3f}-"
        f"{s['pool_proxy_range'][1]:.3f}, over the top {s['top']} "
        f"{s['top_proxy_range'][0]:.3f}-{s['top_proxy_range'][1]:.3f}. Reference: validation "
        "accuracy after the fine-tune above; short fine-tune: the prune stage's multi-fidelity "
        f"re-rank score ({s['finetune_steps']} steps of the fine-tune's optimizer, then the "
        "proxy).",
        "",
        f"- Spearman among the top {s['top']}, proxy vs reference: **{fmt(s['spearman_proxy'])}**",
        f"- Spearman among the top {s['top']}, short fine-tune vs reference: "
        f"**{fmt(s['spearman_short_finetune'])}**",
        f"- Reference accuracy of each score's pick below the best of the top {s['top']} "
        f"(range {s['reference_range'][0]:.3f}-{s['reference_range'][1]:.3f}): proxy "
        f"{s['proxy_pick_loss'] * 100:.1f} pts, short fine-tune "
        f"{s['short_finetune_pick_loss'] * 100:.1f} pts",
        "",
        "| pool candidate | params | MFLOPs | proxy acc | short fine-tune | reference val acc |",
        "|---|---|---|---|---|---|",
    ]
    for k in top_keys(pool, s["top"]):
        if k in top:
            p, t = pool[k], top[k]
            lines.append(
                f"| {k} | {p['params']:,} | {p['flops'] / 1e6:.1f} | {p['proxy_acc']:.3f} | "
                f"{t['short_finetune_acc']:.3f} | {t['reference_val_acc']:.3f} |"
            )
    return lines
