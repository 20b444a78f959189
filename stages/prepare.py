"""DVC stage `prepare`: raw data -> the prepared cache + reports/prepare.json."""

from __future__ import annotations

import dataclasses
import sys

from common import run_stage, stage_parser

from rcskd.config import as_dict
from rcskd.io import write_json_atomic
from rcskd.steps.prepare import run_prepare
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, "--data-root", "--out", "--report")
    args = parser.parse_args(argv)

    def body(params) -> None:
        data = dataclasses.replace(params.data, root=str(args.data_root))
        params = dataclasses.replace(params, data=data)
        section = {"seed": params.seed, "data": as_dict(data), "prepare": as_dict(params.prepare)}
        with stage_run("prepare", section, pipeline=as_dict(params)) as tracker:
            result = run_prepare(params, args.out)
            write_json_atomic(args.report, result.summary)
            tracker.log_metrics({"counts": result.summary["counts"],
                                 "duplicates": result.summary["duplicates"]})  # fmt: skip
            for path in (args.report, result.manifest, result.duplicates):
                tracker.log_artifact(path)

    return run_stage("prepare", args.params, body, outputs=(args.out, args.report))


if __name__ == "__main__":
    sys.exit(main())
