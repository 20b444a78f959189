"""DVC stage `latency_table`: teacher -> per-block latency table for `prune.resource: latency`.

Measured on the machine that runs the stage (eager PyTorch, CPU, `prune.latency_table`); with
another resource it writes a stub saying so, so that the default pipeline spends no time here.
"""

from __future__ import annotations

import sys

from common import run_stage, stage_parser

from rcskd.io import write_json_atomic
from rcskd.models import load_checkpoint
from rcskd.prune.blocks import find_blocks
from rcskd.prune.latency import measure_latency_table


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__, "--teacher", "--out").parse_args(argv)

    def body(params) -> None:
        cfg = params.prune
        if cfg.resource != "latency":
            write_json_atomic(args.out, {"skipped": f"prune.resource is {cfg.resource}"})
            return
        teacher = load_checkpoint(args.teacher)
        shape = teacher.require_inputs().shape
        blocks = find_blocks(teacher.model, shape)
        t = cfg.latency_table
        table = measure_latency_table(teacher.model, blocks, shape, t.batch_size, t.threads,
                                      t.repeats)  # fmt: skip
        write_json_atomic(args.out, table)

    return run_stage("latency_table", args.params, body, outputs=(args.out,))


if __name__ == "__main__":
    sys.exit(main())
