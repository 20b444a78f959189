"""DVC stage `prune` (LPB-RL): teacher -> pruned checkpoint, ratios, search log and report."""

from __future__ import annotations

import sys

from common import is_main, log_epochs, run_stage, stage_parser, tracked, write_training

from rcskd.config import as_dict
from rcskd.io import write_csv_atomic, write_json_atomic
from rcskd.models import load_checkpoint
from rcskd.roles import PRUNED
from rcskd.steps.prune import run_prune
from rcskd.train import RunOptions


def main(argv: list[str] | None = None) -> int:
    paths = ("--prepared", "--teacher", "--latency-table", "--out", "--resume", "--ratios",
             "--report", "--search-log", "--curve")  # fmt: skip
    args = stage_parser(__doc__, *paths).parse_args(argv)

    def body(params) -> None:
        section = {"seed": params.seed, "device": params.device, **as_dict(params.prune)}
        with tracked("prune", section, params, args.prepared) as tracker:
            result = run_prune(
                params, args.prepared, args.teacher, args.out,
                RunOptions(args.resume, log_epochs(tracker)), args.latency_table,
            )  # fmt: skip
            if is_main():
                write_csv_atomic(args.search_log, result.search_history)
                write_json_atomic(args.ratios, {"chosen": result.ratios,
                                                "uniform": result.uniform_ratios})  # fmt: skip
            for row in result.search_history:  # one curve per search method in MLflow
                tracker.log_metrics(
                    {f"search.{row['method']}.reward": row["reward"]}, row["episode"]
                )
            write_training(result, args.report, args.curve, tracker, args.ratios, args.search_log)
            if is_main():
                inputs = load_checkpoint(args.out).require_inputs()
                tracker.log_model(args.out, inputs, PRUNED.name, "rcskd-pruned")

    outputs = (args.out, args.resume, args.ratios, args.report, args.search_log, args.curve)
    return run_stage("prune", args.params, body, distributed=True, outputs=outputs)


if __name__ == "__main__":
    sys.exit(main())
