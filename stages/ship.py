"""DVC stage `ship`: the best student on validation -> the shipped checkpoint export deploys.

    python stages/ship.py --params params.yaml --prepared data/prepared \
        --out models/shipped.pt --report reports/selection.json MODEL.pt|FOLDER ...

Candidates are RC-SKD's students and every baseline (a folder stands for its *.pt files);
the choice reads the validation split only (rcskd/steps/ship.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

from common import run_stage, stage_parser

from rcskd.config import as_dict
from rcskd.io import write_json_atomic
from rcskd.steps.ship import candidate_paths, ship_best
from rcskd.tracking import stage_run


def main(argv: list[str] | None = None) -> int:
    parser = stage_parser(__doc__, "--prepared", "--out", "--report")
    parser.add_argument("models", nargs="+", type=Path, help="candidate checkpoints or folders")
    args = parser.parse_args(argv)

    def body(params) -> None:
        with stage_run("ship", {"seed": params.seed}, pipeline=as_dict(params)) as tracker:
            result = ship_best(args.prepared, candidate_paths(args.models), args.out)
            write_json_atomic(args.report, result.summary)
            tracker.set_tags({"shipped": result.summary["shipped"]})
            tracker.log_metrics({"shipped_val_acc": result.summary["val_acc"]})
            tracker.log_artifact(args.report)
            print(result.summary["verdict"], file=sys.stderr)

    return run_stage("ship", args.params, body, outputs=(args.out, args.report))


if __name__ == "__main__":
    sys.exit(main())
