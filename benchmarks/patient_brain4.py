"""Benchmark: patient distillation (brain4-64): every method at 4, 16 and 64 epochs.

    python benchmarks/patient_brain4.py --plan        # what is done and what is left
    python benchmarks/patient_brain4.py               # run what is left, smallest budget first
    python benchmarks/patient_brain4.py --budgets 0.05 --lengths 64 --seeds 1 2

The teacher is the chosen recipe of teacher_brain4.py (`brain4_teacher`). Per budget, one
pruned start (the prune step's DDPG search, search seed 0, 60 candidates, a 3-epoch balanced
fine-tune) is shared by every method; at the smallest budget one extra row starts from the
uniformly pruned student (ce_only at the longest length), which measures what the search adds.
Budgets: 0.2 (max_ratio 0.9), and 0.05, which leaves under 0.6M parameters (max_ratio 0.99:
only block-internal channels are pruned, and 0.9 cannot go below 0.115 of ResNet-18).
Methods (params.yaml `distill.methods`): ce_only, kd, tkd_ca, rc_skd_joint, rc_skd (TKD-CA for
half the epochs, then DKD-SG from it for the other half) and function_matching; the same
optimizer (AdamW 5e-4, cosine over the run's epochs), augmentation, balanced sampling, start and
seeds for all. Lengths 4, 16, 64 at seed 0 (the patience curves), then seeds 1 and 2 at the
longest. Each run records its validation and test accuracy after every epoch (the test column is
measured, never used to choose), the final test correctness per image (paired bootstrap
intervals against ce_only and KD at the longest length), the dtype and the digests of the
teacher and the start. Resumable: finished runs are kept in reports/bench/patient_brain4.json
and skipped; an interrupted run resumes from its last epoch. Several workers may run at once
(one thread each, e.g. one per core): each claims a run before starting it and appends its
result under a lock.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench_common import (
    REPO,
    RESULTS,
    WORK,
    brain4_params,
    brain4_teacher,
    load_results,
    origin_of,
    prepared_brain4,
    provenance,
    save_results,
    test_score,
)
from patient_report import goals, markdown, summarise, worth_length

from rcskd.config import load_params
from rcskd.data.dataset import load_splits
from rcskd.io import write_json_atomic
from rcskd.metrics.complexity import count_params
from rcskd.models import load_checkpoint
from rcskd.steps.distill import run_distill
from rcskd.steps.prune import run_prune
from rcskd.train import RunOptions, evaluate
from rcskd.train.runtime import autocast_dtype

OUT = RESULTS / "patient_brain4.json"
HERE = WORK / "brain4-64-seed0" / "patient"
METHODS = ("ce_only", "kd", "tkd_ca", "rc_skd_joint", "rc_skd", "function_matching")
LENGTHS = (4, 16, 64)
SEEDS = (0, 1, 2)
BUDGETS = {0.05: 0.99, 0.2: 0.9}  # budget -> prune.max_ratio
TRAIN = {"batch_size": 64, "optimizer": "adamw", "lr": 5e-4, "weight_decay": 0.05,
         "schedule": "cosine", "warmup_epochs": 0.0, "balanced_sampling": True,
         "monitor": "balanced_acc"}  # fmt: skip
DEFINED = load_params(REPO / "params.yaml").distill.methods


def stages(method: str) -> list[tuple[str, float]]:
    """(params.yaml method, share of the epochs) run one after the other."""
    if method == "rc_skd":
        return [("tkd_ca", 0.5), ("dkd_sg", 0.5)]
    return [(method, 1.0)]


def start_path(budget: float, kind: str) -> Path:
    """The pruned start of `budget`: the DDPG search's (kind "ddpg") or uniform pruning's."""
    path = HERE / f"start_{kind}_b{budget}.pt"
    if path.is_file():
        return path
    prune = {"budget": budget, "max_ratio": BUDGETS[budget], "search": kind,
             "compare_baselines": False, "search_seed": 0, "agent": {"episodes": 60},
             "finetune": {"epochs": 3, "balanced_sampling": True}}  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    prepared = prepared_brain4(brain4_params(0))
    run_prune(brain4_params(0, prune=prune), prepared, brain4_teacher(0), path,
              RunOptions(f"{path}.resume"))  # fmt: skip
    return path


def final_checkpoint(method: str, budget: float, epochs: int, seed: int, kind: str) -> Path:
    """The student a run ends with (the last stage's checkpoint)."""
    last = len(stages(method)) - 1
    return HERE / f"{method}_{last}_b{budget}_e{epochs}_s{seed}_{kind}.pt"


class Curve:
    """Validation and test accuracy after every epoch (observes; chooses nothing). The rows are
    kept in `store` as they come, so a run resumed after a kill still has its whole curve."""

    def __init__(self, test, preprocess, precision: str, store: Path, offset: int = 0) -> None:
        self.test, self.preprocess, self.offset = test, preprocess, offset
        self.precision = precision
        self.store = store
        self.rows: list[dict[str, float]] = json.loads(store.read_text()) if store.is_file() else []

    def __call__(self, model, row: dict) -> None:
        # on the device the model trains on, in its training dtype (a GPU run stays on the GPU)
        device = next(model.parameters()).device
        dtype = autocast_dtype(self.precision, device)
        acc = evaluate(model, self.test, self.preprocess, 256, device, dtype)["acc"]
        epoch = self.offset + int(row["epoch"])
        self.rows = [r for r in self.rows if r["epoch"] < epoch]  # a replayed epoch replaces
        self.rows.append({"epoch": epoch, "val_acc": row["val_acc"], "test_acc": acc})
        write_json_atomic(self.store, self.rows)
        model.train()


def run_one(method: str, budget: float, epochs: int, seed: int, kind: str) -> dict[str, Any]:
    """Train one method from the budget's start; the run's record."""
    prepared = prepared_brain4(brain4_params(0))
    splits = load_splits(prepared)
    teacher, start = brain4_teacher(0), start_path(budget, kind)
    path, curve = start, []
    precision = "auto"
    plan = stages(method)
    for k, (name, share) in enumerate(plan):
        stage_epochs = max(1, round(epochs * share))
        params = brain4_params(seed, distill={
            "train": {**TRAIN, "epochs": stage_epochs},
            "methods": {name: DEFINED[name]},
        })  # fmt: skip
        precision = params.distill.train.precision
        out = HERE / f"{method}_{k}_b{budget}_e{epochs}_s{seed}_{kind}.pt"
        preprocess = load_checkpoint(path).require_inputs().preprocess
        observer = Curve(splits["test"], preprocess, precision, Path(f"{out}.curve.json"),
                         len(curve))  # fmt: skip
        if k < len(plan) - 1 and out.is_file() and len(observer.rows) == stage_epochs:
            curve, path = curve + observer.rows, out  # an earlier stage finished before a kill
            continue
        result = run_distill(params, name, prepared, teacher, path, out,
                             RunOptions(f"{out}.resume", observe=observer))  # fmt: skip
        curve += observer.rows if len(observer.rows) == stage_epochs else []
        path = out
        summary = result.summary
    return {
        "method": method, "budget": budget, "epochs": epochs, "seed": seed, "start": kind,
        **test_score(path, splits["test"]),
        "val_acc": summary["val_acc"], "val_loss": validation_loss(path, splits["val"]),
        "params_M": count_params(load_checkpoint(path).model) / 1e6,
        "dtype": summary["precision"], "channels_last": summary["channels_last"],
        "threads": summary["threads"], "train_seconds": summary["train_seconds"],
        "curve": curve,
        **origin_of({"teacher": teacher, "start": start}, splits["test"]),
    }  # fmt: skip


def plan(budgets, lengths, seeds, methods) -> list[tuple[str, float, int, int, str]]:
    """(method, budget, epochs, seed, start) in running order: per budget (smallest first) the
    patience curves at seed 0, the uniform-start row, then the other seeds at the longest."""
    longest = max(lengths)
    todo = []
    for budget in sorted(budgets):
        if 0 in seeds:
            todo += [(m, budget, e, 0, "ddpg") for e in sorted(lengths) for m in methods]
            if budget == min(budgets) and "ce_only" in methods:
                todo.append(("ce_only", budget, longest, 0, "uniform"))
        todo += [(m, budget, longest, s, "ddpg") for s in seeds if s != 0 for m in methods]
    return todo


def finished() -> dict[str, Any]:
    """The result file as it is on disk now (other workers may have added runs)."""
    results = load_results(OUT)
    if not isinstance(results.get("runs"), list):
        results["runs"] = []
    return results


def run_key(run: dict[str, Any]) -> tuple[str, float, int, int, str]:
    return (run["method"], run["budget"], run["epochs"], run["seed"], run["start"])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def claim(item: tuple) -> Path | None:
    """A claim on `item` for this process, or None when a live worker holds it: several workers
    (each `python benchmarks/patient_brain4.py`, one thread each) share one plan; the claim
    file holds the worker's pid, and a dead worker's claim is taken over."""
    path = HERE / "claims" / ("_".join(map(str, item)) + ".pid")
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                return None
            path.unlink(missing_ok=True)
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return path
    return None


def validation_loss(path: Path, val) -> float:
    """Cross-entropy of the saved model (fp32, as deployed) on the validation split."""
    checkpoint = load_checkpoint(path)
    return evaluate(checkpoint.model.eval(), val, checkpoint.require_inputs().preprocess)["loss"]


def update(change: Callable[[dict[str, Any]], None]) -> None:
    """Apply `change` to the result file on disk under a lock (workers write concurrently),
    then rewrite the summary, the length worth its time and the Markdown table."""
    HERE.mkdir(parents=True, exist_ok=True)
    with open(HERE / "results.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        results = finished()
        change(results)
        seeds = sorted({r["seed"] for r in results["runs"]})
        prepared = prepared_brain4(brain4_params(0))
        results["provenance"] = provenance(brain4_params(0), prepared, seeds)
        summarise(results)
        results["worth_length"] = worth_length(results)
        results["goals"] = goals(results)
        save_results(OUT, results, markdown(results))


def save_run(record: dict[str, Any]) -> None:
    """Append a finished run (replacing an earlier record of the same run)."""

    def append(results: dict[str, Any]) -> None:
        mixed = {r["teacher_digest"] for r in results["runs"]} - {record["teacher_digest"]}
        if mixed:
            raise SystemExit(f"finished runs used another teacher ({mixed}); start afresh")
        results["runs"] = [r for r in results["runs"] if run_key(r) != run_key(record)]
        results["runs"].append(record)
        results["teacher_test_acc"] = record["teacher_test_acc"]
        chosen = load_results(RESULTS / "teacher_brain4.json").get("chosen_recipe")
        results["teacher_recipe"] = chosen

    update(append)


def backfill_validation_loss() -> None:
    """Add `val_loss` to runs recorded before it was measured, from their saved students."""
    val = load_splits(prepared_brain4(brain4_params(0)))["val"]

    def fill(results: dict[str, Any]) -> None:
        for run in results["runs"]:
            path = final_checkpoint(*run_key(run))
            if "val_loss" not in run and path.is_file():
                run["val_loss"] = validation_loss(path, val)

    update(fill)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=sorted(BUDGETS))
    parser.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS))
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--plan", action="store_true", help="print done/left and stop")
    parser.add_argument("--backfill", action="store_true",
                        help="add val_loss to runs recorded without it, then stop")  # fmt: skip
    args = parser.parse_args()
    if args.backfill:
        backfill_validation_loss()
        return
    todo = plan(args.budgets, args.lengths, args.seeds, args.methods)
    if args.plan:
        done = {run_key(r) for r in finished()["runs"]}
        for item in todo:
            print(("done " if item in done else "left ") + " ".join(map(str, item)))
        return
    for item in todo:
        if item in {run_key(r) for r in finished()["runs"]}:
            continue
        mine = claim(item)
        if mine is None:  # another worker runs it
            continue
        try:
            if item in {run_key(r) for r in finished()["runs"]}:  # finished while we looked
                continue
            record = run_one(*item)
            save_run(record)
            print(" ".join(map(str, item)), f"test {record['test_acc']:.4f}", flush=True)
        finally:
            mine.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
