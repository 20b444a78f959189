"""Benchmark: the brain4-64 teacher (ResNet-18 from scratch, 64 px grey, 20 epochs).

    python benchmarks/teacher_brain4.py [--seeds 0 1] [--epochs 20] [--force]

Writes reports/bench/teacher_brain4.json (+ .md): per seed, test accuracy with a 95% bootstrap
interval, balanced accuracy, macro-F1, per-class sensitivity/specificity, ECE, params, FLOPs,
latency and wall time; the seed-0 checkpoint stays in .bench/ for the prune and distill
benchmarks. Resumable: finished seeds are skipped, an interrupted seed resumes from its last
epoch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench_common import (
    REPO,
    RESULTS,
    WORK,
    brain4_params,
    load_results,
    mean_std,
    prepared_brain4,
    provenance,
    save_results,
)

from rcskd.config import EvaluateConfig
from rcskd.data.dataset import load_meta, load_splits
from rcskd.io import write_bytes_atomic
from rcskd.steps.evaluate import evaluate_model
from rcskd.steps.teacher import train_teacher
from rcskd.tracking import git_commit
from rcskd.train import RunOptions

TEACHER = {
    "arch": "resnet18",
    "width": 1.0,
    "train": {
        "epochs": 20,
        "batch_size": 64,
        "optimizer": "sgd",
        "lr": 0.05,
        "weight_decay": 5e-4,
        "label_smoothing": 0.1,
        "balanced_sampling": True,  # notumor loses half its images to dedup
        "monitor": "balanced_acc",
    },
}


def teacher_path(seed: int) -> str:
    """Where the benchmark keeps the teacher of `seed` (reused by later benchmarks)."""
    return str(WORK / "brain4-64-seed0" / f"teacher_resnet18_seed{seed}.pt")


def markdown(results: dict) -> str:
    runs = results["runs"]
    lines = [
        "# brain4-64 teacher: ResNet-18 from scratch, 64 px grey",
        "",
        f"Split: {results['provenance']['split']}. Test set: Brain-4 `Testing/` (1,311 images).",
        "",
        "| seed | test acc (95% CI) | balanced acc | macro-F1 | ECE | epochs | train time |",
        "|---|---|---|---|---|---|---|",
    ]
    for seed, r in sorted(runs.items()):
        lo, hi = r["acc_ci95"]
        lines.append(
            f"| {seed} | {r['acc']:.4f} ({lo:.3f}-{hi:.3f}) | {r['balanced_acc']:.4f} | "
            f"{r['macro_f1']:.4f} | {r['ece']:.3f} | {r['epochs_run']} | "
            f"{r['train_seconds'] / 60:.1f} min |"
        )
    if len(runs) > 1:
        m, s = mean_std([r["acc"] for r in runs.values()])
        lines.append(f"| mean +- std | {m:.4f} +- {s:.4f} | | | | | |")
    for seed, rebuilds in sorted(results.get("rebuilds", {}).items()):
        for r in rebuilds:
            lo, hi = r["acc_ci95"]
            lines.append(
                f"| {seed}, rebuilt {r['date']} at {r['git_commit'][:7]} | {r['acc']:.4f} "
                f"({lo:.3f}-{hi:.3f}) | {r['balanced_acc']:.4f} | {r['macro_f1']:.4f} | "
                f"{r['ece']:.3f} | {r['epochs_run']} | {r['train_seconds'] / 60:.1f} min |"
            )
    first = next(iter(runs.values()))
    lines += ["", "Per-class sensitivity / specificity (first seed):", ""]
    lines += ["| class | sensitivity | specificity |", "|---|---|---|"]
    for name, pc in first["per_class"].items():
        lines.append(f"| {name} | {pc['sensitivity']:.3f} | {pc['specificity']:.3f} |")
    lines += [
        "",
        f"Params {first['params']:,}, FLOPs {first['flops'] / 1e6:.0f} M per 64x64 image, "
        f"CPU latency batch 1 {first['latency_ms']['b1']:.1f} ms, batch 32 "
        f"{first['latency_ms']['b32']:.1f} ms ({first['latency_threads']} threads).",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=TEACHER["train"]["epochs"])
    parser.add_argument("--force", action="store_true", help="recompute finished seeds")
    args = parser.parse_args()
    out = RESULTS / "teacher_brain4.json"
    results = load_results(out)
    data_params = brain4_params(0)
    prepared = prepared_brain4(data_params)  # one split for all seeds (split seed 0)
    classes = load_meta(prepared)["classes"]
    test = load_splits(prepared)["test"]
    for seed in args.seeds:
        # a result without its checkpoint (another machine's run) is trained again
        if str(seed) in results["runs"] and Path(teacher_path(seed)).is_file() and not args.force:
            print(f"seed {seed}: done, skipped")
            continue
        # the checkpoint is missing (a fresh machine): the recorded run stays the seed's result,
        # and the rebuilt teacher, which later benchmarks now use, is logged beside it
        rebuild = str(seed) in results["runs"] and not args.force
        teacher = dict(TEACHER, train=dict(TEACHER["train"], epochs=args.epochs))
        params = brain4_params(seed, teacher=teacher)
        start = time.perf_counter()
        path = teacher_path(seed)
        result = train_teacher(params, prepared, path, RunOptions(path + ".resume"))
        report = {**result.summary, "history": result.history}
        cfg = EvaluateConfig(bootstrap=2000)
        evaluation, figures = evaluate_model(path, test, classes, cfg, seed)
        if not rebuild:
            write_bytes_atomic(
                RESULTS / f"teacher_brain4_seed{seed}_confusion.png",
                figures[f"teacher_resnet18_seed{seed}_confusion.png"],
            )
        evaluation.pop("calibration")
        entry = {
            **evaluation,
            "val_acc": report["val_acc"],
            "best_epoch": report["best_epoch"],
            "epochs_run": report["epochs_run"],
            "train_seconds": report["train_seconds"],
            "wall_seconds": round(time.perf_counter() - start, 1),
            "history": report["history"],
        }
        if rebuild:
            entry.update(date=time.strftime("%Y-%m-%d"), git_commit=git_commit(REPO))
            results.setdefault("rebuilds", {}).setdefault(str(seed), []).append(entry)
        else:
            results["runs"][str(seed)] = entry
            results["provenance"] = provenance(params, prepared, sorted(map(int, results["runs"])))
        save_results(out, results, markdown(results))
        print(f"seed {seed}: test acc {evaluation['acc']:.4f}")


if __name__ == "__main__":
    main()
