"""The documented real-data experiment (benchmarks/brain4_experiment.py): its `dvc exp run -S`
overrides, applied to params.yaml as DVC applies them, give valid params that are the
benchmarks' protocol (a strong teacher, the benchmark's pruning and distillation settings)."""

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from dvc.utils.hydra import apply_overrides

from rcskd.config import params_from_dict

REPO = Path(__file__).resolve().parents[1]


def test_printed_line_is_a_valid_protocol_experiment(tmp_path):
    out = subprocess.run(
        [sys.executable, "benchmarks/brain4_experiment.py"],
        cwd=REPO, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    command = shlex.split(out)
    assert command[:5] == ["dvc", "exp", "run", "-n", "brain4-64"]
    # applied to a copy of params.yaml by DVC's own `-S` code
    copy = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", copy)
    values = command[6::2]
    assert command[5::2] == ["-S"] * len(values)
    apply_overrides(str(copy), values)
    params = params_from_dict(yaml.safe_load(copy.read_text()), source="test")
    assert params.data.source == "imagefolder"
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_common import BRAIN4

    assert params.data.root == os.path.relpath(BRAIN4, REPO)  # beside the repo, or RCSKD_BRAIN4
    # the benchmarks' teacher: the published width, SGD, 20 epochs, balanced classes
    assert (params.teacher.width, params.teacher.train.optimizer) == (1.0, "sgd")
    assert params.teacher.train.epochs == 20 and params.teacher.train.balanced_sampling
    # ... and the recipe the teacher benchmark chose on validation, second phase included
    from bench_common import load_results
    from teacher_brain4 import OUT, RECIPES, chosen_recipe

    recipe = RECIPES[chosen_recipe(load_results(OUT))]
    assert params.teacher.refine.epochs == recipe.get("refine", {}).get("epochs", 0)
    # the search and fine-tune whose start the distillation benchmark measured
    assert (params.prune.budget, params.prune.max_ratio, params.prune.search) == (0.5, 0.9, "ddpg")
    assert params.prune.finetune.epochs == 3
    # the distillation weights chosen on validation by distill_brain4.py --select
    tkd = params.distill.methods["tkd_ca"]["tkd_ca"]
    assert (tkd["weight"], tkd["kappa"], tkd["taps"]) == (10.0, 0.5, {"stage3": 1.0})
    assert params.distill.methods["dkd_sg"]["dkd_sg"]["weight"] == 5.0
    # the length the patient benchmark found worth its time, per stage
    from brain4_experiment import distill_epochs

    assert params.distill.train.epochs == distill_epochs() >= 4


def _row(method, epochs, loss, budget=0.05, start="ddpg"):
    return {"method": method, "epochs": epochs, "val_loss_mean": loss, "budget": budget,
            "start": start}  # fmt: skip


def test_worth_length_is_chosen_on_validation_by_the_cut_rule():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from patient_report import worth_length

    summary = [
        _row("ce_only", 4, 0.110), _row("kd", 4, 0.100),
        _row("ce_only", 16, 0.060), _row("kd", 16, 0.070),   # best cut by 40%: worth it
        _row("ce_only", 64, 0.058), _row("kd", 64, 0.056),   # cut by 7%: not worth 4x
        _row("ce_only", 256, 0.001),                          # incomplete: kd missing
        _row("kd", 16, 0.001, budget=0.2),                    # another budget: ignored
        _row("ce_only", 64, 0.001, start="uniform"),          # another start: ignored
    ]  # fmt: skip
    worth = worth_length({"summary": summary})
    assert worth["epochs"] == 16 and worth["budget"] == 0.05
    assert worth["best_val_loss"] == {4: 0.100, 16: 0.060, 64: 0.056}
    assert worth["still_falling"] is False  # the rule stopped before the longest length
    # a step that cuts enough after one that did not is not taken: the curve has flattened
    summary.append(_row("kd", 256, 0.001))
    assert worth_length({"summary": summary})["epochs"] == 16
    # a longer length that keeps cutting is taken; a run without a validation loss does not count
    falling = [_row("ce_only", e, v) for e, v in ((4, 0.10), (16, 0.08), (64, 0.07))]
    assert worth_length({"summary": falling})["epochs"] == 64
    # ... and then the curve has not been seen to flatten: the result says so
    assert worth_length({"summary": falling})["still_falling"] is True
    assert worth_length({"summary": falling[:1]})["still_falling"] is False  # one length only
    unmeasured = falling + [_row("kd", 4, 0.2), _row("kd", 16, 0.15), _row("kd", 64, 0.0)]
    del unmeasured[-1]["val_loss_mean"]
    assert worth_length({"summary": unmeasured})["epochs"] == 16
    assert worth_length({"summary": []}) is None


def test_the_patient_page_says_when_the_curve_still_falls():
    sys.path.insert(0, str(REPO / "benchmarks"))
    from patient_report import markdown

    results = json.loads((REPO / "reports/bench/patient_brain4.json").read_text())
    results["worth_length"] = {"epochs": 64, "budget": 0.05, "min_cut": 0.1,
                               "best_val_loss": {4: 0.08, 16: 0.05, 64: 0.04}}  # fmt: skip
    assert "still falls" not in markdown(results)
    results["worth_length"]["still_falling"] = True
    assert "still falls at the longest length measured" in markdown(results)
