"""A per-block latency table for `prune.resource: latency` (NetAdapt-style lookup).

Measured once per teacher on the machine that runs the prune stage (a DVC output): for every
prunable block, the median time of the block alone (its scope module on the input it sees in the
teacher) with only that block pruned to each kept fraction of `FRACTIONS`, in eager PyTorch on the
CPU with the configured threads and batch size; plus the rest of the network (whole-model time
minus the blocks at full width). A candidate's latency is then predicted as the rest plus each
block's time at its kept fraction (linear interpolation between the measured fractions), so the
search's budget means milliseconds kept, and `Block.removed(k, "latency")` reads the table.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rcskd.errors import ConfigError
from rcskd.metrics.complexity import time_call
from rcskd.progress import progress
from rcskd.prune.apply import kept_channels, prune_blocks
from rcskd.prune.blocks import LATENCY_FRACTIONS as FRACTIONS
from rcskd.prune.blocks import Block, scope_inputs


@torch.no_grad()
def median_ms(run: Callable[[], object], repeats: int, warmup: int = 3) -> float:
    """Median wall time of `run()` in milliseconds (no autograd)."""
    return time_call(run, repeats, warmup)["median_ms"]


def _batched(args: tuple, batch: int) -> tuple:
    return tuple(
        a.expand(batch, *a.shape[1:]).contiguous() if isinstance(a, torch.Tensor) else a
        for a in args
    )


def measure_latency_table(
    model: nn.Module,
    blocks: list[Block],
    input_shape: tuple[int, ...],
    batch_size: int = 1,
    threads: int = 1,
    repeats: int = 20,
    show_progress: bool = True,
) -> dict[str, Any]:
    """The table (plain data, for JSON): per block the ms at each of `FRACTIONS`, and the rest."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    model = model.cpu().eval()
    try:
        x = torch.zeros(batch_size, *input_shape)
        whole = median_ms(lambda: model(x), repeats)
        table: dict[str, list[float]] = {}
        for block in progress(blocks, "prune: latency table", len(blocks), show_progress):
            row = []
            for kept in FRACTIONS:
                pruned = model if kept == 1.0 else prune_blocks(
                    model, blocks, {block.name: 1.0 - kept}, input_shape
                )  # fmt: skip
                pruned.eval()
                args = _batched(scope_inputs(pruned, [block.scope], input_shape)[block.scope],
                                batch_size)  # fmt: skip
                module = pruned.get_submodule(block.scope)
                row.append(round(median_ms(lambda m=module, a=args: m(*a), repeats), 5))
            table[block.name] = monotone(row)
    finally:
        torch.set_num_threads(previous)
    rest = max(whole - sum(row[-1] for row in table.values()), 0.0)
    return {
        "runtime": "pytorch-eager-cpu",
        "threads": threads,
        "batch_size": batch_size,
        "input_shape": list(input_shape),
        "fractions": list(FRACTIONS),
        "whole_ms": round(whole, 5),
        "rest_ms": round(rest, 5),
        "blocks": table,
    }


def load_latency_table(path: str | Path | None) -> dict[str, Any]:
    """The measured table at `path`; a ConfigError when it is missing or was not measured."""
    if path is None or not Path(path).is_file():
        raise ConfigError(f"{path}: no latency table; `prune.resource: latency` needs the "
                          "latency_table stage's output (dvc repro latency_table)")  # fmt: skip
    table = json.loads(Path(path).read_text())
    if "blocks" not in table:
        raise ConfigError(f"{path}: the latency table was not measured ({table.get('skipped')})")
    return table


def monotone(row: list[float]) -> list[float]:
    """Timing noise aside, fewer channels never take longer: make the row non-decreasing in the
    kept fraction (so the resource removed grows with the ratio, as the search requires)."""
    return list(np.maximum.accumulate(np.asarray(row, float)))


def with_latency(blocks: list[Block], table: dict[str, Any]) -> list[Block]:
    """The blocks with their latency rows attached (read by `Block.removed(k, "latency")`)."""
    missing = [b.name for b in blocks if b.name not in table["blocks"]]
    if missing:
        raise ConfigError(f"the latency table has no row for blocks {missing[:3]}: remeasure it")
    return [dataclasses.replace(b, latency_ms=tuple(table["blocks"][b.name])) for b in blocks]


def predicted_ms(
    blocks: list[Block], ratios: dict[str, float], table: dict[str, Any], round_to: int = 1
) -> float:
    """Latency of the candidate `ratios` from the table: the rest plus every block's time at
    the channels it really keeps (rounded as the pruner rounds)."""
    return table["rest_ms"] + sum(
        b.latency_at(kept_channels(b.channels, ratios.get(b.name, 0.0), round_to) / b.channels)
        for b in with_latency(blocks, table)
    )
