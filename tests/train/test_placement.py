"""The placement rule (rcskd/train/runtime.py): results come back to the CPU wherever the data
lives; precision and memory format resolve as documented and are recorded."""

from __future__ import annotations

import dataclasses

import torch

from rcskd.config import AugmentConfig, TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import fit_preprocess
from rcskd.models import ModelSpec, build_model
from rcskd.train import CrossEntropy, fit, predict_logits
from rcskd.train import loop as loop_module
from rcskd.train.loop import RESUME_FORMAT, _load_resume
from rcskd.train.runtime import make_engine, release_model, use_channels_last
from tests.fixtures import quadrant_data

NO_AUG = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0)
CFG = TrainConfig(epochs=1, batch_size=8, lr=0.01, warmup_epochs=0.0, augment=NO_AUG)


class DeviceLabels(torch.Tensor):
    """Labels that behave like a CUDA tensor's for host conversions: `.numpy()` refuses (as
    it does for `cuda:0` tensors), `.cpu()` gives a plain host tensor."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor).clone()


def test_validation_scores_come_back_to_the_host_from_a_split_on_the_device(monkeypatch):
    """fit puts the validation split where the engine trains; the scores are computed from
    CPU copies (the crash a review found at the end of the first GPU epoch)."""
    placed = []

    def on_device(split: TensorSplit, device, mode="auto") -> TensorSplit:
        moved = TensorSplit(split.images, split.labels.as_subclass(DeviceLabels))
        placed.append(moved)
        return moved

    monkeypatch.setattr(loop_module, "place_split", on_device)
    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet20", 4, 1, 0.25))
    train, val = quadrant_data(16, 0, size=16), quadrant_data(8, 1, size=16)
    result = fit(model, CrossEntropy(), train, val, CFG, fit_preprocess(train.images),
                 show_progress=False)  # fmt: skip
    assert len(placed) == 2  # train and validation went "to the device"
    assert 0 <= result.history[0]["val_acc"] <= 1


def test_predictions_are_float32_on_the_cpu_whatever_the_autocast_dtype():
    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet20", 4, 1, 0.25))
    images = quadrant_data(8, 0, size=16).images
    pre = fit_preprocess(images)
    for dtype in (None, torch.bfloat16):
        logits = predict_logits(model, images, pre, 4, "cpu", dtype)
        assert logits.dtype == torch.float32 and logits.device.type == "cpu"
        assert logits.shape == (8, 4)


def test_memory_format_and_precision_are_resolved_and_recorded():
    cpu = torch.device("cpu")
    avx512 = torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    assert use_channels_last("auto", cpu) == avx512
    assert use_channels_last("contiguous", cpu) is False
    assert use_channels_last("channels_last", cpu) is True
    engine = make_engine(dataclasses.replace(CFG, precision="fp32"), cpu)
    assert engine.describe()["precision"] == "fp32"
    assert engine.describe()["channels_last"] == avx512


def test_a_channels_last_run_saves_plain_contiguous_weights():
    torch.manual_seed(0)
    model = build_model(ModelSpec("resnet20", 4, 1, 0.25))
    train, val = quadrant_data(16, 0, size=16), quadrant_data(8, 1, size=16)
    cfg = dataclasses.replace(CFG, memory_format="channels_last", precision="fp32")
    result = fit(model, CrossEntropy(), train, val, cfg, fit_preprocess(train.images),
                 show_progress=False)  # fmt: skip
    assert result.engine["channels_last"] is True
    assert all(p.is_contiguous() for p in model.parameters())
    release_model(model)  # idempotent
    assert all(v.is_contiguous() for v in model.state_dict().values())


def test_a_resume_file_of_another_precision_is_refused(tmp_path, capsys):
    path = tmp_path / "resume.pt"
    torch.save({"format": RESUME_FORMAT, "fingerprint": "f", "precision": "bf16",
                "channels_last": False, "epoch": 1}, path)  # fmt: skip
    engine = make_engine(dataclasses.replace(CFG, precision="fp32", memory_format="contiguous"),
                         "cpu")  # fmt: skip
    assert _load_resume(path, "f", engine) is None
    assert "saved by a bf16 run" in capsys.readouterr().out
    torch.save({"format": RESUME_FORMAT, "fingerprint": "f", "precision": "fp32",
                "channels_last": False, "epoch": 1}, path)  # fmt: skip
    assert _load_resume(path, "f", engine)["epoch"] == 1
