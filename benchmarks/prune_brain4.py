"""Benchmark: LPB-RL (DDPG) against uniform and random ratios on the brain4-64 teacher.

    python benchmarks/prune_brain4.py [--seeds 0 1] [--budget 0.5] [--episodes 40] [--force]

Each (method, seed) runs the prune stage's code path with `prune.search` set to the method:
search (same number of proxy evaluations for DDPG and random), prune, fine-tune identically
(`--finetune-epochs`, AdamW, same augmentation), then score on the test split. Writes
reports/bench/prune_brain4.json (+ .md) after every finished run; finished runs are skipped.
"""

from __future__ import annotations

import argparse

from common import (
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    load_results,
    mean_std,
    prepared_brain4,
    provenance,
    save_results,
)

from rcskd.config import EvaluateConfig, LatencyConfig
from rcskd.data.dataset import load_meta, load_splits
from rcskd.steps.evaluate import evaluate_model
from rcskd.steps.prune import run_prune

METHODS = ("ddpg", "random", "uniform")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--budget", type=float, default=0.5)
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--proxy-data", default="train", choices=["train", "val"],
        help="score candidates on held-out training images (default) or the validation split",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = RESULTS / f"prune_brain4{'' if args.budget == 0.5 else f'_b{args.budget}'}.json"
    results = {"runs": {}} if args.force else load_results(out)
    prepared = prepared_brain4(brain4_params(0))
    classes = load_meta(prepared)["classes"]
    test = load_splits(prepared)["test"]
    teacher = brain4_teacher(0)
    for seed in args.seeds:
        for method in args.methods:
            label = method if args.proxy_data == "train" else f"{method}-valproxy"
            key = f"{label}/{seed}"
            if key in results["runs"]:
                print(f"{key}: done, skipped")
                continue
            params = brain4_params(
                seed,
                prune={
                    "budget": args.budget,
                    "search": method,
                    "compare_baselines": False,
                    "proxy": {"data": args.proxy_data},
                    "agent": {"episodes": args.episodes, "warmup_episodes": args.warmup},
                    "finetune": {"epochs": args.finetune_epochs, "balanced_sampling": True},
                },
            )
            path = WORK / "brain4-64-seed0" / f"pruned_{label}_b{args.budget}_seed{seed}.pt"
            result = run_prune(params, prepared, teacher, path, resume_path=f"{path}.resume")
            report = result.summary
            evaluation, _ = evaluate_model(
                path, test, classes, EvaluateConfig(bootstrap=1000, gradcam_per_class=0,
                                                    latency=LatencyConfig(repeats=10)), seed,
            )  # fmt: skip
            results["runs"][key] = {
                "method": label,
                "proxy_data": args.proxy_data,
                "seed": seed,
                "test_acc": evaluation["acc"],
                "test_acc_ci95": evaluation["acc_ci95"],
                "test_balanced_acc": evaluation["balanced_acc"],
                "test_macro_f1": evaluation["macro_f1"],
                "proxy_score": report["proxy_score"],
                "finetune_val_acc": report["val_acc"],
                "params_ratio": report["achieved_params_ratio"],
                "flops_ratio": report["achieved_flops_ratio"],
                "params": report["params"],
                "search_seconds": report["search_wall_time_s"],
                "wall_seconds": report["wall_time_s"],
                "ratios": result.ratios,
                "search_history": result.search_history,
            }
            results["provenance"] = provenance(params, prepared, args.seeds)
            results["settings"] = {k: v for k, v in vars(args).items() if k != "methods"}
            summarise(results)
            save_results(out, results, markdown(results))
            print(f"{key}: test acc {evaluation['acc']:.4f}, proxy {report['proxy_score']:.3f}")


def summarise(results: dict) -> None:
    summary = {}
    for method in dict.fromkeys(r["method"] for r in results["runs"].values()):
        runs = [r for r in results["runs"].values() if r["method"] == method]
        if not runs:
            continue
        acc = mean_std([r["test_acc"] for r in runs])
        f1 = mean_std([r["test_macro_f1"] for r in runs])
        summary[method] = {
            "seeds": len(runs),
            "test_acc_mean": acc[0],
            "test_acc_std": acc[1],
            "test_macro_f1_mean": f1[0],
            "test_macro_f1_std": f1[1],
            "proxy_score_mean": mean_std([r["proxy_score"] for r in runs])[0],
            "params_ratio_mean": mean_std([r["params_ratio"] for r in runs])[0],
            "flops_ratio_mean": mean_std([r["flops_ratio"] for r in runs])[0],
            "search_seconds_mean": mean_std([r["search_seconds"] for r in runs])[0],
        }
    results["summary"] = summary


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [
        f"# LPB-RL vs uniform vs random ratios (brain4-64 ResNet-18 teacher, budget {s['budget']})",
        "",
        f"Split: {results['provenance']['split']}. Each method: {s['episodes']} proxy-scored "
        f"candidates (uniform: 1), then {s['finetune_epochs']} fine-tune epochs, identical for "
        "all; test accuracy mean +- std over seeds. Proxy acc: on training images held out of "
        "BN calibration (the teacher trained on them), or on the validation split for "
        "`-valproxy` rows.",
        "",
        "| method | seeds | test acc | macro-F1 | proxy acc | params kept | "
        "FLOPs kept | search time |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for method, m in results["summary"].items():
        lines.append(
            f"| {method} | {m['seeds']} | {m['test_acc_mean']:.4f} +- {m['test_acc_std']:.4f} | "
            f"{m['test_macro_f1_mean']:.4f} +- {m['test_macro_f1_std']:.4f} | "
            f"{m['proxy_score_mean']:.3f} | {m['params_ratio_mean']:.3f} | "
            f"{m['flops_ratio_mean']:.3f} | {m['search_seconds_mean'] / 60:.1f} min |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
