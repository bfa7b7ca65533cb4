"""xkron's own threads: independent solves on every core, BLAS held to one thread meanwhile.

Much of xkron's work is many independent conjugate-gradient runs: the probes of a stochastic
log-determinant, the probes and draws of a Laplace variance, INLA's design points. numpy releases
the GIL in its products, so Python threads run them in parallel, and where a product is a batch of
small matrix products (Kronecker factors of tens to hundreds) threads over the rows use the cores
far better than BLAS's own threads inside each product: 32 probes of tutorial 6's 114,000-cell
Laplace system took 6.2 s on 2 threads against 13.2 s in one batch (``tests/benchmarks/README.md``).

While they run, BLAS is held to one thread (``threadpoolctl``), so that the workers do not
oversubscribe the cores; the limit is counted, so nested and concurrent uses restore the user's
own setting once, when the last of them ends. Inside a worker, further maps run in order (no
threads within threads). :data:`xkron.settings.THREADS` sets the count (0: one per core).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
from threadpoolctl import threadpool_limits

from xkron import settings

__all__ = ["map_threads", "single_blas", "split_rows", "thread_count"]

_local = threading.local()
_lock = threading.Lock()
_held: dict = {"depth": 0, "limiter": None}


def thread_count() -> int:
    """Threads a map may use here: :data:`~xkron.settings.THREADS` (0: one per core), 1 inside a worker."""
    if getattr(_local, "worker", False):
        return 1
    return settings.THREADS or os.cpu_count() or 1


@contextmanager
def single_blas():
    """BLAS at one thread for the duration (counted: the user's limits come back at the last exit)."""
    with _lock:
        if _held["depth"] == 0:
            _held["limiter"] = threadpool_limits(limits=1, user_api="blas")
        _held["depth"] += 1
    try:
        yield
    finally:
        with _lock:
            _held["depth"] -= 1
            if _held["depth"] == 0:
                _held["limiter"].restore_original_limits()
                _held["limiter"] = None


def _as_worker[T, R](fn: Callable[[T], R]) -> Callable[[T], R]:
    def run(item: T) -> R:
        _local.worker = True
        try:
            return fn(item)
        finally:
            _local.worker = False

    return run


def map_threads[T, R](fn: Callable[[T], R], items: Iterable[T], threads: int | None = None) -> list[R]:
    """``[fn(x) for x in items]``, on up to ``threads`` threads (default :func:`thread_count`), in order.

    Examples
    --------
    >>> map_threads(lambda x: x * x, range(5), threads=2)
    [0, 1, 4, 9, 16]
    """
    items = list(items)
    n = min(thread_count() if threads is None else threads, len(items))
    if n <= 1 or getattr(_local, "worker", False):
        return [fn(x) for x in items]
    with single_blas(), ThreadPoolExecutor(n) as pool:
        return list(pool.map(_as_worker(fn), items))


def split_rows[R](fn: Callable[[np.ndarray], R], rows: np.ndarray, least: int = 2) -> list[R]:
    """``fn`` on contiguous parts of ``rows`` (one per thread, each at least ``least`` rows), in order.

    For solvers that treat each row on its own (:func:`xkron.linalg.cg.pcg`): their parts' results,
    put together, are those of one call on all rows, up to BLAS's rounding.

    Examples
    --------
    >>> parts = split_rows(lambda r: r.sum(axis=1), np.ones((5, 3)))
    >>> np.concatenate(parts).tolist()
    [3.0, 3.0, 3.0, 3.0, 3.0]
    """
    n = max(1, min(thread_count(), len(rows) // max(least, 1)))
    if n == 1:
        return [fn(rows)]
    return map_threads(fn, np.array_split(rows, n), threads=n)
