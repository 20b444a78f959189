"""Shared by the benchmark scripts: the brain4-64 protocol, provenance, resumable results.

Work files (prepared cache, checkpoints, resume states) live under `.bench/` (git-ignored);
results go to `reports/bench/` (committed). A result file holds one entry per finished unit
(e.g. a seed), so a rerun skips what is done unless `--force` is given.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as `python benchmarks/x.py` from anywhere

from rcskd.config import Params, as_dict, params_from_dict  # noqa: E402
from rcskd.data.dataset import load_meta  # noqa: E402
from rcskd.data.prepare import prepare  # noqa: E402
from rcskd.distributed import resolve_device  # noqa: E402
from rcskd.io import write_json_atomic, write_text_atomic  # noqa: E402
from rcskd.models import load_checkpoint  # noqa: E402
from rcskd.tracking import git_commit  # noqa: E402
from rcskd.train import predict_logits  # noqa: E402

# the Kaggle Brain Tumor MRI dataset (docs/data.md): beside the repository, or RCSKD_BRAIN4
BRAIN4 = Path(
    os.environ.get("RCSKD_BRAIN4", REPO.parent / "shared" / "data" / "brain-tumor-mri")
).resolve()
WORK = REPO / ".bench"
RESULTS = REPO / "reports" / "bench"
SPLIT_NOTE = "image-level split (Brain-4 has no patient ids); cross-split duplicates removed"


def brain4_params(seed: int = 0, **sections: dict[str, Any]) -> Params:
    """Params of protocol brain4-64 (imagefolder source, 64 px grey), plus section overrides."""
    raw: dict[str, Any] = {
        "seed": seed,
        "data": {"source": "imagefolder", "root": str(BRAIN4)},
        "prepare": {"image_size": 64, "channels": 1},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return params_from_dict(raw, source="brain4-64 protocol")


def prepared_brain4(params: Params) -> Path:
    """The prepared Brain-4 cache at the params' image size (brain4-64 by default), built once;
    the split depends on the data seed only."""
    if not BRAIN4.is_dir():
        sys.exit(f"benchmark needs the Brain-4 dataset at {BRAIN4}")
    size = params.prepare.image_size
    out = WORK / f"brain4-{size}-seed{params.seed}" / "prepared"
    if not (out / "meta.json").is_file():
        prepare(params, out)
    return out


def provenance(params: Params, prepared: Path, seeds: list[int]) -> dict[str, Any]:
    """What every result file records: commit, params, seeds, data fingerprint, versions."""
    meta = load_meta(prepared)
    return {
        "git_commit": git_commit(REPO),
        "protocol": "brain4-64",
        "split": SPLIT_NOTE,
        "dataset_fingerprint": meta["fingerprint"],
        "counts": meta["counts"],
        "seeds": seeds,
        "params": as_dict(params),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "cpu": cpu_name(),
        "device": device_name(params.device),
        "date": time.strftime("%Y-%m-%d"),
    }


def device_name(setting: str) -> str:
    """What `device: setting` trains on here: "cpu", or the GPU's name ("cuda: NVIDIA H200")."""
    device = resolve_device(setting)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return device.type


def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else the platform's."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_results(path: Path) -> dict[str, Any]:
    """An existing result file, or an empty skeleton."""
    return json.loads(path.read_text()) if path.is_file() else {"runs": {}}


def save_results(path: Path, results: dict[str, Any], markdown: str | None = None) -> None:
    """Write the JSON (and its Markdown table beside it) atomically."""
    write_json_atomic(path, results)
    if markdown is not None:
        write_text_atomic(path.with_suffix(".md"), markdown)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    t = torch.tensor(values, dtype=torch.float64)
    return float(t.mean()), float(t.std()) if len(values) > 1 else 0.0


FIRST_RECIPE = "sgd20"  # the teacher recipe of the earlier benchmarks (file stem "resnet18")


def teacher_file(recipe: str, seed: int) -> Path:
    """Where teacher_brain4.py keeps the teacher of `recipe` and `seed`."""
    stem = "resnet18" if recipe == FIRST_RECIPE else recipe.replace("+", "_")
    return WORK / "brain4-64-seed0" / f"teacher_{stem}_seed{seed}.pt"


