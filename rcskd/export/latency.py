"""CPU latency of exported ONNX models with onnxruntime, measured interleaved so that models
compared side by side see the same machine load."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from rcskd.export.onnx import onnx_session


def onnx_latency_ms(
    models: Mapping[str, str | Path],
    input_shape: tuple[int, ...],
    batch_sizes: Iterable[int] = (1, 32),
    threads: Iterable[int] = (1, 2),
    repeats: int = 30,
    warmup: int = 3,
) -> dict[str, dict[str, float]]:
    """Median ms per run of each model, keyed `onnx-t<threads>-b<batch>`, with the models'
    runs interleaved (run 1 of each, then run 2 of each, ...) and no thread spinning between."""
    out: dict[str, dict[str, float]] = {name: {} for name in models}
    rng = np.random.default_rng(0)
    for n_threads in threads:
        sessions = {
            name: onnx_session(path, n_threads, spin=False) for name, path in models.items()
        }
        for batch in batch_sizes:
            x = {"images": rng.random((batch, *input_shape), dtype=np.float32)}
            times: dict[str, list[float]] = {name: [] for name in models}
            for k in range(warmup + repeats):
                for name, session in sessions.items():
                    start = time.perf_counter()
                    session.run(None, x)
                    if k >= warmup:
                        times[name].append((time.perf_counter() - start) * 1000)
            for name in models:
                out[name][f"onnx-t{n_threads}-b{batch}"] = round(statistics.median(times[name]), 4)
    return out
