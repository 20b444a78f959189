"""DVC stage `report`: the run's declared outputs -> one self-contained HTML page.

Every input is a path on the command line (dvc.yaml declares each). With `--past-runs`, the
Pareto plot also shows earlier evaluate runs on the same prepared data from MLflow; DVC does not
pass it (the MLflow store is not a declared input), so run it by hand after a budget sweep:
    python stages/report.py --past-runs  (plus the paths, as in dvc.yaml)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rcskd.data.dataset import load_meta
from rcskd.errors import run_reporting_errors
from rcskd.io import check_writable, write_text_atomic
from rcskd.steps.report import ReportSources, make_report


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("--prepared", "--prepare-report", "--comparison", "--plots", "--search-log",
                 "--ratios", "--out"):  # fmt: skip
        parser.add_argument(name, type=Path, required=True, help="a path (dvc.yaml names it)")
    parser.add_argument("--curves", type=Path, nargs="+", required=True,
                        help="curve CSV files, or folders of distill_*.csv")  # fmt: skip
    parser.add_argument("--past-runs", action="store_true",
                        help="add earlier evaluate runs (MLflow) to the Pareto plot")  # fmt: skip
    args = parser.parse_args(argv)

    def run() -> None:
        check_writable(args.out)
        past = None
        if args.past_runs:
            from rcskd.tracking import data_tags, past_stage_runs

            past = past_stage_runs("evaluate", tags=data_tags(load_meta(args.prepared)))
        sources = ReportSources(
            args.prepared, args.prepare_report, args.comparison, args.plots, args.search_log,
            args.ratios, list(args.curves),
        )  # fmt: skip
        write_text_atomic(args.out, make_report(sources, past))
        print(f"report: {args.out}", file=sys.stderr)

    return run_reporting_errors("report", run)


if __name__ == "__main__":
    sys.exit(main())
