"""DVC stage `tkd_ca`: pruned student -> models/student_tkd.pt (TKD-CA distillation)."""

from __future__ import annotations

import sys

from distill_common import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("tkd_ca", "tkd_ca", "models/pruned.pt", "models/student_tkd.pt", None))
