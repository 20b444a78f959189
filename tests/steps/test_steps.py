"""Each pipeline step in-process on tiny phantom data (seconds each): what it returns and saves,
that only evaluate reads the test split, and that a new baseline is one loss and one entry."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest
import torch

from rcskd.config import params_from_dict
from rcskd.data.dataset import load_meta
from rcskd.distill.losses import DistillLoss, TermConfig
from rcskd.io import write_json_atomic
from rcskd.models import load_checkpoint
from rcskd.registry import LOSSES
from rcskd.roles import PRUNED, STUDENT, STUDENT_TKD, TEACHER
from rcskd.steps.distill import run_distill
from rcskd.steps.evaluate import evaluate_models
from rcskd.steps.prepare import run_prepare
from rcskd.steps.prune import finetune_ratios, run_prune
from rcskd.steps.report import ReportSources, make_report
from rcskd.steps.teacher import train_teacher
from rcskd.train import RunOptions
from tests.repo_copy import TINY as REPO_TINY

# The pipeline tests' tiny settings, with one baseline and RC-SKD's methods at their defaults.
TINY = {
    "seed": 0,
    **{k: v for k, v in REPO_TINY.items() if k != "distill"},
    "distill": {
        "train": REPO_TINY["distill"]["train"],
        "baselines": ["kd"],
        "methods": {"tkd_ca": {"tkd_ca": {}}, "dkd_sg": {"dkd_sg": {}}, "kd": {"kd": {}}},
    },
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """Prepare, teacher, prune, TKD-CA, DKD-SG and one baseline, in-process, once."""
    root = tmp_path_factory.mktemp("steps")
    params = params_from_dict(TINY)
    prepared = run_prepare(params, root / "prepared", show_progress=False)
    quiet = RunOptions(show_progress=False)
    teacher = train_teacher(params, prepared.out_dir, root / "teacher.pt", quiet)
    pruned = run_prune(params, prepared.out_dir, teacher.checkpoint, root / "pruned.pt",
                       quiet)  # fmt: skip
    tkd = run_distill(params, "tkd_ca", prepared.out_dir, teacher.checkpoint, pruned.checkpoint,
                      root / "student_tkd.pt", quiet)  # fmt: skip
    final = run_distill(params, "dkd_sg", prepared.out_dir, teacher.checkpoint, tkd.checkpoint,
                        root / "student.pt", quiet)  # fmt: skip
    return root, params, {"prepare": prepared, "teacher": teacher, "prune": pruned,
                          "tkd_ca": tkd, "dkd_sg": final}  # fmt: skip


def test_prepare_returns_the_cache_and_records_the_input_contract(run_dir):
    _, _, results = run_dir
    prepared = results["prepare"]
    meta = load_meta(prepared.out_dir)
    assert prepared.manifest.is_file() and prepared.duplicates.is_file()
    assert prepared.summary["images_read"] == 32 and meta["crop_border"] is True
    assert meta["dicom"] == {"window": "auto", "center": 40.0, "width": 400.0}


def test_teacher_saves_a_typed_checkpoint_and_reports_validation_only(run_dir):
    root, _, results = run_dir
    result = results["teacher"]
    checkpoint = load_checkpoint(result.checkpoint)
    assert checkpoint.provenance["role"] == TEACHER.name
    assert checkpoint.inputs.classes == load_meta(root / "prepared")["classes"]
    assert checkpoint.inputs.shape == (1, 32, 32) and len(checkpoint.inputs.mean) == 1
    assert result.summary["epochs_run"] == 2 == len(result.history)
    assert 0 <= result.summary["val_acc"] <= 1
    assert not any("test" in key for key in result.summary)


def test_teacher_refine_phase_trains_on_from_the_first_phase_and_resumes_past_it(
    run_dir, tmp_path, monkeypatch
):
    """teacher.refine: a second phase continues from phase 1's best weights with its own
    schedule; the curve counts epochs on; a run killed in phase 2 does not redo phase 1."""
    root, params, results = run_dir
    refine = {"epochs": 2, "batch_size": 8, "lr": 1e-3, "precision": "fp32"}
    two = params_from_dict({**TINY, "teacher": {**TINY["teacher"], "refine": refine}})
    seen: list[dict] = []
    run = RunOptions(tmp_path / "r.pt", on_epoch=seen.append, show_progress=False)
    result = train_teacher(two, root / "prepared", tmp_path / "t.pt", run)
    assert [r["epoch"] for r in result.history] == [1, 2, 3, 4]
    assert [r["phase"] for r in result.history] == [1, 1, 2, 2]
    assert [r["epoch"] for r in seen] == [1, 2, 3, 4]  # MLflow steps count on too
    assert result.summary["phases"] == 2 and result.summary["epochs_run"] == 4
    # phase 1 is the one-phase teacher: same settings, same seed, same first two epochs
    for mine, alone in zip(result.history[:2], results["teacher"].history, strict=True):
        assert mine["val_acc"] == alone["val_acc"]
    assert not list(tmp_path.glob("r.pt*"))  # no resume state left behind
    # killed in phase 2: the rerun takes phase 1's saved result instead of training it again
    import rcskd.steps.teacher as teacher_step

    real, calls = teacher_step.train_and_save, []

    def killed_in_phase_2(*args, **kwargs):
        calls.append(args[5].desc)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(teacher_step, "train_and_save", killed_in_phase_2)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(two, root / "prepared", tmp_path / "k.pt", run)
    assert (tmp_path / "r.pt.phase1.done").is_file()
    calls.clear()
    monkeypatch.setattr(teacher_step, "train_and_save", lambda *a, **k: calls.append(a[5].desc)
                        or real(*a, **k))  # fmt: skip
    again = train_teacher(two, root / "prepared", tmp_path / "k.pt", run)
    assert calls == ["teacher phase 2"]
    assert [r["epoch"] for r in again.history] == [1, 2, 3, 4]
    assert [r["val_acc"] for r in again.history[:2]] == [r["val_acc"] for r in result.history[:2]]


def test_prune_meets_the_budget_and_keeps_the_input_contract(run_dir):
    _, params, results = run_dir
    result = results["prune"]
    pruned = load_checkpoint(result.checkpoint)
    teacher = load_checkpoint(results["teacher"].checkpoint)
    assert result.summary["budget_met"]
    assert abs(result.summary["achieved_params_ratio"] - params.prune.budget) <= 0.02
    assert pruned.inputs == teacher.inputs and pruned.provenance["role"] == PRUNED.name
    assert set(result.ratios) == {f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)}
    assert {row["method"] for row in result.search_history} == {"ddpg", "cem", "random", "uniform"}
    assert not any("test" in key for key in result.summary)


def test_finetune_ratios_refits_the_search_result_without_a_search(run_dir, tmp_path):
    """The prune step's second half alone: the same ratios and seed give the prune step's
    student bit for bit; another fine-tune seed gives the same shape with other weights."""
    root, params, results = run_dir
    pruned = results["prune"]
    quiet = RunOptions(show_progress=False)
    same, params_ratio, _ = finetune_ratios(params, root / "prepared", root / "teacher.pt",
                                            pruned.ratios, tmp_path / "same.pt", quiet)  # fmt: skip
    assert round(params_ratio, 6) == pruned.summary["achieved_params_ratio"]
    reference = load_checkpoint(pruned.checkpoint).model.state_dict()
    refit = load_checkpoint(same.checkpoint).model.state_dict()
    assert all(torch.equal(reference[k], refit[k]) for k in reference)
    other = dataclasses.replace(params, seed=1)
    moved, _, _ = finetune_ratios(other, root / "prepared", root / "teacher.pt", pruned.ratios,
                                  tmp_path / "seed1.pt", quiet)  # fmt: skip
    weights = load_checkpoint(moved.checkpoint).model.state_dict()
    assert {k: v.shape for k, v in weights.items()} == {k: v.shape for k, v in reference.items()}
    assert not all(torch.equal(reference[k], weights[k]) for k in reference)


def test_distillation_chains_from_the_tkd_student_and_saves_no_adapter(run_dir):
    _, _, results = run_dir
    final = load_checkpoint(results["dkd_sg"].checkpoint)
    assert final.provenance["initialised_from"].endswith(f"{STUDENT_TKD.name}.pt")
    assert final.provenance["role"] == "dkd_sg" and final.inputs.classes
    assert results["dkd_sg"].summary["terms"] == {"ce": 1.0, "dkd_sg": 5.0}
    assert results["tkd_ca"].summary["terms"] == {"ce": 1.0, "tkd_ca": 10.0}  # the default
    assert "train_tkd_ca" in results["tkd_ca"].history[0]
    assert not any("test" in key for key in results["dkd_sg"].summary)


def test_evaluate_scores_every_model_on_the_test_split_and_orders_the_table(run_dir):
    root, params, _ = run_dir
    paths = [root / f"{r.name}.pt" for r in (TEACHER, PRUNED, STUDENT_TKD, STUDENT)]
    result = evaluate_models(params, root / "prepared", paths, log=lambda _: None)
    test_size = load_meta(root / "prepared")["counts"]["test"]["total"]
    assert [row["model"] for row in result.comparison] == [p.stem for p in paths]
    assert all(report["n"] == test_size for report in result.reports.values())
    assert f"{STUDENT.name}_gradcam.png" in result.figures
    assert "RC-SKD (TKD-CA -> DKD-SG)" in result.table


def test_report_is_built_from_the_files_it_is_given(run_dir, tmp_path):
    root, _, results = run_dir
    write_json_atomic(tmp_path / "prepare.json", results["prepare"].summary)
    page = make_report(ReportSources(root / "prepared", tmp_path / "prepare.json"))
    assert page.startswith("<!doctype html>") and '<section id="pareto">' in page
    assert "no comparison yet" in page.lower()  # none was given


@dataclass(frozen=True)
class ZeroLogitConfig(TermConfig):
    """A throwaway loss's settings: a weight and one knob."""

    weight: float = 0.5
    scale: float = field(default=2.0)


