"""DVC stage `validate`: params.yaml -> models/params.valid, before any other stage runs.

Every stage is downstream of this one, so a mistyped `dvc exp run -S ...` fails here, before
DVC deletes any other stage's outputs. The output is the same for every valid params.yaml.
"""

from __future__ import annotations

import sys

from common import run_stage, stage_parser

from rcskd.io import write_json_atomic
from rcskd.steps.validate import VALID_STAMP, validate_params


def main(argv: list[str] | None = None) -> int:
    args = stage_parser(__doc__, "--out").parse_args(argv)

    def body(params) -> None:
        validate_params(args.params)
        write_json_atomic(args.out, VALID_STAMP)

    return run_stage("validate", args.params, body, outputs=(args.out,))


if __name__ == "__main__":
    sys.exit(main())
