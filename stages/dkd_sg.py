"""DVC stage `dkd_sg`: TKD-CA student -> models/student.pt (DKD-SG; RC-SKD's last step).

With `distill.dkd.with_tkd: true` both losses train at once, starting from the pruned model.
"""

from __future__ import annotations

import sys

from distill_common import stage_main


def starting_point(params) -> str:
    """The paper's multi-stage order, unless both losses train together."""
    return "models/pruned.pt" if params.distill.dkd.with_tkd else "models/student_tkd.pt"


if __name__ == "__main__":
    sys.exit(stage_main("dkd_sg", "dkd_sg", starting_point, "models/student.pt", None))
