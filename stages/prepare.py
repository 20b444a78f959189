"""DVC stage `prepare`: raw data -> data/prepared/ (tensors, manifest) + reports/prepare.json."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rcskd.config import as_dict, load_params
from rcskd.data.prepare import prepare
from rcskd.errors import RcskdError
from rcskd.io import write_json_atomic
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--out", default="data/prepared")
    parser.add_argument("--report", default="reports/prepare.json")
    args = parser.parse_args(argv)
    try:
        params = load_params(args.params)
        section = {
            "seed": params.seed,
            "data": as_dict(params.data),
            "prepare": as_dict(params.prepare),
        }
        with stage_run("prepare", section) as run:
            report = prepare(params, args.out)
            write_json_atomic(args.report, report)
            run.log_metrics({"counts": report["counts"], "duplicates": report["duplicates"]})
            run.log_artifact(args.report)
            run.log_artifact(Path(args.out) / "manifest.csv")
            run.log_artifact(Path(args.out) / "duplicates.csv")
    except RcskdError as exc:
        print(f"prepare: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
