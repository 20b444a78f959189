"""Reading or rendering many independent items in worker processes, results in order.

Decoding thousands of JPEGs or rendering thousands of phantom slices is independent work per
item; forked workers (one per core, up to 4) do it in parallel and `imap` hands the results back
in input order, so a prepared dataset is identical whatever the number of cores.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Sequence[T], per_worker: int = 32, chunksize: int = 8
) -> Iterator[R]:
    """fn(item) for every item, in order: in forked workers when there are at least
    `per_worker` items per worker (a pool costs more than it saves on small sets), inline
    otherwise or inside a worker already. `fn` must be a module-level function."""
    workers = min(os.cpu_count() or 1, 4, len(items) // per_worker)
    if workers < 2 or multiprocessing.current_process().daemon:
        yield from map(fn, items)
        return
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        yield from pool.imap(fn, items, chunksize=chunksize)
