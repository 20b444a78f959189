"""DVC stage `teacher`: prepared data -> models/teacher.pt + reports/teacher.json and curve."""

from __future__ import annotations

import argparse
import sys

from rcskd.config import as_dict, load_params
from rcskd.errors import run_reporting_errors
from rcskd.io import write_csv_atomic, write_json_atomic
from rcskd.teacher import train_teacher
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", default="models/teacher.pt")
    parser.add_argument("--resume", default="models/.resume/teacher.pt")
    parser.add_argument("--report", default="reports/teacher.json")
    parser.add_argument("--curve", default="reports/teacher_curve.csv")
    args = parser.parse_args(argv)
    return run_reporting_errors("teacher", lambda: run(args))


def run(args: argparse.Namespace) -> None:
    """The stage's work (errors are reported by `main`)."""
    params = load_params(args.params)
    section = {"seed": params.seed, "device": params.device, **as_dict(params.teacher)}
    with stage_run("teacher", section) as tracker:
        report = train_teacher(
            params,
            args.prepared,
            args.out,
            resume_path=args.resume,
            on_epoch=lambda row: tracker.log_metrics(row, step=int(row["epoch"])),
        )
        history = report.pop("history")
        write_csv_atomic(args.curve, history)
        write_json_atomic(args.report, report)
        # per-epoch rows are curves (val_acc at steps 1..n); the summary gets its own names
        tracker.log_metrics({"summary": {k: v for k, v in report.items() if k != "spec"}})
        for path in (args.report, args.curve, args.out):
            tracker.log_artifact(path)


if __name__ == "__main__":
    sys.exit(main())
