"""Benchmark: RC-SKD against every distillation baseline, fairly (brain4-64 protocol).

    python benchmarks/distill_brain4.py --select              # choose weights on validation
    python benchmarks/distill_brain4.py [--budgets 0.5 0.2] [--seeds 0 1 2 3 4] [--epochs 4]

Every method starts from the same pruned student of each budget (the DDPG candidate of
`prune_brain4.py`, search seed 0), is distilled from the same protocol teacher (ResNet-18 width
1.0) and trains the same total number of epochs with the same optimizer, augmentation and seed
set: RC-SKD's two stages (TKD-CA, then DKD-SG) share the budget half and half, the joint variant
and every baseline get it whole. Ablations: TKD-CA effective vs reference, DKD-SG alone, joint.
`--select` first runs a small documented grid (TKD-CA weight x kappa x taps, DKD-SG weight) at
budget 0.5, seed 0, and keeps the best on the validation split; the test split is only scored.
Resumable: every finished (budget, method, seed) is kept in reports/bench/distill_brain4.json,
with per-image test correctness for the paired bootstrap (RC-SKD minus each other method).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

from bench_common import (
    REPO,
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    correct_string,
    correctness,
    load_results,
    origin_of,
    paired_cell,
    prepared_brain4,
    provenance,
    save_results,
    summarise_by_budget,
    test_score,
)
from prune_brain4 import OUT as PRUNE_OUT
from prune_brain4 import candidate_path, prune_candidate

from rcskd.config import load_params
from rcskd.data.dataset import load_splits
from rcskd.steps.distill import run_distill
from rcskd.train import RunOptions

OUT = RESULTS / "distill_brain4.json"
BASELINES = {m: load_params(REPO / "params.yaml").distill.methods[m]
             for m in load_params(REPO / "params.yaml").distill.baselines}  # fmt: skip
# The validation grid of --select (budget 0.5, seed 0).
TKD_GRID = {"weight": [1.0, 3.0, 10.0], "kappa": [0.5, 1.0, 2.0],
            "taps": [{"stage3": 1.0}, {"stage3": 1.0, "stage4": 1.0}]}  # fmt: skip
DKD_GRID = {"weight": [1.0, 5.0, 10.0]}


def plans(tkd: dict[str, Any], dkd: dict[str, Any]) -> dict[str, list[tuple[str, dict, float]]]:
    """Benchmark method -> its stages: (rcskd method name, its terms, share of the epochs)."""
    reference = {**tkd, "variant": "reference"}
    out = {name: [(name, terms, 1.0)] for name, terms in BASELINES.items()}
    out.update({
        "tkd_ca": [("tkd_ca", {"tkd_ca": tkd}, 1.0)],
        "tkd_ca_reference": [("tkd_ca", {"tkd_ca": reference}, 1.0)],
        "dkd_sg": [("dkd_sg", {"dkd_sg": dkd}, 1.0)],
        "rc_skd": [("tkd_ca", {"tkd_ca": tkd}, 0.5), ("dkd_sg", {"dkd_sg": dkd}, 0.5)],
        "rc_skd_joint": [("rc_skd_joint", {"tkd_ca": tkd, "dkd_sg": dkd}, 1.0)],
    })  # fmt: skip
    return out


def train(method: str, stages, budget: float, seed: int, epochs: int, start: Path, prepared,
          teacher: Path, tag: str) -> Path:  # fmt: skip
    """Run a method's stages from `start`; return the final checkpoint."""
    path = start
    for k, (name, terms, share) in enumerate(stages):
        stage_epochs = max(1, round(epochs * share))
        params = brain4_params(
            seed,
            distill={
                "train": {"epochs": stage_epochs, "balanced_sampling": True, "lr": 5e-4},
                "methods": {name: terms},
            },
        )
        out = WORK / "brain4-64-seed0" / "distill" / f"{tag}_{method}_{k}_b{budget}_s{seed}.pt"
        out.parent.mkdir(parents=True, exist_ok=True)
        run_distill(params, name, prepared, teacher, path, out, RunOptions(f"{out}.resume"))
        path = out
    return path


