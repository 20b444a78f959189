"""Benchmark: a `prune.budget` sweep of the whole pipeline on Brain-4, through DVC's queue.

    python benchmarks/budget_sweep.py run      # queue the missing budgets, run them one at a time
    python benchmarks/budget_sweep.py table    # reports/bench/sweep_brain4.{json,md}

Each budget is one DVC experiment named `brain4-b<budget>` (e.g. brain4-b0.3) with the same
Brain-4 overrides (SWEEP_OVERRIDES); prepare and teacher are identical across budgets, so DVC's
run-cache trains the teacher once. Resumable: budgets whose experiment exists are not queued
again. The data root must be absolute: queued experiments run in a copy under .dvc/tmp/exps/.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
from bench_common import BRAIN4, REPO, RESULTS, SPLIT_NOTE

from rcskd.io import write_json_atomic, write_text_atomic
from rcskd.tracking import git_commit

# Brain-4 with every other parameter at its params.yaml default (64 px grey, ResNet-18 at width
# 0.5 for 30 epochs, 60 DDPG candidates, all eight baselines).
SWEEP_OVERRIDES = ["data.source=imagefolder", f"data.root={BRAIN4}"]
MODELS = ("teacher", "pruned", "student_tkd", "student")
NAME = "brain4-b{budget}"


def dvc(*args: str, capture: bool = False) -> str:
    """Run the project's dvc (the one beside this Python) in the repository."""
    exe = Path(sys.executable).with_name("dvc")
    out = subprocess.run([str(exe), *args], cwd=REPO, check=True, text=True, capture_output=capture)
    return out.stdout if capture else ""


def experiments() -> dict[str, dict[str, Any]]:
    """Name -> {rev, params, metrics, ...} of every finished DVC experiment, on any commit.

    Queued and running experiments are left out: they show the baseline commit's metrics.
    """
    found = {}
    for entry in json.loads(dvc("exp", "show", "--json", "--all-commits", capture=True)):
        for exp in entry.get("experiments") or []:
            if (exp.get("executor") or {}).get("state", "success") != "success":
                continue
            for rev in exp.get("revs") or []:
                data = rev.get("data") or {}
                files = {f: v.get("data", {}) for f, v in (data.get("metrics") or {}).items()}
                found[rev.get("name") or rev["rev"]] = {
                    "rev": rev["rev"],
                    "params": (data.get("params") or {}).get("params.yaml", {}).get("data", {}),
                    "metrics": files.get("reports/metrics.json", {}),
                    "stage_minutes": {
                        Path(f).stem: round(v.get("wall_time_s", v.get("train_seconds")) / 60, 1)
                        for f, v in files.items()
                        if "wall_time_s" in v or "train_seconds" in v
                    },
                    "fingerprint": files.get("reports/prepare.json", {}).get("fingerprint"),
                }
    return found


def queue_status() -> dict[str, str]:
    """Experiment name -> status (Queued, Running, Success, Failed) from `dvc queue status`."""
    rows = (line.split() for line in dvc("queue", "status", capture=True).splitlines())
    return {row[1]: row[-1] for row in rows if len(row) >= 5 and re.fullmatch(r"[0-9a-f]+", row[0])}


def run(budgets: list[float]) -> None:
    """Queue every budget without an experiment yet, then run the queue one at a time."""
    if not BRAIN4.is_dir():
        sys.exit(f"the sweep needs the Brain-4 dataset at {BRAIN4}")
    done, pending = experiments(), queue_status()
    for budget in budgets:
        name = NAME.format(budget=budget)
        if name in done and done[name]["metrics"]:
            print(f"{name}: done, skipped", file=sys.stderr)
        elif pending.get(name) in ("Queued", "Running"):
            print(f"{name}: already {pending[name].lower()}", file=sys.stderr)
        else:
            sets = [a for o in [*SWEEP_OVERRIDES, f"prune.budget={budget}"] for a in ("-S", o)]
            dvc("exp", "run", "--queue", "--name", name, *sets)
    # Stage commands call `python`: the worker must find this environment's first.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    while {"Queued", "Running"} & set(states := queue_status().values()):
        # A worker can exit with tasks still queued (e.g. after an earlier `dvc queue stop`).
        if "Running" not in states:
            dvc("queue", "start", "-j", "1")
        time.sleep(60)
    print(dvc("queue", "status", capture=True), file=sys.stderr)


