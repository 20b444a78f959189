"""Benchmark: RC-SKD (TKD-CA then DKD-SG) against every distillation baseline on brain4-64.

    python benchmarks/distill_brain4.py [--seeds 0 1 2] [--epochs 2] [--force]

All methods start from the same pruned student (the brain4-64 ResNet-18 teacher pruned by
LPB-RL/DDPG at budget 0.5, from prune_brain4.py) and train with the same settings
(`distill.train`: epochs, AdamW, augmentation, balanced sampling) and seed; only the loss differs.
RC-SKD's DKD-SG step starts from that seed's TKD-CA student, as in the pipeline, so it trains
twice as many epochs in total; `rc_skd_joint` (both losses at once, one run) is the
equal-epoch variant. Results go to reports/bench/distill_brain4.json (+ .md) after every run;
finished (method, seed) runs are skipped, and an interrupted run resumes from its last epoch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import (
    REPO,
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

from rcskd.config import load_params
from rcskd.data.dataset import load_splits
from rcskd.metrics.classification import summary_scores
from rcskd.metrics.complexity import count_flops, count_params, measure_latency
from rcskd.models import load_checkpoint
from rcskd.steps.distill import run_distill
from rcskd.train import RunOptions, predict_logits

# The baselines are params.yaml's; rc_skd = TKD-CA then DKD-SG; rc_skd_joint = both at once.
BASELINES = tuple(load_params(REPO / "params.yaml").distill.baselines)
METHODS = (*BASELINES, "tkd_ca", "rc_skd", "rc_skd_joint")


def settings_for(method: str, seed: int, epochs: int):
    """(params, rcskd method name) of one benchmark run (methods as in params.yaml)."""
    train = {"epochs": epochs, "balanced_sampling": True, "lr": 5e-4}
    params = brain4_params(seed, distill={"train": train})
    return params, {"rc_skd": "dkd_sg"}.get(method, method)


def test_scores(path: Path, test) -> dict[str, float]:
    """Accuracy, balanced accuracy and macro-F1 of a checkpoint on the test split."""
    checkpoint = load_checkpoint(path)
    logits = predict_logits(checkpoint.model, test.images, checkpoint.require_inputs().preprocess)
    scores = summary_scores(test.labels.numpy(), logits.argmax(1).numpy(), logits.shape[1])
    return {f"test_{k}": v for k, v in scores.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument(
        "--pruned", default=str(WORK / "brain4-64-seed0" / "pruned_ddpg_b0.5_seed0.pt")
    )
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    out = RESULTS / "distill_brain4.json"
    results = {"runs": {}} if args.force else load_results(out)
    prepared = prepared_brain4(brain4_params(0))  # the data split is fixed (seed 0)
    teacher = brain4_teacher(0)
    work = WORK / "brain4-64-seed0" / "distill"
    work.mkdir(parents=True, exist_ok=True)
    if not Path(args.pruned).exists():
        sys.exit(f"{args.pruned} missing: run `python benchmarks/prune_brain4.py --seeds 0` first")
    reference(results, teacher, args.pruned, prepared)
    for seed in args.seeds:
        for method in args.methods:
            key = f"{method}/{seed}"
            if key in results["runs"]:
                print(f"{key}: done, skipped")
                continue
            params, name = settings_for(method, seed, args.epochs)
            start = work / f"tkd_ca_seed{seed}.pt" if method == "rc_skd" else args.pruned
            if method == "rc_skd" and not start.exists():
                print(f"{key}: needs tkd_ca/{seed} first, skipped")
                continue
            path = work / f"{method}_seed{seed}.pt"
            result = run_distill(
                params, name, prepared, teacher, start, path, RunOptions(f"{path}.resume")
            )
            report = {**result.summary, **test_scores(path, load_splits(prepared)["test"])}
            results["runs"][key] = {
                "method": method,
                "seed": seed,
                **{k: report[k] for k in ("test_acc", "test_balanced_acc", "test_macro_f1")},
                "val_acc": report["val_acc"],
                "terms": report["terms"],
                "epochs": args.epochs * (2 if method == "rc_skd" else 1),
                "train_seconds": report["train_seconds"],
                "history": result.history,
            }
            results["provenance"] = provenance(params, prepared, args.seeds)
            results["settings"] = {"epochs": args.epochs, "pruned": args.pruned}
            summarise(results)
            save_results(out, results, markdown(results))
            print(f"{key}: test acc {report['test_acc']:.4f}")
    if "settings" in results:  # also when everything was done: a re-measured reference is kept
        summarise(results)
        save_results(out, results, markdown(results))


def reference(results: dict, teacher: str, pruned: str, prepared: Path) -> None:
    """Test accuracy, size, FLOPs and CPU latency of the teacher and the starting student."""
    if "models" in results:
        return
    shape = (1, 64, 64)
    test = load_splits(prepared)["test"]
    models = {}
    for role, path in (("teacher", teacher), ("student", pruned)):
        checkpoint = load_checkpoint(path)
        model = checkpoint.model
        logits = predict_logits(model, test.images, checkpoint.require_inputs().preprocess)
        acc = float((logits.argmax(1) == test.labels).float().mean())
        latency = measure_latency(model, shape, [1, 32], threads=2, repeats=20, warmup=3)
        models[role] = {
            "test_acc": acc,
            "params": count_params(model),
            "flops": count_flops(model, shape),
            "latency_ms": {f"b{b}": round(v["median_ms"], 3) for b, v in latency.items()},
        }
    results["models"] = models


def summarise(results: dict) -> None:
    summary = {}
    for method in METHODS:
        runs = [r for r in results["runs"].values() if r["method"] == method]
        if not runs:
            continue
        row = {"seeds": len(runs), "epochs": runs[0]["epochs"]}
        for metric in ("test_acc", "test_balanced_acc", "test_macro_f1"):
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std([r[metric] for r in runs])
        row["train_minutes_mean"] = mean_std([r["train_seconds"] for r in runs])[0] / 60
        summary[method] = row
    results["summary"] = summary


def markdown(results: dict) -> str:
    m, s = results["models"], results["settings"]
    t, st = m["teacher"], m["student"]
    lines = [
        "# RC-SKD vs distillation baselines (brain4-64, ResNet-18 teacher, budget 0.5)",
        "",
        f"Split: {results['provenance']['split']}. Every student starts from the same "
        f"LPB-RL-pruned ResNet-18 ({st['params'] / 1e6:.2f} M params, "
        f"{st['params'] / t['params']:.2f}x the teacher; {st['flops'] / 1e6:.0f} M FLOPs, "
        f"{st['flops'] / t['flops']:.2f}x) and trains {s['epochs']} epochs per stage with "
        "AdamW lr 5e-4, cosine, balanced sampling, the same augmentation and seed; "
        "test metrics mean +- std over seeds. CPU latency (2 threads, median ms): teacher "
        f"{t['latency_ms']['b1']} (b1) / {t['latency_ms']['b32']} (b32), student "
        f"{st['latency_ms']['b1']} / {st['latency_ms']['b32']}. Test accuracy of the teacher "
        f"{t['test_acc']:.4f}; of the pruned student before distillation {st['test_acc']:.4f}.",
        "",
        "| method | seeds | epochs | test acc | balanced acc | macro-F1 | train min/run |",
        "|---|---|---|---|---|---|---|",
    ]
    for method, r in results["summary"].items():
        lines.append(
            f"| {method} | {r['seeds']} | {r['epochs']} | "
            f"{r['test_acc_mean']:.4f} +- {r['test_acc_std']:.4f} | "
            f"{r['test_balanced_acc_mean']:.4f} +- {r['test_balanced_acc_std']:.4f} | "
            f"{r['test_macro_f1_mean']:.4f} +- {r['test_macro_f1_std']:.4f} | "
            f"{r['train_minutes_mean']:.1f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
