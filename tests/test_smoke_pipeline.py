"""A fast 3-stage smoke pipeline: `dvc repro prune` (prepare, teacher, prune) at tiny size in a
copy of the repository; stage faults on its outputs. The whole pipeline is tests/test_pipeline.py
(slow)."""

import json
import subprocess
import sys

import pytest
import torch
import yaml

from tests.repo_copy import BIN, kill_processes_mentioning, merge, run


@pytest.fixture(scope="module")
def repo_copy(smoke_repo):
    return smoke_repo


def test_the_first_three_stages_run_and_write_their_outputs(repo_copy):
    dest, _, log = repo_copy
    for stage in ("prepare", "teacher", "prune"):
        assert f"Running stage '{stage}'" in log
    assert "Running stage 'tkd_ca'" not in log
    report = json.loads((dest / "reports" / "prepare.json").read_text())
    assert report["images_read"] == 32 and report["leakage_check"] == "passed"
    meta = json.loads((dest / "data" / "prepared" / "meta.json").read_text())
    assert meta["crop_border"] is True and meta["dicom"]["window"] == "auto"
    teacher = json.loads((dest / "reports" / "teacher.json").read_text())
    assert teacher["epochs_run"] == 2 and "test_acc" not in teacher
    prune = json.loads((dest / "reports" / "prune.json").read_text())
    assert prune["budget_met"] and prune["params"] < teacher["params"]
    pruned = torch.load(dest / "models" / "pruned.pt", weights_only=True)
    assert pruned["inputs"]["classes"] == meta["classes"] and pruned["inputs"]["image_size"] == 32
    assert pruned["provenance"]["role"] == "pruned" and pruned["provenance"]["ratios"]


def test_second_repro_of_the_same_stages_does_nothing(repo_copy):
    dest, env, _ = repo_copy
    log = run([str(BIN / "dvc"), "repro", "prune"], dest, env)
    assert "Running stage" not in log