def table(budgets: list[float]) -> None:
    """Collect the sweep's experiments into reports/bench/sweep_brain4.{json,md}."""
    found = experiments()
    rows = []
    for budget in budgets:
        exp = found.get(NAME.format(budget=budget))
        if not exp or not exp["metrics"]:
            print(f"budget {budget}: no finished experiment", file=sys.stderr)
            continue
        m = exp["metrics"]
        row = {
            "experiment": NAME.format(budget=budget),
            "rev": exp["rev"],
            "budget": budget,
            "stage_minutes": exp["stage_minutes"],
            "dataset_fingerprint": exp["fingerprint"],
        }
        row["models"] = {  # teacher, pruned, student_tkd, student and each baseline
            model: {k: m[model].get(k) for k in ("acc", "macro_f1", "params", "flops")}
            for model in m
        }
        rows.append(row)
    if not rows:
        sys.exit("no finished sweep experiment: run `python benchmarks/budget_sweep.py run`")
    params = found[rows[0]["experiment"]]["params"]
    result = {
        "overrides": SWEEP_OVERRIDES,
        "split": SPLIT_NOTE,
        "git_commit": git_commit(REPO),
        "params": params,  # of the first budget; the others differ in prune.budget only
        "seeds": [params.get("seed")],
        "torch": torch.__version__,
        "threads": f"torch default: all {os.cpu_count()} cores (evaluate's latency: 2 threads)",
        "rows": rows,
    }
    write_json_atomic(RESULTS / "sweep_brain4.json", result)
    write_text_atomic(RESULTS / "sweep_brain4.md", markdown(rows))
    print((RESULTS / "sweep_brain4.md").read_text())


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README's sweep table: one row per budget, accuracy and size of each model."""
    teacher = rows[0]["models"].get("teacher", {})
    lines = [
        "# prune.budget sweep on Brain-4 (DVC experiment queue)",
        "",
        f"Split: {SPLIT_NOTE}. Overrides: `{' '.join(SWEEP_OVERRIDES)}`. Teacher (same in "
        f"every experiment): test acc {teacher.get('acc', float('nan')):.4f}, "
        f"{teacher.get('params', 0):,} params. Test accuracy on Brain-4 `Testing/`.",
        "",
        "| experiment | budget | student params (ratio) | student FLOPs (ratio) | pruned acc "
        "| best baseline acc | TKD-CA acc | RC-SKD acc | RC-SKD macro-F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        models = r["models"]
        s, p, t = models.get("student", {}), models.get("pruned", {}), models.get("student_tkd", {})
        baselines = {k: v["acc"] for k, v in models.items() if k not in MODELS}
        best = max(baselines, key=baselines.get) if baselines else None
        best_text = f"{baselines[best]:.4f} ({best})" if best else "-"
        lines.append(
            f"| {r['experiment']} | {r['budget']} "
            f"| {s['params']:,} ({s['params'] / teacher['params']:.3f}) "
            f"| {s['flops'] / 1e6:.1f} M ({s['flops'] / teacher['flops']:.3f}) "
            f"| {p.get('acc', float('nan')):.4f} | {best_text} | {t.get('acc', float('nan')):.4f} "
            f"| {s['acc']:.4f} | {s['macro_f1']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("run", "table"))
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.3, 0.5, 0.7])
    args = parser.parse_args()
    (run if args.action == "run" else table)(args.budgets)


if __name__ == "__main__":
    main()
