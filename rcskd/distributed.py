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


def init_distributed() -> DistContext:
    """Join the process group torchrun set up: nccl on CUDA, gloo on CPU (idempotent)."""
    import torch.distributed as dist

    if launched_by_torchrun() and not dist.is_initialized():
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist_context()


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