def pruned_start(budget: float, prepared: Path, teacher: Path, test) -> Path:
    """The DDPG candidate (search seed 0) of prune_brain4.py at `budget`; on a machine that lacks
    it, rebuilt with that benchmark's recorded settings and checked against its recorded test
    predictions, so every method here starts from the student that benchmark measured."""
    path = candidate_path("ddpg", budget, 0)
    if path.is_file():
        return path
    recorded = load_results(PRUNE_OUT)
    run = next((r for r in recorded.get("runs", [])
                if (r["budget"], r["method"], r["seed"]) == (budget, "ddpg", 0)), None)  # fmt: skip
    if run is None:
        raise SystemExit(f"{path} missing: run `python benchmarks/prune_brain4.py` first")
    print(f"rebuilding the pruned start {path.name} with {PRUNE_OUT.name}'s settings")
    prune_candidate("ddpg", budget, 0, recorded["settings"], prepared, teacher)
    rebuilt = correct_string(correctness(path, test))
    same = sum(a == b for a, b in zip(rebuilt, run["test_correct"], strict=True))
    print(f"rebuilt start agrees with the recorded one on {same}/{len(rebuilt)} test images")
    return path


def select(results: dict, epochs: int, prepared, teacher: Path, start: Path) -> None:
    """Pick TKD-CA's and DKD-SG's settings on the validation split (budget 0.5, seed 0)."""
    val = load_splits(prepared)["val"]
    scores = results.setdefault("selection_runs", {})
    chosen = {"on": "validation split, budget 0.5, seed 0"}
    for loss, grid in (("tkd_ca", TKD_GRID), ("dkd_sg", DKD_GRID)):
        tried = []
        for values in itertools.product(*grid.values()):
            settings = dict(zip(grid, values, strict=True))
            key = f"{loss} {settings}"
            if key not in scores:
                stages = [(loss, {loss: settings}, 1.0)]
                path = train(loss, stages, 0.5, 0, epochs, start, prepared, teacher, "select")
                scores[key] = {
                    "settings": settings,
                    "val_acc": float(correctness(path, val).mean()),
                }
                save_results(OUT, results)
            tried.append(scores[key])
        chosen[loss] = max(tried, key=lambda v: v["val_acc"])["settings"]
    results["selection"] = chosen
    save_results(OUT, results)


def summarise(results: dict) -> None:
    """Per budget and method: mean +- std over seeds; paired intervals of RC-SKD (both
    variants) and of TKD-CA alone (the one part that may help without the other) minus each."""
    summary, paired = summarise_by_budget(
        results["runs"], ("rc_skd", "rc_skd_joint", "tkd_ca"), first=("epochs",)
    )
    results["summary"], results["paired"] = summary, paired


def check_same_origin(runs: list[dict], budget: float, origin: dict[str, Any]) -> None:
    """Stop before mixing runs of one budget that started from different checkpoints."""
    for r in runs:
        if r["budget"] != budget:
            continue
        for name in ("teacher_digest", "start_digest"):
            if name in r and r[name] != origin[name]:
                raise SystemExit(
                    f"budget {budget}: finished runs started from a {name.split('_')[0]} with "
                    f"test-correctness digest {r[name]}, this machine's has {origin[name]} (a "
                    "rebuilt checkpoint that differs); mixing them would make the comparison "
                    f"unfair: finish where those checkpoints are, or --restart-budget {budget}"
                )


