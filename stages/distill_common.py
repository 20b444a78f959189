"""Shared by the distillation stages (tkd_ca, dkd_sg, distill_baseline): params -> run -> files."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from rcskd.config import Params, as_dict, load_params
from rcskd.distillation import run_distill
from rcskd.errors import run_reporting_errors
from rcskd.io import write_csv_atomic, write_json_atomic
from rcskd.tracking import stage_run


def stage_main(
    stage: str,
    method: Callable[[argparse.Namespace], str] | str,
    student: Callable[[Params], str] | str,
    out: str,
    argv: list[str] | None,
    extra_args: Callable[[argparse.ArgumentParser], None] | None = None,
) -> int:
    """Parse the common arguments and run the distillation stage, reporting errors plainly."""
    parser = argparse.ArgumentParser(description=f"DVC stage {stage}")
    if extra_args is not None:
        extra_args(parser)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--teacher", default="models/teacher.pt")
    parser.add_argument("--student", default=None, help="starting weights (default per stage)")
    parser.add_argument("--out", default=out)
    args = parser.parse_args(argv)
    name = method(args) if callable(method) else method

    def run() -> None:
        params = load_params(args.params)
        start = args.student or (student(params) if callable(student) else student)
        out_path = args.out.format(method=name)
        section = {
            "method": name,
            "seed": params.seed,
            "device": params.device,
            "initialised_from": start,
            **as_dict(params.distill),
        }
        with stage_run(stage if stage == name else f"{stage}.{name}", section) as tracker:
            report = run_distill(
                params,
                name,
                args.prepared,
                args.teacher,
                start,
                out_path,
                resume_path=f"models/.resume/distill_{name}.pt",
                on_epoch=lambda row: tracker.log_metrics(row, step=int(row["epoch"])),
            )
            curve = f"reports/curves/distill_{name}.csv"
            write_csv_atomic(curve, report.pop("history"))
            metrics = f"reports/distill_{name}.json"
            write_json_atomic(metrics, report)
            tracker.log_metrics({"summary": report})
            for path in (metrics, curve, out_path):
                tracker.log_artifact(path)

    return run_reporting_errors(stage, run)
