"""Model complexity: parameters, FLOPs (torch.utils.flop_counter) and CPU latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers excluded)."""
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Floating-point operations of one forward pass on a single input of `input_shape` (C,H,W).

    torch's counter counts a multiply-add as 2 FLOPs (so FLOPs = 2 x MACs, the convention of
    fvcore-style "GFLOPs" halves this); only matmul/conv-type operators are counted.
    """
    x = torch.zeros(1, *input_shape, device=next(model.parameters()).device)
    return forward_flops(model, x)


@torch.no_grad()
def forward_flops(module: nn.Module, *args: object) -> int:
    """FLOPs of `module(*args)` in eval mode (same convention as `count_flops`)."""
    was_training = module.training
    module.eval()
    counter = FlopCounterMode(display=False)
    try:
        with counter:
            module(*args)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def time_call(run: Callable[[], object], repeats: int = 20, warmup: int = 3) -> dict[str, float]:
    """Median, min and max wall time (ms) of `repeats` calls of `run`, after `warmup` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1000.0)
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times)}


@torch.no_grad()
def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_sizes: Iterable[int] = (1, 32),
    threads: int = 2,
    repeats: int = 20,
    warmup: int = 3,
) -> dict[int, dict[str, float]]:
    """CPU latency per batch size: median, min and max of `repeats` timed forward passes (ms).

    Runs with `threads` intra-op threads (restored afterwards) in eval mode on the CPU.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    was_training = model.training
    model.eval()
    cpu_model = model.to("cpu")
    results: dict[int, dict[str, float]] = {}
    try:
        for batch in batch_sizes:
            x = torch.rand(batch, *input_shape)
            results[int(batch)] = time_call(lambda x=x: cpu_model(x), repeats, warmup)
    finally:
        torch.set_num_threads(previous)
        model.train(was_training)
    return results


@torch.no_grad()
def measure_latency_cuda(
    model: nn.Module,
    input_shape: tuple[int, ...],
    batch_sizes: Iterable[int] = (1, 32),
    repeats: int = 20,
    warmup: int = 3,
    device: torch.device | str = "cuda",
) -> dict[int, dict[str, float]]:
    """GPU latency per batch size (ms, fp32, eval mode), timed with device synchronisation."""
    was_training = model.training
    model.eval().to(device)
    results: dict[int, dict[str, float]] = {}
    try:
        for batch in batch_sizes:
            x = torch.rand(batch, *input_shape, device=device)

            def run(x: torch.Tensor = x) -> None:
                model(x)
                torch.cuda.synchronize(device)

            results[int(batch)] = time_call(run, repeats, warmup)
    finally:
        model.train(was_training)
    return results
