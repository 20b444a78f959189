"""DVC stage `prune` (LPB-RL): teacher -> models/pruned.pt, ratios, search log and report."""

from __future__ import annotations

import argparse
import sys

from rcskd.config import as_dict, load_params
from rcskd.errors import run_reporting_errors
from rcskd.io import write_csv_atomic, write_json_atomic
from rcskd.pruning import run_prune
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--teacher", default="models/teacher.pt")
    parser.add_argument("--out", default="models/pruned.pt")
    parser.add_argument("--resume", default="models/.resume/pruned.pt")
    parser.add_argument("--ratios", default="reports/ratios.json")
    parser.add_argument("--report", default="reports/prune.json")
    parser.add_argument("--search-log", default="reports/prune_search.csv")
    parser.add_argument("--curve", default="reports/prune_curve.csv")
    args = parser.parse_args(argv)
    return run_reporting_errors("prune", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """The stage's work (errors are reported by `main`)."""
    params = load_params(args.params)
    section = {"seed": params.seed, "device": params.device, **as_dict(params.prune)}
    with stage_run("prune", section) as tracker:
        report = run_prune(
            params,
            args.prepared,
            args.teacher,
            args.out,
            resume_path=args.resume,
            on_epoch=lambda row: tracker.log_metrics(row, step=int(row["epoch"])),
        )
        search_log = report.pop("search_history")
        write_csv_atomic(args.search_log, search_log)
        write_csv_atomic(args.curve, report.pop("history"))
        write_json_atomic(
            args.ratios, {"chosen": report.pop("ratios"), "uniform": report.pop("uniform_ratios")}
        )
        write_json_atomic(args.report, report)
        for row in search_log:  # one curve per search method in MLflow
            tracker.log_metrics({f"search.{row['method']}.reward": row["reward"]}, row["episode"])
        tracker.log_metrics({"summary": report})
        for path in (args.report, args.ratios, args.search_log, args.curve, args.out):
            tracker.log_artifact(path)


if __name__ == "__main__":
    sys.exit(main())
