"""Benchmark: does the cheap proxy rank pruning candidates like a short fine-tune does?

    python benchmarks/proxy_brain4.py [--candidates 12] [--finetune-epochs 1] [--force]
    python benchmarks/proxy_brain4.py --pool 60 --top 10     # the top-k study (issue 14)

On the brain4-64 teacher at budget 0.5: random candidates (random-search episodes, so every one
meets the budget) are scored by the proxy (adaptive BN on 256 training images, accuracy on 512
others) and, separately, fine-tuned for a fixed short schedule and scored on the validation
split. Reports Spearman's rank correlation, the proxy's cost per candidate and the cost of one
training epoch. Writes reports/bench/proxy.json (+ .md); finished candidates are kept.

`--pool N --top K` asks the harder question, among the good candidates: a pool of N random
candidates (as many as one search evaluates) is scored by the proxy, and its K best are each
scored by the multi-fidelity re-rank's short fine-tune (`prune.proxy.finetune_steps` steps, then
the proxy; the prune stage's own code) and by the reference fine-tune. Reports Spearman's rank
correlation of the proxy and of the short fine-tune with the reference among those K, and the
reference accuracy each one's pick loses to the best of the K.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_common import (
    RESULTS,
    brain4_params,
    brain4_teacher,
    load_results,
    prepared_brain4,
    provenance,
    save_results,
)
from scipy.stats import spearmanr
from top_study import TopStudy, top_markdown

from rcskd.config import TrainConfig
from rcskd.data.dataset import load_meta, load_splits
from rcskd.metrics.complexity import count_params
from rcskd.models import load_checkpoint
from rcskd.prune.apply import prune_blocks
from rcskd.prune.blocks import find_blocks
from rcskd.prune.env import PruningEnv, make_units, unit_ratios_to_blocks
from rcskd.prune.proxy import proxy_score, proxy_subsets
from rcskd.train import CrossEntropy, evaluate, fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--candidates", type=int, default=12)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--pool", type=int, default=0, help="> 0: run the top-k study")
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = RESULTS / "proxy.json"
    results = {"runs": {}} if args.force else load_results(out)
    params = brain4_params(0, prune={"budget": args.budget})
    prepared = prepared_brain4(brain4_params(0))
    splits = load_splits(prepared)
    meta = load_meta(prepared)
    checkpoint = load_checkpoint(brain4_teacher(0))
    teacher = checkpoint.model
    pre = checkpoint.require_inputs().preprocess
    shape = (meta["channels"], meta["image_size"], meta["image_size"])
    blocks = find_blocks(teacher, shape)
    units = make_units(blocks, "block")
    calib, held = proxy_subsets(splits["train"], 256, 512, seed=0)
    env = PruningEnv(units, count_params(teacher), args.budget, "params", 0.8, lambda r: 0.0)
    finetune = TrainConfig(epochs=args.finetune_epochs, lr=5e-4, warmup_epochs=0.0)
    if args.pool:

        def reference(ratios: dict[str, float], k: int) -> dict[str, float]:
            tuned = prune_blocks(teacher, blocks, ratios, shape)
            fit(tuned, CrossEntropy(), splits["train"], splits["val"], finetune, pre, seed=k,
                show_progress=False)  # fmt: skip
            return evaluate(tuned, splits["val"], pre)

        study = TopStudy(params, teacher, blocks, units, env, shape, pre, splits, reference)
        study.run(results, args, lambda: save_results(out, results, markdown(results)))
        summarise(results, args, params, prepared)
        save_results(out, results, markdown(results))
        return
    rng = np.random.default_rng(0)
    for k in range(args.candidates):
        actions = rng.uniform(0, 1, size=len(units))  # drawn even when skipped: same candidates
        if str(k) in results["runs"]:
            continue
        env.reset()
        for a in actions:
            *_, info = env.step(np.array([a], np.float32))
        ratios = unit_ratios_to_blocks(units, info["ratios"])
        t0 = time.perf_counter()
        candidate = prune_blocks(teacher, blocks, ratios, shape)
        proxy = proxy_score(candidate, calib, held, pre)
        proxy_seconds = time.perf_counter() - t0
        tuned = prune_blocks(teacher, blocks, ratios, shape)
        t0 = time.perf_counter()
        fit(tuned, CrossEntropy(), splits["train"], splits["val"], finetune, pre, seed=k,
            show_progress=False)  # fmt: skip
        epoch_seconds = (time.perf_counter() - t0) / args.finetune_epochs
        val = evaluate(tuned, splits["val"], pre)
        results["runs"][str(k)] = {
            "ratios": ratios,
            "params": count_params(candidate),
            "proxy_acc": proxy["acc"],
            "proxy_loss": proxy["loss"],
            "proxy_seconds": round(proxy_seconds, 2),
            "finetuned_val_acc": val["acc"],
            "finetuned_val_loss": val["loss"],
            "epoch_seconds": round(epoch_seconds, 1),
        }
        print(f"candidate {k}: proxy {proxy['acc']:.3f}, fine-tuned val {val['acc']:.3f}")
        summarise(results, args, params, prepared)
        save_results(out, results, markdown(results))


def summarise(results: dict, args, params, prepared) -> None:
    runs = list(results["runs"].values())
    proxy = [r["proxy_acc"] for r in runs]
    loss = [-r["proxy_loss"] for r in runs]
    tuned = [r["finetuned_val_acc"] for r in runs]
    summary = {
        "candidates": len(runs),
        "budget": args.budget,
        "finetune_epochs": args.finetune_epochs,
        "spearman_proxy_acc": float(spearmanr(proxy, tuned).statistic) if len(runs) > 2 else None,
        "spearman_proxy_neg_loss": float(spearmanr(loss, tuned).statistic)
        if len(runs) > 2
        else None,
        "proxy_seconds_median": float(np.median([r["proxy_seconds"] for r in runs])),
        "epoch_seconds_median": float(np.median([r["epoch_seconds"] for r in runs])),
    }
    summary["proxy_cost_in_epochs"] = (
        summary["proxy_seconds_median"] / summary["epoch_seconds_median"]
    )
    results["summary"] = summary
    results["provenance"] = provenance(params, prepared, [0])
    results["provenance"]["torch_threads"] = torch.get_num_threads()


def markdown(results: dict) -> str:
    s = results["summary"]
    lines = [
        "# Proxy vs short fine-tune (brain4-64 teacher, budget "
        f"{s['budget']}, {s['candidates']} random candidates)",
        "",
        f"Split: {results['provenance']['split']}. Proxy: adaptive BN on 256 training images, "
        "accuracy on 512 other training images. Reference: accuracy on the validation split after "
        f"{s['finetune_epochs']} fine-tune epoch(s).",
        "",
        f"- Spearman rank correlation, proxy accuracy vs fine-tuned accuracy: "
        f"**{s['spearman_proxy_acc']:.3f}**"
        if s["spearman_proxy_acc"] is not None
        else "- (too few)",
        f"- Spearman, proxy -loss vs fine-tuned accuracy: {s['spearman_proxy_neg_loss']:.3f}"
        if s["spearman_proxy_neg_loss"] is not None
        else "",
        f"- Proxy cost per candidate: {s['proxy_seconds_median']:.1f} s (median) = "
        f"{s['proxy_cost_in_epochs']:.3f} of one training epoch "
        f"({s['epoch_seconds_median']:.0f} s)",
        "",
        "| candidate | params | proxy acc | proxy loss | fine-tuned val acc |",
        "|---|---|---|---|---|",
    ]
    for k, r in sorted(results["runs"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {k} | {r['params']:,} | {r['proxy_acc']:.3f} | {r['proxy_loss']:.3f} | "
            f"{r['finetuned_val_acc']:.3f} |"
        )
    if "top_summary" in results:
        lines += ["", *top_markdown(results)]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
