"""DVC stage `teacher`: prepared data -> the teacher checkpoint, its report and curve."""

from __future__ import annotations

import sys

from common import log_epochs, run_stage, stage_parser, tracked, write_training

from rcskd.config import as_dict
from rcskd.steps.teacher import train_teacher
from rcskd.train import RunOptions


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(
        __doc__, "--prepared", "--out", "--resume", "--report", "--curve"
    ).parse_args(argv)

    def body(params) -> None:
        section = {"seed": params.seed, "device": params.device, **as_dict(params.teacher)}
        with tracked("teacher", section, params, args.prepared) as tracker:
            result = train_teacher(
                params, args.prepared, args.out, RunOptions(args.resume, log_epochs(tracker))
            )
            write_training(result, args.report, args.curve, tracker)

    outputs = (args.out, args.resume, args.report, args.curve)
    return run_stage("teacher", args.params, body, distributed=True, outputs=outputs)


if __name__ == "__main__":
    sys.exit(main())
