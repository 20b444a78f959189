"""Faults a real run meets, on the tiny pipeline's copy (see conftest.smoke_repo):

- SIGKILL of each training stage at a random point (teacher, prune search, prune fine-tune, a
  distillation), then a rerun: the same final model as an uninterrupted run (slow);
- a read-only output folder: one line, exit code 2, before any work, the old output intact;
- an MLflow server that does not answer: one line within 30 s, before any work;
- two queued experiments run at once (`dvc queue start -j 2`) sharing the SQLite store (slow).
"""

import ctypes
import json
import os
import random
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from tests.repo_copy import BIN, kill_processes_mentioning, merge, run

LONGER = {
    "teacher": {"train": {"epochs": 30}},
    "prune": {"agent": {"episodes": 6}, "finetune": {"epochs": 30}},
    "distill": {"train": {"epochs": 30}},
}


def custom_params(dest: Path, folder: Path, update: dict) -> Path:
    params = yaml.safe_load((dest / "params.yaml").read_text())
    merge(params, update)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def stage_command(stage: str, params: Path, out: Path) -> list[str]:
    """The stage's command line with every output under `out` (a folder)."""
    common = ["--params", str(params), "--prepared", "data/prepared", "--out", str(out / "m.pt"),
              "--resume", str(out / "resume.pt"), "--report", str(out / "r.json"),
              "--curve", str(out / "c.csv")]  # fmt: skip
    if stage == "teacher":
        return [sys.executable, "stages/teacher.py", *common]
    if stage == "prune":
        extra = ["--ratios", str(out / "ratios.json"), "--search-log", str(out / "s.csv")]
        return [sys.executable, "stages/prune.py", *common, "--teacher", "models/teacher.pt",
                "--latency-table", "models/latency_table.json",
                *extra]  # fmt: skip
    return [sys.executable, "stages/distill.py", *common, "--method", "tkd_ca",
            "--teacher", "models/teacher.pt", "--student", "models/pruned.pt"]  # fmt: skip


