"""DVC stage `report`: the pipeline's outputs -> reports/report.html (self-contained).

The Pareto plot takes earlier evaluate runs on the same prepared data (same fingerprint) from
MLflow. Rerun by hand after a budget sweep to refresh it with the new experiments:
    python stages/report.py
"""

from __future__ import annotations

import argparse
import sys

from rcskd.data.dataset import load_meta
from rcskd.errors import run_reporting_errors
from rcskd.io import write_text_atomic
from rcskd.report.html import build_report, load_inputs
from rcskd.tracking import data_tags, past_stage_runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reports", default="reports")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="reports/report.html")
    args = parser.parse_args(argv)

    def run() -> None:
        past_runs = past_stage_runs("evaluate", tags=data_tags(load_meta(args.prepared)))
        inputs = load_inputs(args.reports, args.prepared, past_runs)
        write_text_atomic(args.out, build_report(inputs))
        print(f"report: {args.out}", file=sys.stderr)

    return run_reporting_errors("report", run)


if __name__ == "__main__":
    sys.exit(main())
