"""The evaluate step on a small trained model: numbers, figures, Grad-CAM, mismatches."""

import numpy as np
import pytest
import torch
from torch import nn

from rcskd.config import EvaluateConfig, LatencyConfig
from rcskd.models import CheckpointError
from rcskd.models.gradcam import gradcam_maps
from rcskd.steps.evaluate import evaluate_model, flat_metrics, pick_examples
from rcskd.train import predict_logits
from tests.fixtures import QUADRANT_CLASSES as CLASSES

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(quadrant_checkpoint):
    """(checkpoint path, model, preprocess, test split) of the shared quadrant model."""
    path, model, inputs, test = quadrant_checkpoint
    return path, model, inputs.preprocess, test


def small_cfg(**kw):
    return EvaluateConfig(
        bootstrap=200, gradcam_per_class=2, latency=LatencyConfig(1, [1, 4], 3, 1), **kw
    )


def test_report_numbers_agree_with_a_direct_computation(trained):
    path, model, pre, test = trained
    report, figures = evaluate_model(path, test, CLASSES, small_cfg())
    pred = predict_logits(model, test.images, pre).argmax(1)
    assert report["acc"] == pytest.approx(float((pred == test.labels).float().mean()), abs=1e-6)
    assert report["acc"] >= 0.9
    assert np.array(report["confusion_matrix"]).sum() == len(test.labels) == report["n"]
    assert report["params"] == sum(p.numel() for p in model.parameters())
    assert report["flops"] > 0 and set(report["latency_ms"]) == {"b1", "b4"}
    assert report["size_mb"] == pytest.approx(path.stat().st_size / 2**20, abs=1e-3)
    assert sum(report["calibration"]["count"]) == len(test.labels)
    assert set(figures) == {
        "student_confusion.png",
        "student_reliability.png",
        "student_gradcam.png",
    }
    assert all(data.startswith(PNG) for data in figures.values())
    flat = flat_metrics(report, CLASSES)
    assert flat["acc"] == report["acc"] and flat["latency_b4_ms"] > 0
    assert flat["sensitivity_top_left"] == report["per_class"]["top_left"]["sensitivity"]


class QuadrantNet(nn.Module):
    """logit k = mean of the input over quadrant k: Grad-CAM of class k must be that quadrant."""

    def __init__(self, size):
        super().__init__()
        masks = torch.zeros(4, size, size)
        h = size // 2
        for k in range(4):
            masks[k, (k // 2) * h : (k // 2 + 1) * h, (k % 2) * h : (k % 2 + 1) * h] = 1
        self.register_buffer("masks", masks)
        self.features = nn.Identity()  # the tap: the four masked copies of the input
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        maps = self.features(x * self.masks)  # N x 4 x H x W
        return self.pool(maps).flatten(1)

    def taps(self):
        return {"stage1": self.features, "pool": self.pool}


def test_gradcam_equals_the_analytic_map():
    # channel weights = mean gradient = 1/HW for channel k, 0 elsewhere, so the map is
    # ReLU(A_k) / max: the input inside quadrant k, zero outside
    x = torch.rand(4, 1, 8, 8) + 0.1
    net = QuadrantNet(8)
    maps = gradcam_maps(net, x, torch.arange(4))
    for k in range(4):
        expected = x[k, 0] * net.masks[k]
        assert torch.allclose(maps[k], expected / expected.max(), atol=1e-6)


def test_gradcam_maps_of_a_trained_model_are_normalised(trained):
    _, model, pre, test = trained
    idx = pick_examples(test.labels, 2, 4)
    maps = gradcam_maps(model, pre(test.images[idx]), test.labels[idx], tap="stage2")
    assert maps.shape == (8, 32, 32) and maps.min() >= 0
    assert torch.allclose(maps.flatten(1).amax(1), torch.ones(8))


def test_unknown_gradcam_tap_is_named(trained):
    _, model, pre, test = trained
    from rcskd.errors import ConfigError

    with pytest.raises(ConfigError, match="Grad-CAM tap 'stage9'"):
        gradcam_maps(model, pre(test.images[:1]), test.labels[:1], tap="stage9")


def test_checkpoint_for_other_classes_is_refused(trained):
    path, _, _, test = trained
    with pytest.raises(CheckpointError, match=r"student\.pt: trained for classes"):
        evaluate_model(path, test, ["a", "b", "c", "d"], small_cfg())


def test_evaluate_stage_expands_folders_to_checkpoints_and_int8_exports(tmp_path, monkeypatch):
    import importlib.util
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.syspath_prepend(str(repo / "stages"))
    spec = importlib.util.spec_from_file_location("evaluate_stage", repo / "stages/evaluate.py")
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    export, baselines = tmp_path / "export", tmp_path / "baselines"
    int8 = export / "student.int8.onnx"
    other = [export / "student.onnx", export / "student.ts", export / "student.card.md"]
    for path in (*other, int8, baselines / "kd.pt", baselines / "at.pt"):
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"")
    teacher = tmp_path / "teacher.pt"
    found = stage.checkpoint_paths([teacher, baselines, export])
    assert found == [teacher, baselines / "at.pt", baselines / "kd.pt", int8]
    int8.unlink()  # export.int8: false
    assert stage.checkpoint_paths([export]) == []
