"""xkron's own threads (:mod:`xkron.linalg.threads`) and CG split over them (:func:`xkron.linalg.cg.pcg_rows`)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import xkron.settings as settings
from xkron.linalg.cg import pcg, pcg_rows
from xkron.linalg.threads import map_threads, single_blas, split_rows, thread_count


def blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def three_threads(monkeypatch):
    monkeypatch.setattr(settings, "THREADS", 3)


def spd(n=40, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    return A @ A.T / n + np.eye(n), rng.standard_normal((7, n))


@pytest.mark.parametrize("lanczos", [False, True])
def test_pcg_rows_equals_one_pcg_on_all_rows(three_threads, lanczos):
    """Each row's CG is its own: split over three threads, the solutions, the report and the Lanczos
    tridiagonals are those of one batched run, and the solutions solve the system."""
    M, b = spd()
    one = pcg(lambda v: v @ M, b, tol=1e-12, lanczos=lanczos)
    split = pcg_rows(lambda v: v @ M, b, tol=1e-12, lanczos=lanczos)
    np.testing.assert_allclose(split[0], one[0], rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(split[0] @ M, b, atol=1e-10)
    assert split[1].converged and split[1].iterations == one[1].iterations
    if lanczos:
        assert len(split[2]) == len(b)
        for (d1, o1), (d2, o2) in zip(one[2], split[2], strict=True):
            np.testing.assert_allclose(d2, d1, rtol=1e-12)
            np.testing.assert_allclose(o2, o1, rtol=1e-12)


def test_rows_really_run_on_several_threads(three_threads):
    """Three parts at once: each waits at a barrier that only opens when all three are there."""
    barrier = threading.Barrier(3, timeout=30)

    def part(rows):
        barrier.wait()
        return threading.current_thread().name, len(rows)

    parts = split_rows(part, np.ones((6, 2)))
    assert len({name for name, _ in parts}) == 3 and [n for _, n in parts] == [2, 2, 2]
    assert len(split_rows(lambda rows: len(rows), np.ones((3, 2)))) == 1  # at least two rows a part


def test_blas_is_single_while_the_workers_run_and_the_users_limit_comes_back(three_threads):
    """Nested and concurrent uses count: BLAS stays at one thread while any runs, and the user's own
    limit is restored once, at the last exit; inside a worker, maps run in order."""
    with threadpool_limits(limits=2, user_api="blas"):
        before = blas_threads()

        def work(_):
            inner = map_threads(lambda x: (thread_count(), threading.current_thread().name), range(3))
            with single_blas():
                return blas_threads(), inner

        seen = map_threads(work, range(4))
        assert all(set(b) == {1} for b, _ in seen)
        assert all(count == 1 for _, inner in seen for count, _name in inner)
        assert all(len({name for _, name in inner}) == 1 for _, inner in seen)  # in the worker's own thread
        assert blas_threads() == before


def test_one_thread_runs_in_order_without_touching_blas(monkeypatch):
    monkeypatch.setattr(settings, "THREADS", 1)
    main = threading.current_thread().name
    assert map_threads(lambda x: threading.current_thread().name, range(3)) == [main] * 3
