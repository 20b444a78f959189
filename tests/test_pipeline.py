"""`dvc repro` on a temporary copy of the repository, at tiny size: catches a broken pipeline.

Every stage joins this test as it lands.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "data": {"phantom": {"patients": 16, "slices_per_patient": 2, "size": 48}},
    "prepare": {"image_size": 32},
    "teacher": {"width": 0.25, "train": {"epochs": 2, "batch_size": 8}},
    "prune": {
        "agent": {"episodes": 3, "warmup_episodes": 1, "batch_size": 4, "hidden": 8},
        "proxy": {"calib_images": 8, "eval_images": 8},
        "finetune": {"epochs": 1, "batch_size": 8},
    },
    "distill": {"train": {"epochs": 1, "batch_size": 8}},
    "evaluate": {"bootstrap": 50, "gradcam_per_class": 1, "latency": {"repeats": 2}},
}


def run(cmd, cwd, env):
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{cmd} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout + result.stderr


def merge(base: dict, update: dict) -> None:
    """Deep-merge `update` into `base`."""
    for key, value in update.items():
        if isinstance(value, dict):
            merge(base[key], value)
        else:
            base[key] = value


@pytest.fixture(scope="module")
def repo_copy(tmp_path_factory):
    """Tracked (and new, not ignored) files of the repo in a fresh git repository."""
    dest = tmp_path_factory.mktemp("pipeline") / "repo"
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in listed:
        src = REPO / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, TINY)
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{dest / 'test-mlflow.db'}"
    env["GIT_AUTHOR_NAME"] = env["GIT_COMMITTER_NAME"] = "test"
    env["GIT_AUTHOR_EMAIL"] = env["GIT_COMMITTER_EMAIL"] = "test@example.com"
    run(["git", "init", "-q"], dest, env)
    run(["git", "add", "-A"], dest, env)
    run(["git", "commit", "-qm", "copy"], dest, env)
    first = run([str(BIN / "dvc"), "repro"], dest, env)
    return dest, env, first


def test_repro_builds_the_prepared_cache(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'prepare'" in log
    report = json.loads((dest / "reports" / "prepare.json").read_text())
    assert report["images_read"] == 32 and report["leakage_check"] == "passed"
    counts = report["counts"]
    assert sum(counts[s]["total"] for s in ("train", "val", "test")) == 32
    for split in ("train", "val", "test"):
        blob = torch.load(dest / "data" / "prepared" / f"{split}.pt", weights_only=True)
        assert blob["images"].shape[1:] == (1, 32, 32)
        assert len(blob["labels"]) == counts[split]["total"] > 0
    assert (dest / "data" / "prepared" / "manifest.csv").is_file()
    assert "data/prepared" in (dest / "dvc.lock").read_text()


def test_repro_trains_the_teacher_and_evaluates_it(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'teacher'" in log and "Running stage 'evaluate'" in log
    teacher = json.loads((dest / "reports" / "teacher.json").read_text())
    assert teacher["epochs_run"] == 2 and 0 <= teacher["test_acc"] <= 1
    curve = (dest / "reports" / "teacher_curve.csv").read_text().splitlines()
    assert curve[0].startswith("epoch,train_loss,train_ce,train_acc,lr,val_loss,val_acc")
    assert len(curve) == 3
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    m = metrics["teacher"]
    assert m["acc"] == pytest.approx(teacher["test_acc"], abs=1e-6)  # same model, same data
    assert m["acc_ci95_low"] <= m["acc"] <= m["acc_ci95_high"]
    assert m["params"] == teacher["params"] and m["flops"] == teacher["flops"] > 0
    assert m["latency_b1_ms"] > 0 and m["latency_b32_ms"] > 0
    assert {"sensitivity_glioma", "specificity_pituitary", "ece", "macro_auc"} <= set(m)
    plots = {p.name for p in (dest / "reports" / "plots").iterdir()}
    for model in ("teacher", "pruned"):
        assert {f"{model}_{kind}.png" for kind in ("confusion", "gradcam", "reliability")} <= plots
    detail = json.loads((dest / "reports" / "evaluation" / "teacher.json").read_text())
    assert sum(map(sum, detail["confusion_matrix"])) == detail["n"]
    assert "models/teacher.pt" in (dest / "dvc.lock").read_text()


def test_repro_prunes_the_teacher_to_the_budget(repo_copy):
    dest, _, log = repo_copy
    assert "Running stage 'prune'" in log
    report = json.loads((dest / "reports" / "prune.json").read_text())
    assert report["budget"] == 0.5 and report["budget_met"]
    assert abs(report["achieved_params_ratio"] - 0.5) <= 0.02
    assert set(report["search_scores"]) == {"ddpg", "random", "uniform"}
    search = (dest / "reports" / "prune_search.csv").read_text().splitlines()
    assert search[0] == "method,episode,reward,best_so_far" and len(search) == 1 + 3 + 3 + 1
    ratios = json.loads((dest / "reports" / "ratios.json").read_text())
    assert (
        set(ratios["chosen"])
        == set(ratios["uniform"])
        == {f"layer{i}.{j}" for i in (1, 2, 3, 4) for j in (0, 1)}
    )
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    assert metrics["pruned"]["params"] == report["params"]
    assert metrics["pruned"]["params"] < metrics["teacher"]["params"]


BASELINES = ["ce_only", "kd", "fitnet", "at", "sp", "rkd", "dist", "decoupled_kd"]


def test_repro_distils_every_method_and_compares_them(repo_copy):
    dest, _, log = repo_copy
    for stage in ["tkd_ca", "dkd_sg"] + [f"distill_baseline@{m}" for m in BASELINES]:
        assert f"Running stage '{stage}'" in log
    pruned = json.loads((dest / "reports" / "prune.json").read_text())
    for method in ["tkd_ca", "dkd_sg", *BASELINES]:
        report = json.loads((dest / "reports" / f"distill_{method}.json").read_text())
        assert report["method"] == method and report["epochs_run"] == 1
        assert report["params"] == pruned["params"]  # distillation never changes the student
        curve = (dest / "reports" / "curves" / f"distill_{method}.csv").read_text()
        assert "train_ce" in curve.splitlines()[0]
        if method != "ce_only":
            assert f"train_{method}" in curve.splitlines()[0]
    tkd = torch.load(dest / "models" / "student_tkd.pt", weights_only=True)
    final = torch.load(dest / "models" / "student.pt", weights_only=True)
    assert not any(k.startswith(("adapter", "losses")) for k in final["state_dict"])
    assert final["extra"]["initialised_from"] == "models/student_tkd.pt"
    assert any(not torch.equal(tkd["state_dict"][k], v) for k, v in final["state_dict"].items())
    metrics = json.loads((dest / "reports" / "metrics.json").read_text())
    assert {"teacher", "pruned", "student_tkd", "student", *BASELINES} == set(metrics)
    table = (dest / "reports" / "comparison.md").read_text()
    for label in ("teacher", "TKD-CA", "RC-SKD (TKD-CA -> DKD-SG)", "decoupled_kd", "ce_only"):
        assert f"| {label}" in table
    rows = json.loads((dest / "reports" / "comparison.json").read_text())["models"]
    assert [r["model"] for r in rows][:2] == ["teacher", "pruned"]
    assert [r["model"] for r in rows][-2:] == ["student_tkd", "student"]


def test_repro_writes_a_self_contained_report(repo_copy):
    import re

    dest, _, log = repo_copy
    assert "Running stage 'report'" in log
    page = (dest / "reports" / "report.html").read_text()
    sections = re.findall(r'<section id="([a-z]+)"', page)
    assert sections == [
        "data", "curves", "search", "comparison", "confusion", "calibration", "gradcam", "pareto"
    ]  # fmt: skip
    images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', page)
    assert len(images) >= 1 + 12 + 2 + 3 * 4 + 1  # samples, 12 curves, search, per model, pareto
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert "RC-SKD (TKD-CA -&gt; DKD-SG)" in page and "no comparison yet" not in page.lower()


def test_second_repro_does_nothing(repo_copy):
    dest, env, _ = repo_copy
    log = run([str(BIN / "dvc"), "repro"], dest, env)
    assert "Running stage" not in log
    assert "didn't change" in log or "up to date" in log


def test_stage_logged_params_and_metrics_to_mlflow(repo_copy):
    dest, env, _ = repo_copy
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rcskd")
    for stage in ("teacher", "prune", "tkd_ca", "dkd_sg", "distill_baseline.kd", "evaluate"):
        (run_,) = client.search_runs([experiment.experiment_id], f"tags.stage = '{stage}'")
        assert run_.data.metrics
    (teacher,) = client.search_runs([experiment.experiment_id], "tags.stage = 'teacher'")
    assert teacher.data.params["train.epochs"] == "2"
    history = client.get_metric_history(teacher.info.run_id, "val_acc")
    assert [m.step for m in history] == [1, 2]  # one point per epoch
    assert teacher.data.metrics["summary.test_acc"] >= 0
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'prepare'")
    assert len(runs) == 1
    run_ = runs[0]
    assert run_.data.params["prepare.image_size"] == "32"
    assert run_.data.metrics["counts.test.total"] > 0
    assert len(run_.data.tags["git_commit"]) == 40
    artifacts = {a.path for a in client.list_artifacts(run_.info.run_id)}
    assert {"prepare.json", "manifest.csv", "duplicates.csv"} <= artifacts
    # evaluate names its data, which is how the report picks comparable runs
    (evaluate,) = client.search_runs([experiment.experiment_id], "tags.stage = 'evaluate'")
    meta = json.loads((dest / "data" / "prepared" / "meta.json").read_text())
    assert evaluate.data.tags["data_fingerprint"] == meta["fingerprint"]


def test_bad_params_fail_the_stage_with_a_clear_message(repo_copy):
    dest, env, _ = repo_copy
    bad = dest.parent / "bad-params.yaml"
    bad.write_text((dest / "params.yaml").read_text().replace("image_size: 32", "image_sise: 32"))
    out = dest.parent / "x"
    result = subprocess.run(
        [sys.executable, "stages/prepare.py", "--params", str(bad), "--out", str(out)],
        cwd=dest,
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown key 'prepare.image_sise'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_killed_teacher_stage_resumes_where_it_stopped(repo_copy, tmp_path):
    """SIGKILL the stage after its first epoch checkpoint, run it again: it continues."""
    import signal
    import time

    dest, env, _ = repo_copy
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, {"teacher": {"train": {"epochs": 4}}})
    custom = tmp_path / "params.yaml"
    custom.write_text(yaml.safe_dump(params, sort_keys=False))
    resume = tmp_path / "resume.pt"
    cmd = [
        sys.executable, "stages/teacher.py", "--params", str(custom), "--resume", str(resume),
        "--out", str(tmp_path / "t.pt"), "--report", str(tmp_path / "t.json"),
        "--curve", str(tmp_path / "t.csv"),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=dest, env=env, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not resume.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert resume.exists(), "no resume checkpoint appeared"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "t.pt").exists()  # nothing half-written
    run(cmd, dest, env)
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["resumed_from_epoch"] >= 1 and report["epochs_run"] == 4
    assert not resume.exists()
