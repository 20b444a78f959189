"""What every stage script shares: required path arguments, params, errors, MLflow, writing.

A stage script parses the paths DVC passes (every one required: dvc.yaml names each path a
stage reads or writes), loads params.yaml, calls one `rcskd.steps` function and writes its
result. Errors become one line and exit code 2 (`run_reporting_errors`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rcskd.config import Params, load_params
from rcskd.errors import run_reporting_errors
from rcskd.io import write_csv_atomic, write_json_atomic
from rcskd.tracking import StageRun


def stage_parser(description: str | None, *paths: str) -> argparse.ArgumentParser:
    """A parser with `--params` and each of `paths` (e.g. "--out") as a required path."""
    parser = argparse.ArgumentParser(description=(description or "").split("\n")[0])
    parser.add_argument("--params", type=Path, required=True, help="params.yaml")
    for name in paths:
        parser.add_argument(name, type=Path, required=True)
    return parser


def run_stage(name: str, params_path: Path, body: Callable[[Params], Any]) -> int:
    """Load params and run `body(params)`; an RcskdError is one line and exit code 2."""
    return run_reporting_errors(name, lambda: body(load_params(params_path)))


def log_epochs(tracker: StageRun) -> Callable[[dict[str, float]], None]:
    """An `on_epoch` callback logging each epoch's row to MLflow at step = epoch."""
    return lambda row: tracker.log_metrics(row, step=int(row["epoch"]))


def write_training(
    result: Any, report: Path, curve: Path, tracker: StageRun, *artifacts: Path
) -> None:
    """Write a TrainResult's summary (JSON) and curve (CSV); log both and the artifacts."""
    write_csv_atomic(curve, result.history)
    write_json_atomic(report, result.summary)
    tracker.log_metrics({"summary": {k: v for k, v in result.summary.items() if k != "spec"}})
    for path in (report, curve, result.checkpoint, *artifacts):
        tracker.log_artifact(path)
