"""Where and how training runs: device, data placement, precision, and data-parallel processes.

`Engine` gathers what the step loop needs to keep the accelerator busy: the uint8 cache on the
training device when it fits (batches are then indexed there), autocast in bf16/fp16 with a
GradScaler for fp16, channels-last on CUDA, and the distributed context (rank, world size) when
the stage runs under `torchrun`. On the CPU in one process everything reduces to the plain path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rcskd.config import TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.distributed import DistContext, dist_context
from rcskd.errors import ConfigError


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.precision` on `device` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return None
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("train.precision: fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


@dataclass
class Engine:
    """How one training run uses its device (built by `make_engine`)."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    channels_last: bool
    dist: DistContext
    sync_every: int  # steps between host synchronisations (progress, non-finite check)

    def autocast(self) -> torch.autocast:
        """The forward pass's autocast context (disabled in fp32)."""
        return torch.autocast(
            self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the memory format the model was put in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


def make_engine(cfg: TrainConfig, device: torch.device | str) -> Engine:
    """The engine of a run with `cfg` on `device`, in this process's distributed context."""
    device = torch.device(device)
    dtype = autocast_dtype(cfg.precision, device)
    fp16 = dtype == torch.float16
    return Engine(
        device=device,
        dtype=dtype,
        scaler=torch.amp.GradScaler(device.type) if fp16 else None,
        channels_last=device.type == "cuda",
        dist=dist_context(),
        # on the CPU a sync costs nothing: check every step, as a plain loop would
        sync_every=1 if device.type == "cpu" else cfg.log_every,
    )


def place_split(split: TensorSplit, device: torch.device, mode: str = "auto") -> TensorSplit:
    """The split where batches will be indexed: on `device` when it fits, else pinned memory.

    `auto` moves the uint8 cache to a CUDA device when it takes under a quarter of the free
    memory; `always` moves it regardless; `never` keeps it in (pinned) host memory.
    """
    if device.type == "cpu" or split.images.device == device:
        return split
    size = split.images.numel() * split.images.element_size()
    if mode == "always" or (mode == "auto" and size < 0.25 * _free_bytes(device)):
        return TensorSplit(split.images.to(device), split.labels.to(device))
    return TensorSplit(split.images.pin_memory(), split.labels.pin_memory())


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    return 0


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`x` on `device`; asynchronous from pinned memory."""
    if x.device == device:
        return x
    return x.to(device, non_blocking=x.is_pinned())


def prepare_model(model: nn.Module, engine: Engine, sync_batchnorm: bool = False) -> nn.Module:
    """Move `model` to the engine's device and memory format; SyncBatchNorm when asked."""
    model.to(engine.device)
    if engine.channels_last:
        model.to(memory_format=torch.channels_last)
    if sync_batchnorm and engine.dist.active:
        _swap_batchnorm(model, to_sync=True)
    return model


def release_model(model: nn.Module) -> nn.Module:
    """Undo what only training needed (SyncBatchNorm), so the model saves as it was built."""
    _swap_batchnorm(model, to_sync=False)
    return model


def _swap_batchnorm(model: nn.Module, to_sync: bool) -> None:
    """Replace BatchNorm2d <-> SyncBatchNorm in place, sharing parameters and buffers."""
    source = nn.BatchNorm2d if to_sync else nn.SyncBatchNorm
    for name, module in list(model.named_modules()):
        if type(module) is not source:
            continue
        if to_sync:
            new = nn.SyncBatchNorm(
                module.num_features, module.eps, module.momentum, module.affine,
                module.track_running_stats,
            )  # fmt: skip
        else:
            new = nn.BatchNorm2d(
                module.num_features, module.eps, module.momentum, module.affine,
                module.track_running_stats,
            )  # fmt: skip
        new.weight, new.bias = module.weight, module.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(new, buffer, getattr(module, buffer))
        new.train(module.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
