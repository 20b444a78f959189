"""The data-parallel process group: who this process is, joining it, collectives.

One process (no torchrun) is rank 0 of 1, and every function here is then a no-op. Kept free of
other rcskd imports: every stage script asks it whether it is rank 0.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class DistContext:
    """This process's place among the data-parallel processes (1 process: rank 0 of 1)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, resume files, reports and MLflow runs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.world_size > 1


def dist_context() -> DistContext:
    """The current process group's context (one process when none is initialised)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return DistContext()
    local = int(os.environ.get("LOCAL_RANK", dist.get_rank()))
    return DistContext(dist.get_rank(), dist.get_world_size(), local)


def launched_by_torchrun() -> bool:
    """True inside a process started by torchrun / torch.distributed.run."""
    return "LOCAL_RANK" in os.environ and "WORLD_SIZE" in os.environ


def resolve_device(name: str) -> torch.device:
    """ "auto" -> CUDA when present, else CPU; "cuda" without a GPU is an error.

    Under torchrun each process takes the GPU of its local rank.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    from rcskd.errors import ConfigError

    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: cuda asked for, but no CUDA device is available; use auto")
    if name == "cuda" and "LOCAL_RANK" in os.environ:
        return torch.device("cuda", int(os.environ["LOCAL_RANK"]))
    return torch.device(name)


def check_process_count(nproc: int, device: torch.device) -> None:
    """Stop with one line when `distributed.nproc_per_node` asks for more processes than the
    machine has devices: GPUs for CUDA training, CPU cores for gloo on the CPU."""
    from rcskd.errors import ConfigError

    if device.type == "cuda":
        have, what = torch.cuda.device_count(), "GPU(s)"
    else:
        have, what = os.cpu_count() or 1, "CPU core(s)"
    if nproc > have:
        raise ConfigError(
            f"distributed.nproc_per_node: {nproc} processes on {device.type}, but this machine "
            f"has {have} {what}; set it to at most {have}"
        )


def backend_for(device: torch.device) -> str:
    """The collective backend of processes that train on `device`: nccl for CUDA, else gloo."""
    return "nccl" if device.type == "cuda" else "gloo"


def init_distributed(device: torch.device | str) -> DistContext:
    """Join the process group torchrun set up, with the backend of the training `device` (not of
    the hardware: `device: cpu` on a GPU machine trains with gloo). Idempotent."""
    import torch.distributed as dist

    device = torch.device(device)
    if launched_by_torchrun() and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group(backend_for(device))
    return dist_context()


def close_distributed() -> None:
    """Leave the process group (after a stage's work; no-op when none was joined)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in one process)."""
    import torch.distributed as dist

    if dist_context().active:
        dist.barrier()


def all_reduce_sum(values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Sum each tensor over the processes (one collective call; no-op in one process)."""
    import torch.distributed as dist

    if not dist_context().active or not values:
        return values
    names = list(values)
    stacked = torch.stack([values[n].double() for n in names])
    dist.all_reduce(stacked)
    return dict(zip(names, stacked.unbind(), strict=True))


def broadcast_object(value: object) -> object:
    """Rank 0's `value` on every process (picklable data; no-op in one process)."""
    import torch.distributed as dist

    if not dist_context().active:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def broadcast_buffers(module: torch.nn.Module) -> None:
    """Overwrite every process's buffers (BatchNorm statistics) with rank 0's, so that all
    processes hold the same model (DDP syncs parameters, not the statistics of the last step)."""
    import torch.distributed as dist

    if not dist_context().active:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)
