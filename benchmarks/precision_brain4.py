"""Benchmark: does native bf16 cost accuracy? TKD-CA at budget 0.2 in fp32 and in bf16, paired.

    python benchmarks/precision_brain4.py [--seeds 0 1 2] [--epochs 4]

The distillation benchmark's TKD-CA protocol (distill_brain4.py: 4 epochs, AdamW 5e-4, balanced
sampling, the TKD-CA settings it chose on validation) from one pruned start at budget 0.2 (the
patient benchmark's DDPG start, shared with it), trained once with `precision: fp32` and once
with `precision: auto` (bf16 on CPUs with native bf16) for every seed: same teacher, start, data
and seeds, so the difference is the dtype alone. Reports each run's test accuracy and wall time,
the mean difference with a paired bootstrap interval over the same test images, and, as context,
the fp32 5-seed spread of distill_brain4.json (another teacher and start: not a paired
comparison). Resumable: finished (precision, seed) runs are kept.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
from bench_common import (
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    load_results,
    mean_std,
    origin_of,
    paired_interval,
    prepared_brain4,
    provenance,
    save_results,
    test_score,
)
from patient_brain4 import start_path

from rcskd.data.dataset import load_splits
from rcskd.steps.distill import run_distill
from rcskd.train import RunOptions

OUT = RESULTS / "precision_brain4.json"
BUDGET = 0.2
PRECISIONS = ("fp32", "auto")


def run_one(precision: str, seed: int, epochs: int, tkd: dict[str, Any]) -> dict[str, Any]:
    """One TKD-CA run from the shared start; its record."""
    prepared = prepared_brain4(brain4_params(0))
    test = load_splits(prepared)["test"]
    teacher, start = brain4_teacher(0), start_path(BUDGET, "ddpg")
    params = brain4_params(seed, distill={
        "train": {"epochs": epochs, "balanced_sampling": True, "lr": 5e-4,
                  "precision": precision},
        "methods": {"tkd_ca": {"tkd_ca": tkd}},
    })  # fmt: skip
    out = WORK / "brain4-64-seed0" / "precision" / f"tkd_ca_{precision}_b{BUDGET}_s{seed}.pt"
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_distill(params, "tkd_ca", prepared, teacher, start, out,
                         RunOptions(f"{out}.resume"))  # fmt: skip
    return {
        "precision": precision, "dtype": result.summary["precision"], "seed": seed,
        "epochs": epochs, "budget": BUDGET, "val_acc": result.summary["val_acc"],
        "train_seconds": result.summary["train_seconds"],
        "threads": result.summary["threads"], **test_score(out, test),
        **origin_of({"teacher": teacher, "start": start}, test),
    }  # fmt: skip


def summarise(results: dict[str, Any]) -> None:
    """Per precision: mean +- std; bf16 minus fp32, paired over the seeds both finished."""
    runs = results["runs"]
    results["summary"] = {}
    for precision in PRECISIONS:
        mine = [r for r in runs if r["precision"] == precision]
        if mine:
            mean, std = mean_std([r["test_acc"] for r in mine])
            seconds = mean_std([r["train_seconds"] for r in mine])[0]
            results["summary"][precision] = {"dtype": mine[0]["dtype"], "n_seeds": len(mine),
                                             "test_acc_mean": mean, "test_acc_std": std,
                                             "train_seconds_mean": seconds}  # fmt: skip
    seeds = sorted({r["seed"] for r in runs if r["precision"] == "fp32"}
                   & {r["seed"] for r in runs if r["precision"] == "auto"})  # fmt: skip
    if seeds:

        def correct(precision: str) -> np.ndarray:
            rows = [r for r in runs if r["precision"] == precision and r["seed"] in seeds]
            return np.mean([[int(c) for c in r["test_correct"]] for r in rows], 0)

        diff, ci = paired_interval(correct("auto"), correct("fp32"))
        results["paired"] = {"auto-fp32": {"mean_diff": diff, "ci95": ci, "seeds": seeds}}
    earlier = [s for s in load_results(RESULTS / "distill_brain4.json").get("runs", [])
               if (s["budget"], s["method"]) == (BUDGET, "tkd_ca")]  # fmt: skip
    if earlier:
        accs = [r["test_acc"] for r in earlier]
        results["fp32_reference"] = {"file": "distill_brain4.json", "n_seeds": len(accs),
                                     "min": min(accs), "max": max(accs)}  # fmt: skip


def markdown(results: dict[str, Any]) -> str:
    lines = [
        f"# Precision (brain4-64): TKD-CA at budget {BUDGET} in fp32 and in bf16",
        "",
        f"Same teacher, pruned start, data, {results['settings']['epochs']} epochs and seeds; "
        "`precision: auto` resolves to the dtype shown on this machine "
        f"({results['provenance'].get('cpu', '?')}, {results['runs'][0]['threads']} thread(s)). "
        "`benchmarks/precision_brain4.py`.",
        "",
        "| precision | dtype | seeds | test acc (mean +- std) | train s per run |",
        "|---|---|---|---|---|",
    ]
    for precision, s in results["summary"].items():
        lines.append(f"| {precision} | {s['dtype']} | {s['n_seeds']} | {s['test_acc_mean']:.4f} "
                     f"+- {s['test_acc_std']:.4f} | {s['train_seconds_mean']:.0f} |")  # fmt: skip
    pair = results.get("paired", {}).get("auto-fp32")
    if pair:
        lo, hi = pair["ci95"]
        lines += ["", f"auto minus fp32 over seeds {pair['seeds']}: "
                  f"{100 * pair['mean_diff']:+.2f} points (paired 95% CI {100 * lo:+.2f} to "
                  f"{100 * hi:+.2f})."]  # fmt: skip
    ref = results.get("fp32_reference")
    if ref:
        lines += ["", f"Context: the fp32 TKD-CA runs of {ref['file']} at this budget ("
                  f"{ref['n_seeds']} seeds, an earlier teacher and start) span "
                  f"{ref['min']:.4f}-{ref['max']:.4f}."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    results = load_results(OUT)
    if not isinstance(results.get("runs"), list):
        results["runs"] = []
    tkd = load_results(RESULTS / "distill_brain4.json").get("selection", {}).get("tkd_ca", {})
    done = {(r["precision"], r["seed"]) for r in results["runs"]}
    for seed in args.seeds:
        for precision in PRECISIONS:
            if (precision, seed) in done:
                continue
            record = run_one(precision, seed, args.epochs, tkd)
            results["runs"].append(record)
            results["settings"] = {**vars(args), "tkd_ca": tkd, "budget": BUDGET}
            prepared = prepared_brain4(brain4_params(0))
            results["provenance"] = provenance(brain4_params(0), prepared, args.seeds)
            summarise(results)
            save_results(OUT, results, markdown(results))
            print(f"{precision} seed {seed}: test {record['test_acc']:.4f}", flush=True)


if __name__ == "__main__":
    main()
