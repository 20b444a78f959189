"""A copy of the repository in a fresh git repo with tiny params, for `dvc` runs in tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

TINY = {
    "data": {"phantom": {"patients": 16, "slices_per_patient": 2, "size": 48}},
    "prepare": {"image_size": 32},
    "teacher": {"width": 0.25, "train": {"epochs": 2, "batch_size": 8}},
    "prune": {
        "compare_baselines": True,  # the suite proves every search method runs
        "agent": {
            "episodes": 3,
            "warmup_episodes": 1,
            "batch_size": 4,
            "hidden": 8,
            "updates_per_episode": 8,
            "cem_population": 2,
        },
        "proxy": {"calib_images": 8, "eval_images": 8},
        "finetune": {"epochs": 1, "batch_size": 8},
    },
    "distill": {"train": {"epochs": 1, "batch_size": 8}},
    # 8 validation images: one changed call is 12.5 points, so the tiny run checks the
    # mechanics of the INT8 gate, not its threshold
    "export": {"max_int8_drop": 1.0, "calibration_images": 16, "latency_repeats": 2},
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


def make_repo_copy(dest: Path, tiny: bool = True) -> tuple[Path, dict]:
    """Tracked (and new, not ignored) files of the repo in a fresh git repository; with `tiny`,
    params.yaml is shrunk to test size (else it stays as committed, matching dvc.lock)."""
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
    if tiny:
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
    return dest, env


def kill_processes_mentioning(marker: str) -> None:
    """SIGKILL every process whose command line mentions `marker` (Linux /proc): a stage, its
    torchrun launcher and its workers alike."""
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone already
