"""The training engine: precision, device-side augmentation, data placement, and data-parallel
training (2 gloo processes on the CPU equal 1 process)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from rcskd.config import AugmentConfig, TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.data.transforms import augment, fit_preprocess
from rcskd.errors import ConfigError
from rcskd.train import CrossEntropy, fit
from rcskd.train.batches import Batches
from rcskd.train.runtime import autocast_dtype, make_engine, native_bf16, place_split
from tests.fixtures import quadrant_data

NO_AUG = AugmentConfig(0, 0, 0, 0, 0, 0, 0, 0)
CFG = TrainConfig(epochs=2, batch_size=8, lr=0.01, warmup_epochs=0.0, augment=NO_AUG,
                  precision="fp32")  # fmt: skip
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class NoNormNet(nn.Module):
    """conv -> ReLU -> pool -> linear: no batch statistics, so sharding cannot change them."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def _data() -> tuple[TensorSplit, TensorSplit]:
    return quadrant_data(32, 0, size=16), quadrant_data(16, 1, size=16)


def _train_one(out: str | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = NoNormNet()
    train, val = _data()
    fit(model, CrossEntropy(), train, val, CFG, fit_preprocess(train.images), seed=3,
        show_progress=False)  # fmt: skip
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if out is not None:
        torch.save(state, out)
    return state


def _ddp_worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        state = _train_one()
        if rank == 0:
            torch.save(state, out)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_train_the_same_weights_as_one(tmp_path):
    """Same global batch, each process half of it, gradients averaged by DDP."""
    out = tmp_path / "ddp.pt"
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    parallel = torch.load(out, weights_only=True)
    single = _train_one()
    initial = (torch.manual_seed(0), NoNormNet())[1].state_dict()
    for name, value in single.items():
        assert not torch.equal(value, initial[name])  # it did train
        torch.testing.assert_close(parallel[name], value, atol=1e-5, rtol=0)


def test_global_batches_are_shared_out_between_processes():
    split = quadrant_data(20, 0, size=8)

    def batches(rank: int, world: int) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(5)
        return [labels for _, labels, _ in Batches(split, 8, True, False, gen, rank, world)]

    one = batches(0, 1)
    parts = [batches(r, 2) for r in range(2)]
    for k, whole in enumerate(one):
        torch.testing.assert_close(torch.cat([parts[0][k], parts[1][k]]), whole)


def test_bf16_trains_on_the_cpu():
    torch.manual_seed(0)
    model = NoNormNet()
    train, val = _data()
    cfg = dataclasses.replace(CFG, precision="bf16", epochs=3, lr=0.05)
    result = fit(model, CrossEntropy(), train, val, cfg, fit_preprocess(train.images),
                 show_progress=False)  # fmt: skip
    losses = [row["train_loss"] for row in result.history]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert make_engine(cfg, "cpu").dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in model.parameters())  # autocast, fp32 weights


def test_precision_auto_is_bf16_where_the_cpu_has_it_natively_and_fp16_needs_cuda():
    native = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert native_bf16(torch.device("cpu")) == native
    assert autocast_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else None)
    assert autocast_dtype("fp32", torch.device("cpu")) is None
    with pytest.raises(ConfigError, match="fp16 needs a CUDA device"):
        autocast_dtype("fp16", torch.device("cpu"))


@pytest.mark.parametrize("device", DEVICES)
def test_device_augmentation_is_deterministic_for_a_seed(device):
    images = torch.rand(6, 1, 16, 16, device=device)
    cfg = AugmentConfig()

    def run(seed: int) -> torch.Tensor:
        return augment(images, cfg, torch.Generator(device).manual_seed(seed))

    first, again, other = run(1), run(1), run(2)
    assert first.device.type == device
    torch.testing.assert_close(first, again, atol=0, rtol=0)
    assert not torch.equal(first, other)


def test_the_cache_stays_put_on_the_cpu():
    split = quadrant_data(8, 0)
    assert place_split(split, torch.device("cpu")) is split
