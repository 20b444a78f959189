"""DVC stage `evaluate`: every model checkpoint given -> reports/metrics.json, details, plots.

Usage (dvc.yaml lists the models; adding a model is a dvc.yaml change, not a code change):
    python stages/evaluate.py models/teacher.pt [models/pruned.pt models/baselines ...]
A folder stands for the checkpoints (*.pt) in it, in name order. Besides the metrics, the stage
writes the comparison table of all models (reports/comparison.md and .json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcskd.config import as_dict, load_params
from rcskd.data.dataset import load_meta, load_splits
from rcskd.errors import run_reporting_errors
from rcskd.evaluate import evaluate_model, flat_metrics
from rcskd.io import atomic_dir, write_bytes_atomic, write_json_atomic, write_text_atomic
from rcskd.report.comparison import comparison_markdown, comparison_rows
from rcskd.tracking import data_tags, stage_run
from rcskd.train import resolve_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("models", nargs="+", help="checkpoints; each is named by its file stem")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--metrics", default="reports/metrics.json")
    parser.add_argument("--details", default="reports/evaluation")
    parser.add_argument("--plots", default="reports/plots")
    parser.add_argument("--comparison", default="reports/comparison.json")
    args = parser.parse_args(argv)
    return run_reporting_errors("evaluate", lambda: run(args))


def checkpoint_paths(items: list[str]) -> list[Path]:
    """Files as given; folders expanded to their *.pt files (sorted)."""
    paths: list[Path] = []
    for item in items:
        path = Path(item)
        paths += sorted(path.glob("*.pt")) if path.is_dir() else [path]
    return paths


def run(args: argparse.Namespace) -> None:
    """The stage's work (errors are reported by `main`)."""
    params = load_params(args.params)
    meta = load_meta(args.prepared)
    test = load_splits(args.prepared)["test"]
    classes = meta["classes"]
    device = resolve_device(params.device)
    section = {"seed": params.seed, **as_dict(params.evaluate)}
    metrics = {}
    # Tagged with the data so that the report's Pareto plot compares only runs on the same data.
    with stage_run("evaluate", section, tags=data_tags(meta)) as tracker:
        with atomic_dir(args.details) as details, atomic_dir(args.plots) as plots:
            for path in checkpoint_paths(args.models):
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
        rows = comparison_rows(metrics)
        write_json_atomic(args.comparison, {"split": "test", "models": rows})
        table = Path(args.comparison).with_suffix(".md")
        note = (
            f"Test split ({len(test.labels)} images). Latency: median ms per batch on CPU, "
            f"{params.evaluate.latency.threads} threads. Ratios are to the teacher."
        )
        write_text_atomic(table, comparison_markdown(rows, note))
        tracker.log_metrics(metrics)
        for path in (args.metrics, args.details, args.plots, args.comparison, table):
            tracker.log_artifact(path)


if __name__ == "__main__":
    sys.exit(main())
