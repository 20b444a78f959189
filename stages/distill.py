"""DVC stages `tkd_ca`, `dkd_sg` and `distill_baseline@METHOD`: one distillation method.

    python stages/distill.py --method METHOD --params params.yaml --prepared data/prepared \
        --teacher models/teacher.pt --student START.pt --out OUT.pt --resume R.pt \
        --report reports/distill_METHOD.json --curve reports/curves/distill_METHOD.csv

METHOD is a key of `distill.methods` in params.yaml (RC-SKD's `tkd_ca`, `dkd_sg`, or a baseline).
"""

from __future__ import annotations

import sys

from common import log_epochs, run_stage, stage_parser, tracked, write_training

from rcskd.config import as_dict
from rcskd.roles import RC_SKD_STAGES
from rcskd.steps.distill import run_distill
from rcskd.train import RunOptions


def main(argv: list[str] | None = None) -> int:
    paths = ("--prepared", "--teacher", "--student", "--out", "--resume", "--report", "--curve")
    parser = stage_parser(__doc__, *paths)
    parser.add_argument("--method", required=True, help="a key of distill.methods")
    args = parser.parse_args(argv)
    stage = args.method if args.method in RC_SKD_STAGES else f"distill_baseline.{args.method}"

    def body(params) -> None:
        section = {
            "method": args.method,
            "seed": params.seed,
            "device": params.device,
            "initialised_from": str(args.student),
            **as_dict(params.distill),
        }
        with tracked(stage, section, params, args.prepared) as tracker:
            result = run_distill(
                params, args.method, args.prepared, args.teacher, args.student, args.out,
                RunOptions(args.resume, log_epochs(tracker)),
            )  # fmt: skip
            write_training(result, args.report, args.curve, tracker)

    outputs = (args.out, args.resume, args.report, args.curve)
    return run_stage(stage, args.params, body, distributed=True, outputs=outputs)


if __name__ == "__main__":
    sys.exit(main())