def origin_lines(runs: list[dict]) -> list[str]:
    """Per budget: the teacher's and the pruned start's test accuracy its runs started from."""
    lines = []
    for budget in sorted({r["budget"] for r in runs}, reverse=True):
        mine = [r for r in runs if r["budget"] == budget and "start_test_acc" in r]
        pairs = sorted({(r["teacher_test_acc"], r["start_test_acc"]) for r in mine})
        text = "; ".join(f"teacher {t:.4f}, pruned start {s:.4f}" for t, s in pairs)
        lines.append(f"- Budget {budget}: {text or 'not recorded'} (test accuracy).")
    return lines


def markdown(results: dict) -> str:
    lines = [
        "# RC-SKD against the distillation baselines (brain4-64, ResNet-18 teacher)",
        "",
        f"Split: {results['provenance']['split']}; test = 1,311 images. Same pruned start per "
        "budget, same total epochs (RC-SKD's two stages share them), same seeds; settings "
        f"chosen on validation: {results.get('selection', 'defaults')}. Paired 95% bootstrap "
        "interval of RC-SKD (two-stage), of the joint variant and of TKD-CA alone minus each "
        "method (per-image correctness averaged over seeds).",
        "",
        *origin_lines(results["runs"]),
        "",
        "| budget | method | seeds | epochs | test acc | RC-SKD minus this (95% CI) | "
        "joint minus this (95% CI) | TKD-CA minus this (95% CI) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for budget, methods in results["summary"].items():
        for method, m in methods.items():
            ci = paired_cell(results, budget, f"rc_skd-{method}")
            joint = paired_cell(results, budget, f"rc_skd_joint-{method}")
            tkd = paired_cell(results, budget, f"tkd_ca-{method}")
            acc = f"{m['test_acc_mean']:.4f} +- {m['test_acc_std']:.4f}"
            lines.append(f"| {budget} | {method} | {m['n_seeds']} | {m['epochs']} | {acc} | "
                         f"{ci} | {joint} | {tkd} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.2])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--epochs", type=int, default=4, help="total per method")
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--select", action="store_true", help="run the validation grid first")
    parser.add_argument(
        "--restart-budget", type=float, nargs="+", default=[],
        help="drop these budgets' finished runs (their teacher or start is not this machine's)",
    )  # fmt: skip
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args()
    results = {"runs": []} if args.force else load_results(OUT)
    if isinstance(results.get("runs"), dict):  # the earlier layout: start afresh
        results = {"runs": []}
    prepared = prepared_brain4(brain4_params(0))
    teacher = brain4_teacher(0)
    test = load_splits(prepared)["test"]

    def start(budget: float) -> Path:
        return pruned_start(budget, prepared, teacher, test)

    if args.select:
        select(results, args.epochs, prepared, teacher, start(0.5))
    chosen = results.get("selection", {})
    methods = plans(chosen.get("tkd_ca", {}), chosen.get("dkd_sg", {}))
    for budget in args.restart_budget:
        results["runs"] = [r for r in results["runs"] if r["budget"] != budget]
    done = {(r["budget"], r["method"], r["seed"]) for r in results["runs"]}
    origin: dict[float, dict[str, Any]] = {}
    for budget in args.budgets:
        for seed in args.seeds:
            for method in args.methods or list(methods):
                if (budget, method, seed) in done:
                    continue
                if budget not in origin:
                    origin[budget] = origin_of({"teacher": teacher, "start": start(budget)}, test)
                    check_same_origin(results["runs"], budget, origin[budget])
                final = train(method, methods[method], budget, seed, args.epochs, start(budget),
                              prepared, teacher, "run")  # fmt: skip
                score = test_score(final, test)
                results["runs"].append({
                    "budget": budget, "method": method, "seed": seed, "epochs": args.epochs,
                    **score, **origin[budget],
                })  # fmt: skip
                results["provenance"] = provenance(brain4_params(seed), prepared, args.seeds)
                results["settings"] = {k: v for k, v in vars(args).items() if k != "force"}
                summarise(results)
                save_results(OUT, results, markdown(results))
                print(f"b{budget} {method} seed {seed}: test acc {score['test_acc']:.4f}")


if __name__ == "__main__":
    main()