def kill_when(cmd: list[str], dest: Path, env: dict, ready, marker: str) -> None:
    """Start `cmd`, wait until `ready()` is true, SIGKILL it; fails if it finished first."""
    proc = subprocess.Popen(cmd, cwd=dest, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the stage finished before the kill point"
    kill_processes_mentioning(marker)
    proc.wait()


def journal_length(path: Path) -> int:
    try:
        return len(json.loads(path.read_text())["entries"])
    except (OSError, ValueError, KeyError):
        return 0


def same_weights(a: Path, b: Path) -> bool:
    sa, sb = (torch.load(p, weights_only=True)["state_dict"] for p in (a, b))
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


CASES = {  # kill point -> (stage, when to kill)
    "teacher": ("teacher", "epoch"),
    "prune search": ("prune", "search"),
    "prune fine-tune": ("prune", "epoch"),
    "distillation": ("distill", "epoch"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES)
def test_a_stage_killed_at_a_random_point_resumes_to_the_uninterrupted_model(
    smoke_repo, tmp_path, case
):
    dest, env, _ = smoke_repo
    stage, when = CASES[case]
    rng = random.Random(case)  # a random point, the same on every run of the suite
    params = custom_params(dest, tmp_path, LONGER)
    whole, broken = tmp_path / "whole", tmp_path / "broken"
    run(stage_command(stage, params, whole), dest, env)
    cmd = stage_command(stage, params, broken)
    if when == "search":
        k = rng.randint(2, 12)  # of 6 + 6 + 6 + 1 evaluations
        ready = lambda: journal_length(broken / "resume.pt.search.json") >= k  # noqa: E731
    else:
        delay = rng.uniform(0.0, 0.3)
        ready = lambda: (broken / "resume.pt").exists() and time.sleep(delay) is None  # noqa: E731
    kill_when(cmd, dest, env, ready, str(broken))
    assert not (broken / "m.pt").exists()  # nothing half-written
    run(cmd, dest, env)
    report = json.loads((broken / "r.json").read_text())
    if when == "search":
        assert report["search_candidates_replayed"] >= k
        ratios = [json.loads((d / "ratios.json").read_text()) for d in (whole, broken)]
        assert ratios[0] == ratios[1]
    else:
        assert report["resumed_from_epoch"] >= 1
    assert same_weights(whole / "m.pt", broken / "m.pt")
    assert not (broken / "resume.pt").exists()
    assert not (broken / "resume.pt.search.json").exists()


def _without_root_override() -> None:
    """In the child, before exec: as root, drop the capabilities that ignore file modes, so a
    read-only folder is read-only for the stage too."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2, 3):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_a_read_only_output_folder_is_one_line_before_any_work(smoke_repo, tmp_path):
    dest, env, _ = smoke_repo
    params = custom_params(dest, tmp_path, {})
    out = tmp_path / "outputs"
    out.mkdir()
    (out / "m.pt").write_bytes(b"the previous model")
    out.chmod(0o555)
    try:
        result = subprocess.run(stage_command("teacher", params, out), cwd=dest, env=env,
                                capture_output=True, text=True, timeout=300,
                                preexec_fn=_without_root_override)  # fmt: skip
    except subprocess.SubprocessError as exc:
        pytest.skip(f"cannot drop the root override here: {exc}")
    finally:
        out.chmod(0o755)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"teacher: error: {out / 'm.pt'}: cannot write it (Permission denied); what was there "
        "is unchanged"
    ]
    assert (out / "m.pt").read_bytes() == b"the previous model"
    assert sorted(p.name for p in out.iterdir()) == ["m.pt"]


def test_an_mlflow_server_that_does_not_answer_fails_the_stage_within_30_s(smoke_repo, tmp_path):
    dest, env, _ = smoke_repo
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    uri = f"http://127.0.0.1:{port}"
    params = custom_params(dest, tmp_path, {})
    start = time.perf_counter()
    result = subprocess.run(stage_command("teacher", params, tmp_path / "out"), cwd=dest,
                            env={**env, "MLFLOW_TRACKING_URI": uri}, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert time.perf_counter() - start < 30
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"teacher: error: MLFLOW_TRACKING_URI={uri}: the tracking server does not answer ("
    )
    assert not (tmp_path / "out" / "resume.pt").exists()  # no training started


@pytest.mark.slow
def test_two_experiments_run_at_once_both_finish_with_their_mlflow_runs(smoke_repo):
    from mlflow.tracking import MlflowClient

    dest, env, _ = smoke_repo
    dvc = str(BIN / "dvc")
    names = []
    for budget in ("0.3", "0.4"):
        out = run([dvc, "exp", "run", "--queue", "-S", f"prune.budget={budget}", "prune"],
                  dest, env)  # fmt: skip
        names.append(out.split("Queued experiment '")[1].split("'")[0])
    run([dvc, "queue", "start", "-j", "2"], dest, env)
    deadline = time.time() + 600
    status = ""
    while time.time() < deadline:
        status = run([dvc, "queue", "status"], dest, env)
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(2)
    for name in names:
        assert f"{name}" in status and "Failed" not in status, status
        log = run([dvc, "queue", "logs", name], dest, env)
        assert "database is locked" not in log and "Traceback" not in log
    client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("rcskd")
    runs = client.search_runs([experiment.experiment_id], "tags.stage = 'prune'")
    by_exp = {r.data.tags.get("dvc_exp"): r for r in runs}
    for name, budget in zip(names, ("0.3", "0.4"), strict=True):
        assert by_exp[name].info.status == "FINISHED"
        assert by_exp[name].data.params["budget"] == budget


def _dicom_dataset(root: Path, per_class: dict[str, int]) -> None:
    from tests.fixtures import write_dicom

    rng = np.random.default_rng(0)
    for name, n in per_class.items():
        for i in range(n):
            pixels = rng.integers(0, 1000, (24, 24)).astype(np.uint16)
            write_dicom(root / name / f"{i}.dcm", pixels, f"{name}{i}")


def _prepare(dest: Path, env: dict, tmp_path: Path, root: Path, **data) -> tuple:
    params = custom_params(dest, tmp_path, {"data": {"source": "dicom", **data}})
    out = tmp_path / "prepared"
    result = subprocess.run([sys.executable, "stages/prepare.py", "--params", str(params),
                             "--data-root", str(root), "--out", str(out),
                             "--report", str(tmp_path / "prepare.json")], cwd=dest, env=env,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    return result, out


@pytest.mark.parametrize("case", ["undecodable", "skipped", "one class", "empty split"])
def test_unusable_datasets_give_exit_code_2_and_one_line_or_a_counted_skip(
    smoke_repo, tmp_path, case
):
    from tests.fixtures import compress_dicom

    dest, env, _ = smoke_repo
    root = tmp_path / "raw"
    counts = {"one class": {"glioma": 12}, "empty split": {"a": 1, "b": 1, "c": 1}}
    _dicom_dataset(root, counts.get(case, {"glioma": 16, "notumor": 16}))
    cut = root / "glioma" / "0.dcm"
    if case in ("undecodable", "skipped"):  # a JPEG-LS file whose stream was cut in half
        import pydicom

        compress_dicom(cut, "1.2.840.10008.1.2.4.80")
        ds = pydicom.dcmread(cut)
        frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
        ds.PixelData = pydicom.encaps.encapsulate([frame[: len(frame) // 2]])
        ds.save_as(cut)
    skip = {"on_bad_file": "skip"} if case == "skipped" else {}
    result, out = _prepare(dest, env, tmp_path, root, **skip)
    lines = [line for line in result.stderr.strip().splitlines() if "%|" not in line]  # no bars
    if case == "skipped":
        assert result.returncode == 0, result.stderr
        report = json.loads((tmp_path / "prepare.json").read_text())
        assert report["skipped_bad_files"] == 1 and report["images_read"] == 31
        assert any(line.startswith(f"warning: skipping {cut}: cannot decode") for line in lines)
        return
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    expected = {
        "undecodable": f"prepare: error: {cut}: cannot decode the pixel data (JPEG-LS Lossless",
        "one class": f"prepare: error: {root}: found 1 class(es) ['glioma']",
        "empty split": f"prepare: error: {root}: the ",
    }[case]
    assert lines[0].startswith(expected)
    assert not out.exists() and not list(tmp_path.glob(".prepared.*"))
