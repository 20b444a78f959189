"""The ship step: the best student on validation ships; the test split is never read."""

from __future__ import annotations

import json

import pytest
import torch

from rcskd.errors import ConfigError
from rcskd.models import ModelSpec, build_model, load_checkpoint, save_checkpoint
from rcskd.steps.ship import candidate_paths, ship_best
from tests.fixtures import QUADRANT_CLASSES, quadrant_data


@pytest.fixture()
def students(quadrant_checkpoint, tmp_path):
    """A prepared folder with train and validation only (no test split at all) and two
    students: `good` (trained on the task) and `poor` (untrained, same input contract)."""
    trained_path, _, inputs, _ = quadrant_checkpoint
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    for split, seed in (("train", 0), ("val", 2)):
        data = quadrant_data(40, seed, size=32)
        torch.save({"images": data.images, "labels": data.labels}, prepared / f"{split}.pt")
    meta = {"classes": QUADRANT_CLASSES, "image_size": 32, "channels": 1, "fingerprint": "x"}
    (prepared / "meta.json").write_text(json.dumps(meta))
    torch.manual_seed(1)
    poor = tmp_path / "poor.pt"
    save_checkpoint(poor, build_model(ModelSpec("resnet20", 4, 1, 0.25)), ModelSpec(
        "resnet20", 4, 1, 0.25), inputs, {"role": "poor"})  # fmt: skip
    return prepared, trained_path, poor


def _as(path, name, folder):
    """The checkpoint at `path` saved as `folder/name.pt` (what a stage would have written)."""
    folder.mkdir(exist_ok=True)
    loaded = load_checkpoint(path)
    out = folder / f"{name}.pt"
    save_checkpoint(out, loaded.model, loaded.spec, loaded.require_inputs(),
                    {**loaded.provenance, "role": name})  # fmt: skip
    return out


def test_the_validation_best_ships_and_the_test_split_is_never_read(students, tmp_path):
    prepared, good, poor = students
    assert not (prepared / "test.pt").exists()  # reading it would fail the step
    base = tmp_path / "baselines"
    paths = [_as(poor, "ce_only", base), _as(good, "kd", base)]
    result = ship_best(prepared, candidate_paths([base]), tmp_path / "shipped.pt")
    summary = result.summary
    assert summary["shipped"] == "kd" and summary["shipped_label"] == "kd"
    scores = {c["model"]: c["val_acc"] for c in summary["candidates"]}
    assert scores["kd"] > scores["ce_only"] and summary["val_acc"] == scores["kd"]
    assert "over fine-tuning without a teacher on validation" in summary["verdict"]
    shipped = load_checkpoint(tmp_path / "shipped.pt")
    source = torch.load(paths[1], weights_only=True)["state_dict"]
    assert all(torch.equal(v, source[k]) for k, v in shipped.model.state_dict().items())
    assert shipped.provenance["shipped_from"] == "kd"


def test_when_no_distillation_beats_plain_fine_tuning_the_user_is_told(students, tmp_path):
    prepared, good, poor = students
    folder = tmp_path / "m"
    candidates = [_as(poor, "student", folder), _as(good, "ce_only", folder)]
    summary = ship_best(prepared, candidates, tmp_path / "shipped.pt").summary
    assert summary["shipped"] == "ce_only"
    assert "no distillation method beat it on validation" in summary["verdict"]
    # ties go to the candidate listed first
    tie = [_as(good, "kd", folder), _as(good, "ce_only", folder)]
    assert ship_best(prepared, tie, tmp_path / "s2.pt").summary["shipped"] == "kd"


def test_no_candidates_is_one_clear_error(students, tmp_path):
    prepared, _, _ = students
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no candidate students"):
        ship_best(prepared, candidate_paths([tmp_path / "empty"]), tmp_path / "s.pt")
