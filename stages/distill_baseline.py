"""DVC stage `distill_baseline@METHOD`: pruned student -> models/baselines/METHOD.pt.

Usage: python stages/distill_baseline.py METHOD   (ce_only, kd, fitnet, at, sp, rkd, dist,
decoupled_kd); dvc.yaml runs one stage per entry of `distill.baselines`.
"""

from __future__ import annotations

import sys

from distill_common import stage_main

if __name__ == "__main__":
    sys.exit(
        stage_main(
            "distill_baseline",
            lambda args: args.method,
            "models/pruned.pt",
            "models/baselines/{method}.pt",
            None,
            extra_args=lambda parser: parser.add_argument("method"),
        )
    )
