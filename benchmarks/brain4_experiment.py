"""The brain4-64 protocol as one DVC experiment: the pipeline on Brain-4 with the benchmarks'
teacher, pruning and distillation settings, where the teacher is clearly stronger than its
pruned student (reports/bench/teacher_brain4.md, prune_brain4.md).

    python benchmarks/brain4_experiment.py          # print the `dvc exp run` line
    python benchmarks/brain4_experiment.py --run    # run it (make brain4)

The overrides come from the benchmark scripts' own settings (one source of truth): the data of
`brain4_params`, the teacher recipe teacher_brain4.py chose on validation, prune_brain4.py's
recorded search settings, distill_brain4.py's learning rate and the TKD-CA / DKD-SG weights it
chose on validation, and the distillation length patient_brain4.py found worth its time (chosen
on validation). Every distillation stage trains that many epochs: the baselines and the joint
variant once, the two-stage RC-SKD twice (TKD-CA, then DKD-SG), so it never gets fewer epochs
than the students it is compared with.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
from typing import Any

from bench_common import BRAIN4, REPO, load_results
from patient_brain4 import OUT as PATIENT_OUT
from patient_report import summarise, worth_length
from prune_brain4 import OUT as PRUNE_OUT
from teacher_brain4 import OUT as TEACHER_OUT
from teacher_brain4 import RECIPES, chosen_recipe

DISTILL_OUT = REPO / "reports" / "bench" / "distill_brain4.json"
NAME = "brain4-64"


def distill_epochs() -> int:
    """Epochs per distillation stage: the patient benchmark's length worth its time, else (no
    patient results yet) the short benchmark's 4."""
    patient = load_results(PATIENT_OUT)
    if patient.get("runs"):
        summarise(patient)
        worth = worth_length(patient)
        if worth:
            return int(worth["epochs"])
    return int(load_results(DISTILL_OUT).get("settings", {}).get("epochs", 4))


def protocol_sections() -> dict[str, Any]:
    """params.yaml sections (partial) of the brain4-64 protocol, as the benchmarks ran it."""
    prune = load_results(PRUNE_OUT).get("settings", {})
    distill = load_results(DISTILL_OUT)
    chosen = distill.get("selection", {})
    methods = {name: {name: chosen[name]} for name in ("tkd_ca", "dkd_sg") if name in chosen}
    return {
        "data": {"source": "imagefolder", "root": os.path.relpath(BRAIN4, REPO)},
        "prepare": {"image_size": 64, "channels": 1},
        "teacher": RECIPES[chosen_recipe(load_results(TEACHER_OUT))],
        "prune": {
            "budget": 0.5,
            "max_ratio": prune.get("max_ratio", 0.9),
            "search": "ddpg",
            "agent": {"episodes": prune.get("episodes", 60)},
            "finetune": {"epochs": prune.get("finetune_epochs", 3), "balanced_sampling": True},
        },
        "distill": {
            "train": {"epochs": distill_epochs(), "balanced_sampling": True, "lr": 5e-4},
            "methods": methods,
        },
    }


def flatten(section: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Dotted keys of a nested dict; a dict under `methods` or `taps` stays one value (it is
    data: its keys are names, not settings)."""
    out = []
    for key, value in section.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value and key not in ("taps",):
            out += flatten(value, f"{dotted}.")
        else:
            out.append((dotted, value))
    return out


def hydra_value(value: Any) -> str:
    """A value in the override grammar DVC's `-S` parses (Hydra's: `{a: 1}`, `[1, 2]`,
    `true`); names and numbers go bare."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {hydra_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(hydra_value(v) for v in value) + "]"
    return str(value)


def overrides() -> list[str]:
    """`-S key=value` arguments of `dvc exp run`."""
    args = []
    for key, value in flatten(protocol_sections()):
        args += ["-S", f"{key}={hydra_value(value)}"]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run", action="store_true", help="run the experiment now")
    args = parser.parse_args()
    command = ["dvc", "exp", "run", "-n", NAME, *overrides()]
    if not args.run:
        print(shlex.join(command))
        return
    if not BRAIN4.is_dir():
        raise SystemExit(f"the Brain-4 dataset is not at {BRAIN4}")
    raise SystemExit(subprocess.call(command, cwd=REPO))


if __name__ == "__main__":
    main()