def test_bad_params_fail_the_stage_with_a_clear_message(repo_copy):
    dest, env, _ = repo_copy
    bad = dest.parent / "bad-params.yaml"
    bad.write_text((dest / "params.yaml").read_text().replace("image_size: 32", "image_sise: 32"))
    out = dest.parent / "x"
    result = subprocess.run(
        [
            sys.executable,
            "stages/prepare.py",
            "--params",
            str(bad),
            "--data-root",
            "rcskd",
            "--out",
            str(out),
            "--report",
            str(out) + ".json",
        ],  # fmt: skip
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
    merge(params, {"teacher": {"train": {"epochs": 6}}})
    custom = tmp_path / "params.yaml"
    custom.write_text(yaml.safe_dump(params, sort_keys=False))
    resume = tmp_path / "resume.pt"
    cmd = [
        sys.executable, "stages/teacher.py", "--params", str(custom), "--resume", str(resume),
        "--prepared", "data/prepared",
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
    assert report["resumed_from_epoch"] >= 1 and report["epochs_run"] == 6
    assert not resume.exists()


def _mlflow_runs(env, stage: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rcskd")
    query = f"tags.stage = '{stage}' and attributes.status = 'FINISHED'"
    return len(client.search_runs([experiment.experiment_id], query))


def test_teacher_trains_on_two_processes_writes_once_and_resumes_after_a_kill(repo_copy, tmp_path):
    """distributed.nproc_per_node: 2 -> the stage relaunches itself with torchrun (gloo on
    the CPU); rank 0 alone writes; a kill after an epoch resumes under DDP."""
    import time

    dest, env, _ = repo_copy
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, {"distributed": {"nproc_per_node": 2}, "teacher": {"train": {"epochs": 6}}})
    custom = tmp_path / "params.yaml"
    custom.write_text(yaml.safe_dump(params, sort_keys=False))
    resume, out = tmp_path / "resume.pt", tmp_path / "t.pt"
    cmd = [
        sys.executable, "stages/teacher.py", "--params", str(custom), "--resume", str(resume),
        "--prepared", "data/prepared", "--out", str(out), "--report", str(tmp_path / "t.json"),
        "--curve", str(tmp_path / "t.csv"),
    ]  # fmt: skip
    runs_before = _mlflow_runs(env, "teacher")
    proc = subprocess.Popen(cmd, cwd=dest, env=env, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while not resume.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert resume.exists(), "no resume checkpoint appeared"
    kill_processes_mentioning(str(custom))  # the launcher and both workers (own sessions)
    proc.wait()
    assert not out.exists()
    log = run(cmd, dest, env)
    assert "torch.distributed" not in log or "error" not in log.lower()
    report = json.loads((tmp_path / "t.json").read_text())
    assert report["resumed_from_epoch"] >= 1 and report["epochs_run"] == 6
    assert torch.load(out, weights_only=True)["provenance"]["role"] == "teacher"
    assert len(list(tmp_path.glob("t.pt*"))) == 1 and not resume.exists()
    # two processes trained, one run was logged (the killed attempt's never finished)
    assert _mlflow_runs(env, "teacher") - runs_before == 1


def test_a_latency_budget_prunes_to_the_milliseconds_of_the_measured_table(repo_copy, tmp_path):
    """prune.resource: latency: the latency_table stage measures the teacher's blocks on this
    machine, the prune stage meets the budget in predicted milliseconds."""
    dest, env, _ = repo_copy
    stub = json.loads((dest / "models" / "latency_table.json").read_text())
    assert stub == {"skipped": "prune.resource is params"}  # the default costs no time
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, {"prune": {"resource": "latency", "latency_table": {"repeats": 5},
                             "compare_baselines": False}})  # fmt: skip
    custom = tmp_path / "params.yaml"
    custom.write_text(yaml.safe_dump(params, sort_keys=False))
    table = tmp_path / "table.json"
    run([sys.executable, "stages/latency_table.py", "--params", str(custom),
         "--teacher", "models/teacher.pt", "--out", str(table)], dest, env)  # fmt: skip
    measured = json.loads(table.read_text())
    assert measured["blocks"] and measured["whole_ms"] > 0
    # a tiny model is mostly fixed overhead (pruning every block by 0.8 keeps ~0.77 of its time
    # here): aim halfway between what the measured table can reach and the whole model
    floor = (measured["rest_ms"] + sum(r[1] for r in measured["blocks"].values())) / sum(
        [measured["rest_ms"], *(r[-1] for r in measured["blocks"].values())]
    )
    budget = round((1 + floor) / 2, 3)
    merge(params, {"prune": {"budget": budget}})
    custom.write_text(yaml.safe_dump(params, sort_keys=False))
    out = tmp_path / "p"
    run([sys.executable, "stages/prune.py", "--params", str(custom), "--prepared",
         "data/prepared", "--teacher", "models/teacher.pt", "--latency-table", str(table),
         "--out", str(out / "m.pt"), "--resume", str(out / "r.pt"), "--ratios",
         str(out / "ratios.json"), "--report", str(out / "r.json"), "--search-log",
         str(out / "s.csv"), "--curve", str(out / "c.csv")], dest, env)  # fmt: skip
    report = json.loads((out / "r.json").read_text())
    assert report["resource"] == "latency" and report["budget_met"]
    assert abs(report["achieved_latency_ratio"] - budget) <= 0.02


def test_a_bad_value_fails_in_validate_before_dvc_deletes_any_output(repo_copy):
    """`validate` runs first, so a typo costs nothing: the teacher's outputs stay, and once
    params.yaml is put back the next repro reruns `validate` alone (same stamp)."""
    dest, env, _ = repo_copy
    params = dest / "params.yaml"
    original = params.read_text()
    kept = {p: (dest / p).read_bytes() for p in ("models/teacher.pt", "reports/teacher.json")}
    params.write_text(original.replace("arch: resnet18", "arch: resnet19", 1))
    try:
        failed = subprocess.run([str(BIN / "dvc"), "repro", "prune"], cwd=dest, env=env,
                                capture_output=True, text=True)  # fmt: skip
    finally:
        params.write_text(original)
    assert failed.returncode != 0
    assert "teacher.arch: unknown architecture 'resnet19'" in failed.stdout + failed.stderr
    assert "Running stage 'teacher'" not in failed.stdout
    assert {p: (dest / p).read_bytes() for p in kept} == kept
    log = run([str(BIN / "dvc"), "repro", "prune"], dest, env)
    # DVC restores validate's stamp from its cache (or reruns it): nothing else runs
    assert "Stage 'validate' is cached" in log or "Running stage 'validate'" in log
    assert "Running stage 'prepare'" not in log and "Running stage 'teacher'" not in log