class ZeroLogitLoss(DistillLoss):
    """A throwaway baseline: pulls the student's logits towards the teacher's, times `scale`."""

    Config = ZeroLogitConfig

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    @classmethod
    def from_config(cls, cfg: ZeroLogitConfig, shapes) -> ZeroLogitLoss:
        return cls(cfg.scale)

    def forward(self, s, t, labels):
        return self.scale * (s.logits - t.logits).pow(2).mean()


def test_a_new_baseline_is_one_registered_loss_and_one_params_entry(run_dir, monkeypatch):
    """No list, if-chain or stage script changes: register the loss, name it in params."""
    root, params, results = run_dir
    monkeypatch.setitem(LOSSES._entries, "logit_match", ZeroLogitLoss)  # as its file would
    raw = {**TINY, "distill": {**TINY["distill"], "baselines": ["kd", "logit_match"]}}
    raw["distill"]["methods"] = {**TINY["distill"]["methods"],
                                 "logit_match": {"logit_match": {"scale": 3.0}}}  # fmt: skip
    params = params_from_dict(raw)
    out = root / "baselines" / "logit_match.pt"
    result = run_distill(params, "logit_match", root / "prepared", results["teacher"].checkpoint,
                         results["prune"].checkpoint, out,
                         RunOptions(show_progress=False))  # fmt: skip
    assert result.summary["terms"] == {"ce": 1.0, "logit_match": 0.5}
    assert "train_logit_match" in result.history[0]
    evaluation = evaluate_models(params, root / "prepared", [root / "teacher.pt", out],
                                 log=lambda _: None)  # fmt: skip
    assert [row["model"] for row in evaluation.comparison] == ["teacher", "logit_match"]
    import shutil

    import yaml

    from tests.test_dvc_deps import REPO, stages

    repo = root / "repo"
    repo.mkdir()
    shutil.copy(REPO / "dvc.yaml", repo)
    (repo / "params.yaml").write_text(yaml.safe_dump(raw))
    stage = stages(repo)["distill_baseline@logit_match"]  # dvc.yaml unchanged: its foreach
    assert "--method logit_match" in stage["cmd"]
    assert "distill.methods.logit_match" in stage["params"]


def test_a_checkpoint_of_format_1_still_loads_with_its_inputs(tmp_path):
    from rcskd.models import ModelSpec, build_model
    from rcskd.models.spec import spec_of

    spec = ModelSpec("resnet20", 4, 1, 0.25)
    model = build_model(spec)
    old = {
        "format": "rcskd-checkpoint/1",
        "spec": dataclasses.asdict(spec_of(model, spec)),
        "state_dict": model.state_dict(),
        "extra": {"classes": list("abcd"), "image_size": 32, "channels": 1, "role": "teacher",
                  "preprocess": {"mean": [0.2], "std": [0.3]}, "crop_border": False},
    }  # fmt: skip
    torch.save(old, tmp_path / "old.pt")
    checkpoint = load_checkpoint(tmp_path / "old.pt")
    assert checkpoint.inputs.classes == list("abcd") and checkpoint.inputs.crop_border is False
    assert checkpoint.inputs.mean == [0.2] and checkpoint.provenance == {"role": "teacher"}
