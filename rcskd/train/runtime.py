"""Where and how training runs: device, data placement, precision, memory format, processes.

The placement rule (every model-running function of rcskd follows it; read it here only):

* On the device: the model, the objective (the teacher and the losses' adapters), each batch,
  and the uint8 caches of train and validation when they fit (`place_split`; on the CPU they
  are already there). Running sums of a training epoch stay on the device between host syncs.
* Back on the CPU: whatever a function hands to its caller. `predict_logits` returns float32
  CPU logits, metrics are computed from CPU logits and CPU labels (`evaluate`), checkpoints and
  resume files are written from CPU state, and labels are never read from a device split.
* Precision: autocast (bf16 or fp16) covers the models' forward passes only. Every loss and
  metric computes in fp32 (`fp32_region`), whatever the autocast dtype: CPU autocast leaves
  softmax, cosine similarity and matmul in bf16, unlike CUDA, and fp16 has too few bits for
  distances and KL terms.

`precision: auto` resolves to bf16 where the hardware computes it natively (CUDA from Ampere
on; CPUs with AVX512-BF16 or AMX), to fp16 with a GradScaler on older GPUs, and to fp32 on
other CPUs (there bf16 autocast is emulated, slower than fp32). `memory_format: auto` is
channels-last on CUDA and on AVX512 CPUs (oneDNN's convolutions are faster in it), contiguous
elsewhere. Under `torchrun` the engine carries the process's rank and world size.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass

import torch
from torch import nn

from rcskd.config import TrainConfig
from rcskd.data.dataset import TensorSplit
from rcskd.distributed import DistContext, dist_context
from rcskd.errors import ConfigError
from rcskd.train.sync_bn import ProcessGroupBatchNorm2d

DTYPE_NAMES = {None: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}


def native_bf16(device: torch.device) -> bool:
    """True where `device` computes bf16 in hardware (not emulated).

    CUDA: compute capability 8.0 or newer (`including_emulation=False`: the default answer
    counts pre-Ampere emulation). CPU: AVX512-BF16 or AMX tiles, as PyTorch's own CPU checks
    (`torch.cpu`) detect them; oneDNN's `_is_mkldnn_bf16_supported` says yes on any AVX512
    CPU, where bf16 runs emulated and slower than fp32.
    """
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device.type == "cpu":
        return bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())
    return False


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `train.precision` on `device` (None: plain fp32)."""
    if precision == "fp32":
        return None
    if precision == "auto":
        if native_bf16(device):
            return torch.bfloat16
        return torch.float16 if device.type == "cuda" else None
    if precision == "fp16" and device.type != "cuda":
        raise ConfigError("train.precision: fp16 needs a CUDA device; use bf16 or fp32 on CPU")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def precision_name(dtype: torch.dtype | None) -> str:
    """ "fp32", "bf16" or "fp16": how reports, MLflow and resume files name a resolved dtype."""
    return DTYPE_NAMES[dtype]


def use_channels_last(memory_format: str, device: torch.device) -> bool:
    """Whether `train.memory_format` puts models and batches in channels-last on `device`."""
    if memory_format != "auto":
        return memory_format == "channels_last"
    if device.type == "cuda":
        return True
    return device.type == "cpu" and torch.backends.cpu.get_cpu_capability().startswith("AVX512")


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """Autocast of model forward passes in `dtype` on `device` (a no-op for fp32)."""
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def fp32_region(device: torch.device | str) -> AbstractContextManager:
    """Autocast switched off: losses and metrics inside compute in the dtype of their inputs,
    which callers cast to fp32."""
    return torch.autocast(torch.device(device).type, enabled=False)


@dataclass
class Engine:
    """How one training run uses its device (built by `make_engine`)."""

    device: torch.device
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    channels_last: bool
    dist: DistContext
    sync_every: int  # steps between host synchronisations (progress, non-finite check)

    @property
    def precision(self) -> str:
        """The resolved precision's name (what `auto` became)."""
        return precision_name(self.dtype)

    def autocast(self) -> AbstractContextManager:
        """The forward pass's autocast context (disabled in fp32)."""
        return autocast(self.device, self.dtype)

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A batch in the memory format the model was put in."""
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def describe(self) -> dict[str, object]:
        """What reports and MLflow record of the engine."""
        return {
            "device": str(self.device),
            "precision": self.precision,
            "channels_last": self.channels_last,
            "world_size": self.dist.world_size,
            "threads": torch.get_num_threads(),
        }


def make_engine(cfg: TrainConfig, device: torch.device | str) -> Engine:
    """The engine of a run with `cfg` on `device`, in this process's distributed context."""
    device = torch.device(device)
    dtype = autocast_dtype(cfg.precision, device)
    fp16 = dtype == torch.float16
    return Engine(
        device=device,
        dtype=dtype,
        scaler=torch.amp.GradScaler(device.type) if fp16 else None,
        channels_last=use_channels_last(cfg.memory_format, device),
        dist=dist_context(),
        # on the CPU a sync costs nothing: check every step, as a plain loop would
        sync_every=1 if device.type == "cpu" else cfg.log_every,
    )


def place_split(split: TensorSplit, device: torch.device, mode: str = "auto") -> TensorSplit:
    """The split where batches will be indexed: on `device` when it fits, else pinned memory.

    `auto` moves the uint8 cache to a CUDA device when it takes under a quarter of the free
    memory; `always` moves it regardless; `never` keeps it in (pinned) host memory. Labels go
    with the images (batches index both on the device); callers that need labels on the host
    keep the original split (the placement rule, module docstring).
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
    """Move `model` to the engine's device and memory format; batch statistics over all
    processes when asked: PyTorch's SyncBatchNorm on accelerators, `ProcessGroupBatchNorm2d` on
    the CPU (PyTorch's has no CPU kernels)."""
    model.to(engine.device)
    if engine.channels_last:
        model.to(memory_format=torch.channels_last)
    if sync_batchnorm and engine.dist.active:
        synced = ProcessGroupBatchNorm2d if engine.device.type == "cpu" else nn.SyncBatchNorm
        _swap_batchnorm(model, nn.BatchNorm2d, synced)
    return model


def release_model(model: nn.Module) -> nn.Module:
    """Undo what only training needed (synchronised batch norms, channels-last), so the model
    saves as it was built."""
    for synced in (nn.SyncBatchNorm, ProcessGroupBatchNorm2d):
        _swap_batchnorm(model, synced, nn.BatchNorm2d)
    model.to(memory_format=torch.contiguous_format)
    return model


def _swap_batchnorm(model: nn.Module, source: type, target: type) -> None:
    """Replace every `source` batch norm by a `target` one in place, sharing parameters and
    buffers."""
    for name, module in list(model.named_modules()):
        if type(module) is not source:
            continue
        new = target(
            module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
        new.weight, new.bias = module.weight, module.bias
        for buffer in ("running_mean", "running_var", "num_batches_tracked"):
            setattr(new, buffer, getattr(module, buffer))
        new.train(module.training)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
