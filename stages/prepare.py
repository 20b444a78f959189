"""DVC stage `prepare`: raw data -> data/prepared/ (tensors, manifest) + reports/prepare.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcskd.config import as_dict, load_params
from rcskd.data.prepare import prepare
from rcskd.errors import run_reporting_errors
from rcskd.io import write_json_atomic
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/prepared")
    parser.add_argument("--report", default="reports/prepare.json")
    args = parser.parse_args(argv)
    return run_reporting_errors("prepare", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """The stage's work (errors are reported by `main`)."""
    params = load_params(args.params)
    section = {
        "seed": params.seed,
        "data": as_dict(params.data),
        "prepare": as_dict(params.prepare),
    }
    with stage_run("prepare", section) as tracker:
        report = prepare(params, args.out)
        write_json_atomic(args.report, report)
        tracker.log_metrics({"counts": report["counts"], "duplicates": report["duplicates"]})
        tracker.log_artifact(args.report)
        tracker.log_artifact(Path(args.out) / "manifest.csv")
        tracker.log_artifact(Path(args.out) / "duplicates.csv")


if __name__ == "__main__":
    sys.exit(main())
