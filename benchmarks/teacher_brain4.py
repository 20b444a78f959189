"""Benchmark: brain4-64 teacher recipes (ResNet-18 from scratch, 64 px grey).

    python benchmarks/teacher_brain4.py --recipe sgd20+adamw16 [--seeds 0] [--force]
    python benchmarks/teacher_brain4.py --list      # the recipes and which one is chosen

Each recipe is teacher settings of params.yaml (`teacher.train` and the optional second phase
`teacher.refine`), trained with the project's own teacher step in the engine's precision
(`auto`: bf16 on CPUs with native bf16). Writes reports/bench/teacher_brain4.json (+ .md): per
recipe and seed, test accuracy with a 95% bootstrap interval, balanced accuracy, macro-F1,
per-class sensitivity/specificity, ECE, params, FLOPs, latency, wall time, the dtype, and the
curve (validation and test accuracy after every epoch; the test column is measured for the
record and never chooses anything). The chosen recipe is the one with the highest validation
accuracy; later benchmarks and `make brain4` use it (`chosen_recipe`, `brain4_teacher()`).
Resumable: finished (recipe, seed) pairs are skipped, an interrupted one resumes.
The section `runs` keeps the earlier fp32 runs of the first recipe as they were recorded.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from bench_common import (
    FIRST_RECIPE,
    REPO,
    RESULTS,
    brain4_params,
    load_results,
    mean_std,
    prepared_brain4,
    provenance,
    save_results,
    teacher_file,
)

from rcskd.config import EvaluateConfig
from rcskd.data.dataset import load_meta, load_splits
from rcskd.data.transforms import fit_preprocess
from rcskd.steps.evaluate import evaluate_model
from rcskd.steps.teacher import train_teacher
from rcskd.tracking import git_commit
from rcskd.train import RunOptions, evaluate
from rcskd.train.runtime import autocast_dtype

SGD20 = {
    "epochs": 20,
    "batch_size": 64,
    "optimizer": "sgd",
    "lr": 0.05,
    "weight_decay": 5e-4,
    "label_smoothing": 0.1,
    "balanced_sampling": True,  # notumor loses half its images to dedup
    "monitor": "balanced_acc",
}
# the second phase that lifted a pruned copy past the teacher (AdamW, a fresh cosine cycle)
ADAMW16 = {
    "epochs": 16,
    "batch_size": 64,
    "optimizer": "adamw",
    "lr": 5e-4,
    "weight_decay": 0.05,
    "warmup_epochs": 0.0,
    "balanced_sampling": True,
    "monitor": "balanced_acc",
}
MIX = {"mode": "both", "alpha": 1.0, "prob": 1.0}
RECIPES: dict[str, dict] = {
    "sgd20": {"arch": "resnet18", "width": 1.0, "train": SGD20},
    "sgd20+adamw16": {"arch": "resnet18", "width": 1.0, "train": SGD20, "refine": ADAMW16},
    "sgd40-mix": {"arch": "resnet18", "width": 1.0, "train": {**SGD20, "epochs": 40, "mix": MIX}},
    "sgd20+adamw32": {
        "arch": "resnet18", "width": 1.0, "train": SGD20, "refine": {**ADAMW16, "epochs": 32},
    },
    "sgd20+adamw16-mix": {
        "arch": "resnet18", "width": 1.0, "train": SGD20, "refine": {**ADAMW16, "mix": MIX},
    },
}  # fmt: skip
FIRST = FIRST_RECIPE  # the recipe of the earlier runs (`runs`)


def teacher_path(seed: int, recipe: str = FIRST) -> str:
    """Where the benchmark keeps the teacher of `recipe` and `seed` (reused by later
    benchmarks)."""
    return str(teacher_file(recipe, seed))


def chosen_recipe(results: dict) -> str:
    """The recipe with the highest mean validation accuracy (the first recipe until another
    has run)."""
    recipes = results.get("recipes", {})
    if not recipes:
        return FIRST

    def val(name: str) -> float:
        return mean_std([r["val_acc"] for r in recipes[name]["seeds"].values()])[0]

    return max(recipes, key=val)


def markdown(results: dict) -> str:
    lines = [
        "# brain4-64 teacher recipes: ResNet-18 from scratch, 64 px grey",
        "",
        f"Split: {results['provenance']['split']}. Test set: Brain-4 `Testing/` (1,311 images).",
        "Each recipe trains with the project's teacher step; the chosen recipe has the highest",
        "validation accuracy (test never chooses). Test accuracy of the saved model in fp32 (as",
        "deployed); `dtype` is what training ran in.",
        "",
        "| recipe | seed | dtype | epochs | val acc | test acc (95% CI) | balanced acc | "
        "macro-F1 | ECE | train time |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, recipe in results.get("recipes", {}).items():
        for seed, r in sorted(recipe["seeds"].items()):
            lo, hi = r["acc_ci95"]
            lines.append(
                f"| {name} | {seed} | {r['dtype']} | {r['epochs_run']} | {r['val_acc']:.4f} | "
                f"{r['acc']:.4f} ({lo:.3f}-{hi:.3f}) | {r['balanced_acc']:.4f} | "
                f"{r['macro_f1']:.4f} | {r['ece']:.3f} | {r['train_seconds'] / 60:.1f} min |"
            )
    for seed, r in sorted(results.get("runs", {}).items()):
        lo, hi = r["acc_ci95"]
        lines.append(
            f"| {FIRST} (earlier run) | {seed} | fp32 | {r['epochs_run']} | {r['val_acc']:.4f} | "
            f"{r['acc']:.4f} ({lo:.3f}-{hi:.3f}) | {r['balanced_acc']:.4f} | "
            f"{r['macro_f1']:.4f} | {r['ece']:.3f} | {r['train_seconds'] / 60:.1f} min |"
        )
    chosen = chosen_recipe(results)
    lines += ["", f"Chosen on validation: **{chosen}**.", ""]
    recipes = results.get("recipes", {})
    if chosen in recipes:
        first = next(iter(recipes[chosen]["seeds"].values()))
        lines += ["Per-class sensitivity / specificity (chosen recipe, first seed):", ""]
        lines += ["| class | sensitivity | specificity |", "|---|---|---|"]
        for name, pc in first["per_class"].items():
            lines.append(f"| {name} | {pc['sensitivity']:.3f} | {pc['specificity']:.3f} |")
        lines += [
            "",
            f"Params {first['params']:,}, FLOPs {first['flops'] / 1e6:.0f} M per 64x64 image, "
            f"CPU latency batch 1 {first['latency_ms']['b1']:.1f} ms, batch 32 "
            f"{first['latency_ms']['b32']:.1f} ms ({first['latency_threads']} threads).",
            "",
        ]
    lines += ["## Curves (first seed): validation / test accuracy after each epoch", ""]
    for name, recipe in recipes.items():
        first = next(iter(recipe["seeds"].values()))
        cells = [f"{c['epoch']}: {c['val_acc']:.3f}/{c['test_acc']:.3f}" for c in first["curve"]]
        lines += [f"- **{name}**: " + ", ".join(cells)]
    return "\n".join(lines) + "\n"


class TestCurve:
    """Test accuracy after every epoch, for the record (observes the model; chooses nothing).
    Scored in the training dtype, with the preprocessing the teacher step fits on train."""

    def __init__(self, test, preprocess, dtype) -> None:
        self.test, self.preprocess, self.dtype, self.rows = test, preprocess, dtype, []

    def __call__(self, model, row: dict) -> None:
        scores = evaluate(model, self.test, self.preprocess, 256, "cpu", self.dtype)
        self.rows.append({"epoch": len(self.rows) + 1, "val_acc": row["val_acc"],
                          "test_acc": scores["acc"]})  # fmt: skip
        model.train()


def run_recipe(name: str, seed: int, results: dict, force: bool) -> None:
    """Train, evaluate and record one (recipe, seed)."""
    recipes = results.setdefault("recipes", {})
    entry = recipes.setdefault(name, {"settings": RECIPES[name], "seeds": {}})
    path = teacher_path(seed, name)
    if str(seed) in entry["seeds"] and Path(path).is_file() and not force:
        print(f"{name} seed {seed}: done, skipped")
        return
    params = brain4_params(seed, teacher=RECIPES[name])
    prepared = prepared_brain4(brain4_params(0))  # one split for all seeds (split seed 0)
    classes = load_meta(prepared)["classes"]
    test = load_splits(prepared)["test"]
    dtype = autocast_dtype(params.teacher.train.precision, torch.device("cpu"))
    curve = TestCurve(test, fit_preprocess(load_splits(prepared)["train"].images), dtype)
    start = time.perf_counter()
    result = train_teacher(params, prepared, path, RunOptions(path + ".resume", observe=curve))
    evaluation, _ = evaluate_model(path, test, classes, EvaluateConfig(bootstrap=2000), seed)
    evaluation.pop("calibration")
    entry["seeds"][str(seed)] = {
        **evaluation,
        "dtype": result.summary["precision"],
        "channels_last": result.summary["channels_last"],
        "val_acc": result.summary["val_acc"],
        "best_epoch": result.summary["best_epoch"],
        "epochs_run": result.summary["epochs_run"],
        "train_seconds": result.summary["train_seconds"],
        "wall_seconds": round(time.perf_counter() - start, 1),
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(REPO),
        "date": time.strftime("%Y-%m-%d"),
        "curve": curve.rows if len(curve.rows) == len(result.history) else [
            {"epoch": r["epoch"], "val_acc": r["val_acc"], "test_acc": float("nan")}
            for r in result.history
        ],
    }  # fmt: skip
    results["provenance"] = provenance(params, prepared, [int(s) for s in entry["seeds"]])
    results["chosen_recipe"] = chosen_recipe(results)
    save_results(OUT, results, markdown(results))
    print(f"{name} seed {seed}: val {result.summary['val_acc']:.4f}, test {evaluation['acc']:.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", choices=list(RECIPES), nargs="+", default=[FIRST])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--force", action="store_true", help="recompute finished runs")
    parser.add_argument("--list", action="store_true", help="print the recipes and the choice")
    args = parser.parse_args()
    results = load_results(OUT)
    if args.list:
        for name in RECIPES:
            done = sorted(results.get("recipes", {}).get(name, {}).get("seeds", {}))
            print(f"{name}: seeds done {done}")
        print(f"chosen: {chosen_recipe(results)}")
        return
    for name in args.recipe:
        for seed in args.seeds:
            run_recipe(name, seed, results, args.force)


OUT = RESULTS / "teacher_brain4.json"

if __name__ == "__main__":
    main()
