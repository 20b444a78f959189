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
# 30 images in batches of 7: two processes get unequal shares (4 + 3) and a last batch of 1 + 1
CFG = TrainConfig(epochs=2, batch_size=7, lr=0.01, warmup_epochs=0.0, augment=NO_AUG,
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
    return quadrant_data(30, 0, size=16), quadrant_data(16, 1, size=16)


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
    """Same global batch, each process its share (unequal: 4 + 3 of 7), each share's loss
    weighted by its size so that DDP's average is the global batch's mean."""
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


class NormNet(nn.Module):
    """conv -> BatchNorm -> ReLU -> pool -> linear: per-process batch statistics. The conv has
    no bias, as in every zoo model: BatchNorm cancels it, and Adam would turn its zero gradient's
    rounding noise into full-size steps."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).mean((2, 3)))


def _disagreeing_worker(rank: int, world: int, init_file: str, out: str) -> None:
    """Each process's validation says something else (rank 1: always better); early stopping
    after 1 stale epoch must still stop both at the same epoch, with rank 0's statistics."""
    from rcskd.train import loop

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    calls = []
    real = loop.evaluate

    def rank_local(*args, **kwargs):
        calls.append(1)
        scores = real(*args, **kwargs)
        value = 0.9 - 0.1 * len(calls) if rank == 0 else 0.1 * len(calls)
        return {**scores, "balanced_acc": value}

    loop.evaluate = rank_local
    try:
        torch.manual_seed(rank)  # different start: DDP must broadcast rank 0's weights
        model = NormNet()
        train, val = _data()
        cfg = dataclasses.replace(CFG, epochs=6, early_stopping=1)
        result = fit(model, CrossEntropy(), train, val, cfg, fit_preprocess(train.images),
                     show_progress=False)  # fmt: skip
        torch.save({"epochs": len(result.history), "best": result.best_epoch,
                    "state": model.state_dict()}, f"{out}.{rank}")  # fmt: skip
    finally:
        dist.destroy_process_group()


def test_processes_whose_validation_disagrees_stop_together_with_one_model(tmp_path):
    out = str(tmp_path / "r")
    context = mp.start_processes(_disagreeing_worker, args=(2, str(tmp_path / "init"), out),
                                 nprocs=2, join=False, start_method="spawn")  # fmt: skip
    import time

    deadline = time.time() + 180
    while not context.join(timeout=5):  # a hang on the final barrier fails, not stalls
        if time.time() > deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError("the processes did not finish together")
    ranks = [torch.load(f"{out}.{r}", weights_only=True) for r in range(2)]
    # rank 0's scores decide: best at epoch 1, stale at epoch 2, both stop there
    assert [r["epochs"] for r in ranks] == [2, 2] and [r["best"] for r in ranks] == [1, 1]
    for name, value in ranks[0]["state"].items():  # BatchNorm statistics included
        torch.testing.assert_close(ranks[1]["state"][name], value, atol=0, rtol=0)


def _synced_worker(rank: int, world: int, init_file: str, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        state = _train_norm_net(sync_batchnorm=True)
        if rank == 0:
            torch.save(state, out)
    finally:
        dist.destroy_process_group()


def _train_norm_net(sync_batchnorm: bool = False) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = NormNet()
    train, val = _data()
    fit(model, CrossEntropy(), train, val, CFG, fit_preprocess(train.images), seed=3,
        show_progress=False, sync_batchnorm=sync_batchnorm)  # fmt: skip
    assert type(model.bn) is nn.BatchNorm2d  # saved as it was built
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_synchronised_batch_norm_on_cpu_processes_trains_like_one_process(tmp_path):
    """distributed.sync_batchnorm on the CPU (gloo): statistics over the global batch, so two
    processes train a BatchNorm model as one process does (PyTorch's SyncBatchNorm is GPU-only)."""
    out = tmp_path / "synced.pt"
    mp.spawn(_synced_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    parallel = torch.load(out, weights_only=True)
    single = _train_norm_net()
    for name, value in single.items():
        torch.testing.assert_close(parallel[name], value, atol=1e-4, rtol=1e-4)


def test_batches_count_what_they_yield_for_any_number_of_processes():
    split = quadrant_data(30, 0, size=8)
    for world in (1, 2, 3):
        for rank in range(world):
            batches = Batches(split, 7, True, False, torch.Generator().manual_seed(1), rank, world)
            drawn = list(batches)
            assert len(batches) == len(drawn)
            assert all(size == min(7, 30 - 7 * k) for k, (_, _, size) in enumerate(drawn))
    # a last batch of 2 cannot be shared by 3 processes: every one skips it
    assert len(Batches(split, 7, world=3)) == 4


def test_more_processes_than_devices_is_one_clear_error(monkeypatch):
    import os

    from rcskd.distributed import backend_for, check_process_count

    cpus = os.cpu_count() or 1
    check_process_count(cpus, torch.device("cpu"))
    with pytest.raises(ConfigError, match=f"{cpus + 1} processes on cpu.*{cpus} CPU core"):
        check_process_count(cpus + 1, torch.device("cpu"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ConfigError, match="2 processes on cuda.*1 GPU"):
        check_process_count(2, torch.device("cuda"))
    assert backend_for(torch.device("cpu")) == "gloo"
    assert backend_for(torch.device("cuda", 0)) == "nccl"


def test_flips_alone_are_exact_index_flips():
    images = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    always = AugmentConfig(1.0, 1.0, 0, 0, 0, 0, 0, 0)
    out = augment(images, always, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, images.flip(-1).flip(-2), atol=0, rtol=0)
    never = AugmentConfig(0.0, 0.0, 0, 0, 0, 0, 0, 0)
    torch.testing.assert_close(augment(images, never, torch.Generator()), images, atol=0, rtol=0)
