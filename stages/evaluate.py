"""DVC stage `evaluate`: every model checkpoint given -> reports/metrics.json, details, plots.

Usage (dvc.yaml lists the models; adding a model is a dvc.yaml change, not a code change):
    python stages/evaluate.py models/teacher.pt [models/pruned.pt ...]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcskd.config import as_dict, load_params
from rcskd.data.dataset import load_meta, load_splits
from rcskd.errors import run_reporting_errors
from rcskd.evaluate import evaluate_model, flat_metrics
from rcskd.io import atomic_dir, write_bytes_atomic, write_json_atomic
from rcskd.tracking import stage_run
from rcskd.train import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="+", help="checkpoints; each is named by its file stem")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--metrics", default="reports/metrics.json")
    parser.add_argument("--details", default="reports/evaluation")
    parser.add_argument("--plots", default="reports/plots")
    args = parser.parse_args(argv)
    return run_reporting_errors("evaluate", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """The stage's work (errors are reported by `main`)."""
    params = load_params(args.params)
    meta = load_meta(args.prepared)
    test = load_splits(args.prepared)["test"]
    classes = meta["classes"]
    device = resolve_device(params.device)
    section = {"seed": params.seed, **as_dict(params.evaluate)}
    metrics = {}
    with stage_run("evaluate", section) as tracker:
        with atomic_dir(args.details) as details, atomic_dir(args.plots) as plots:
            for path in args.models:
                name = Path(path).stem
                print(f"evaluate: {name} ({path})", file=sys.stderr)
                report, figures = evaluate_model(
                    path, test, classes, params.evaluate, params.seed, device
                )
                metrics[name] = flat_metrics(report, classes)
                write_json_atomic(details / f"{name}.json", report)
                for filename, data in figures.items():
                    write_bytes_atomic(plots / filename, data)
        write_json_atomic(args.metrics, metrics)
        tracker.log_metrics(metrics)
        for path in (args.metrics, args.details, args.plots):
            tracker.log_artifact(path)


if __name__ == "__main__":
    sys.exit(main())