def brain4_teacher(seed: int = 0) -> Path:
    """The brain4-64 teacher checkpoint of teacher_brain4.py's chosen recipe (the highest
    validation accuracy; the first recipe before any other ran): run that benchmark first."""
    recipe = load_results(RESULTS / "teacher_brain4.json").get("chosen_recipe", FIRST_RECIPE)
    path = teacher_file(recipe, seed)
    if not path.is_file():
        sys.exit(f"{path} missing: run `python benchmarks/teacher_brain4.py --recipe {recipe} "
                 f"--seeds {seed}` first")  # fmt: skip
    return path


def paired_interval(a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0):
    """Mean of a - b and its 95% percentile-bootstrap interval, resampling the same test
    images for both (a, b: per-image correctness, possibly averaged over seeds)."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    draws = np.random.default_rng(seed).integers(0, len(diff), size=(resamples, len(diff)))
    boot = diff[draws].mean(1)
    return float(diff.mean()), [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]


def correctness(path: Path, split) -> np.ndarray:
    """Per image of `split`: 1 where the checkpoint at `path` classifies it correctly."""
    checkpoint = load_checkpoint(path)
    preprocess = checkpoint.require_inputs().preprocess
    logits = predict_logits(checkpoint.model, split.images, preprocess)
    return (logits.argmax(1) == split.labels).numpy().astype(np.uint8)


def correct_string(correct: np.ndarray) -> str:
    """Per-image correctness as the results files store it: one '0' or '1' per test image."""
    return "".join(map(str, correct.tolist()))


def test_score(path: Path, split) -> dict[str, Any]:
    """A run's test fields: accuracy and per-image correctness of the checkpoint at `path`."""
    correct = correctness(path, split)
    return {"test_acc": float(correct.mean()), "test_correct": correct_string(correct)}


def correct_digest(correct: str) -> str:
    """Short digest of a per-image correctness string."""
    return hashlib.sha256(correct.encode()).hexdigest()[:12]


def origin_of(checkpoints: dict[str, Path], test) -> dict[str, Any]:
    """What a run starts from, recorded with it: per named checkpoint (e.g. teacher, start) its
    test accuracy and a digest of its per-image test correctness. A checkpoint rebuilt on a
    fresh machine is not bitwise the earlier one; the digests tell."""
    out: dict[str, Any] = {}
    for name, path in checkpoints.items():
        correct = correctness(path, test)
        out[f"{name}_test_acc"] = float(correct.mean())
        out[f"{name}_digest"] = correct_digest(correct_string(correct))
    return out


def summarise_by_budget(
    runs: list[dict[str, Any]],
    reference: str | tuple[str, ...],
    means: tuple[str, ...] = (),
    first: tuple = (),
) -> tuple[dict, dict]:
    """(summary, paired) of runs keyed by budget and method: test accuracy mean +- std over
    seeds plus the mean of each field in `means` (and the first run's value of each in `first`);
    the paired interval of each `reference` minus every other method on the same test images."""
    references = (reference,) if isinstance(reference, str) else reference
    summary: dict[str, dict] = {}
    paired: dict[str, dict] = {}
    for budget in sorted({r["budget"] for r in runs}, reverse=True):
        mine_budget = [r for r in runs if r["budget"] == budget]
        per_image = {}
        for method in dict.fromkeys(r["method"] for r in mine_budget):
            mine = [r for r in mine_budget if r["method"] == method]
            acc = mean_std([r["test_acc"] for r in mine])
            row = {"test_acc_mean": acc[0], "test_acc_std": acc[1], "n_seeds": len(mine)}
            row.update({name: mean_std([r[source] for r in mine])[0] for name, source in means})
            row.update({name: mine[0][name] for name in first})
            summary.setdefault(str(budget), {})[method] = row
            correct = [[int(c) for c in r["test_correct"]] for r in mine]
            per_image[method] = np.array(correct, float).mean(0)
        for ref in (r for r in references if r in per_image):
            for method, values in per_image.items():
                if method != ref:
                    mean_diff, ci95 = paired_interval(per_image[ref], values)
                    paired.setdefault(str(budget), {})[f"{ref}-{method}"] = {
                        "mean_diff": mean_diff, "ci95": ci95,
                    }  # fmt: skip
    return summary, paired


def paired_cell(results: dict[str, Any], budget: str, key: str) -> str:
    """A Markdown cell: the paired difference `key` at `budget` in points, with its interval."""
    pair = results["paired"].get(budget, {}).get(key)
    if not pair:
        return "-"
    low, high = pair["ci95"]
    return f"{100 * pair['mean_diff']:+.2f} ({100 * low:+.2f} to {100 * high:+.2f}) pts"
