"""The prune benchmark never mixes searches over different teachers: finished runs whose
teacher test-correctness digest is not this machine's stop the script, or are dropped."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from prune_brain4 import same_teacher_runs  # noqa: E402

HERE = {"teacher_digest": "aaaa", "teacher_test_acc": 0.9375}
RUNS = [
    {"method": "ddpg", "seed": 0, "teacher_digest": "aaaa"},
    {"method": "ddpg", "seed": 1, "teacher_digest": "bbbb"},  # a rebuilt teacher elsewhere
    {"method": "uniform", "seed": 0},  # recorded before digests: origin unknown
]


def test_runs_of_another_or_unknown_teacher_stop_the_script():
    with pytest.raises(SystemExit, match="2 finished runs searched another teacher"):
        same_teacher_runs(RUNS, HERE, drop=False)


def test_dropping_keeps_only_this_teachers_runs():
    kept = same_teacher_runs(RUNS, HERE, drop=True)
    assert [(r["method"], r["seed"]) for r in kept] == [("ddpg", 0)]


def test_runs_of_this_teacher_pass_untouched():
    assert same_teacher_runs(RUNS[:1], HERE, drop=False) == RUNS[:1]


def test_each_search_variant_has_its_own_rows_and_checkpoint():
    from prune_brain4 import candidate_params, candidate_path, label, variant_of

    assert label("ddpg") == "ddpg"
    assert label("ddpg", 0.3, 3) == "ddpg+flops0.3+top3"
    paths = {candidate_path("ddpg", 0.2, 0, *v) for v in [(1.0, 0), (0.3, 0), (1.0, 3), (0.3, 3)]}
    assert len(paths) == 4  # no variant overwrites another's fine-tuned candidate
    settings = {"episodes": 60, "finetune_epochs": 3, "max_ratio": 0.9, "finetune_top_k": 3}
    prune = candidate_params("random", 0.2, 1, settings).prune
    assert (prune.proxy.finetune_top_k, prune.flops_budget, prune.search_seed) == (3, 1.0, 1)
    assert variant_of(settings) == (1.0, 3)
    assert label("random", *variant_of(settings)) == "random+top3"


def test_a_refit_row_copies_its_search_and_uniform_refits_its_one_candidate():
    from prune_brain4 import refit_row

    finished = {
        (0.5, "ddpg", 2): {
            "method": "ddpg",
            "seed": 2,
            "ratios": {"a": 0.1},
            "search_history": [1],
        },
        (0.5, "uniform", 0): {"method": "uniform", "seed": 0, "ratios": {"a": 0.5}},
    }
    row = refit_row(finished, 0.5, "ddpg", 2)
    assert row == {"method": "ddpg+ftseed", "seed": 2, "finetune_seed": 2, "ratios": {"a": 0.1}}
    assert finished[(0.5, "ddpg", 2)]["method"] == "ddpg"  # the search's own row is untouched
    uniform = refit_row(finished, 0.5, "uniform", 3)
    assert (uniform["seed"], uniform["finetune_seed"], uniform["ratios"]) == (3, 3, {"a": 0.5})
    with pytest.raises(SystemExit, match="b0.5 cem seed 2: no finished search to refit"):
        refit_row(finished, 0.5, "cem", 2)


def test_the_pool_holds_each_distinct_fine_tune_once():
    from prune_brain4 import pooled_runs

    runs = [
        {"method": m, "seed": s}
        for m in ("ddpg", "uniform", "ddpg+flops0.3", "ddpg+ftseed", "uniform+ftseed")
        for s in ((0,) if m == "uniform" else (0, 1, 2))
    ]
    pool = sorted((r["method"], r["seed"]) for r in pooled_runs(runs))
    # ddpg: seeds 0-2 fine-tuned with seed 0, and seeds 1-2 again with their own (its ftseed
    # seed 0 is the plain run); uniform: its one candidate under each fine-tune seed; other
    # variants stay out
    expected = [("ddpg+all", s) for s in (0, 1, 1, 2, 2)] + [("uniform+all", s) for s in (0, 1, 2)]
    assert pool == expected


def test_patient_workers_claim_each_run_once(tmp_path, monkeypatch):
    """Two workers never run the same patient-benchmark run; a dead worker's claim is taken."""
    import patient_brain4

    monkeypatch.setattr(patient_brain4, "HERE", tmp_path)
    item = ("kd", 0.05, 64, 1, "ddpg")
    mine = patient_brain4.claim(item)
    assert mine is not None and mine.read_text() == str(os.getpid())
    assert patient_brain4.claim(item) is None  # held by a live worker (this one)
    assert patient_brain4.claim(("kd", 0.05, 64, 2, "ddpg")) is not None  # another run is free
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    mine.write_text(dead)  # the claim of a worker that has exited
    taken = patient_brain4.claim(item)
    assert taken == mine and taken.read_text() == str(os.getpid())


def test_patient_curve_survives_a_resume(tmp_path):
    """A run killed after epoch 2 and resumed keeps its whole per-epoch curve; an epoch replayed
    after the kill replaces its earlier row."""
    import torch
    from patient_brain4 import Curve

    from rcskd.data.dataset import TensorSplit

    test = TensorSplit(torch.zeros(6, 1, 4, 4, dtype=torch.uint8), torch.tensor([0, 1] * 3))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2))

    def preprocess(images):
        return images.float()

    store = tmp_path / "run.pt.curve.json"
    first = Curve(test, preprocess, "fp32", store, offset=10)
    for epoch in (1, 2, 3):
        first(model, {"epoch": epoch, "val_acc": epoch / 10})
    resumed = Curve(test, preprocess, "fp32", store, offset=10)  # a new process, same store
    for epoch in (3, 4):  # the resume file was written after epoch 2: epoch 3 runs again
        resumed(model, {"epoch": epoch, "val_acc": epoch / 100})
    assert [r["epoch"] for r in resumed.rows] == [11, 12, 13, 14]
    assert [r["val_acc"] for r in resumed.rows] == [0.1, 0.2, 0.03, 0.04]
    assert all(r["test_acc"] == 0.5 for r in resumed.rows)  # one class predicted for all


def test_result_files_name_the_device_they_trained_on(monkeypatch):
    import bench_common
    import torch

    assert bench_common.device_name("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench_common.device_name("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: "NVIDIA H200")
    assert bench_common.device_name("auto") == "cuda: NVIDIA H200"
