"""Fixtures shared by the reference tests: the seed example and its MarginalKron model."""

from __future__ import annotations

import datetime
import os

import pytest
from pymc_extras.prior import Prior
from threadpoolctl import threadpool_limits

import xkron
from xkron.datasets import seed_example

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One BLAS thread per pytest-xdist worker (``-n auto`` in pyproject.toml runs one worker per
    # core): threaded BLAS in every worker would oversubscribe the cores.
    _BLAS_LIMIT = threadpool_limits(limits=1, user_api="blas")


@pytest.fixture(autouse=True)
def _pinned_history_time(monkeypatch):
    """Pin the time that outputs record in their ``history`` (:func:`xkron.io.cf.utc_now`): tests compare
    two outputs made a moment apart whole (``assert_identical``), which could straddle a second."""
    monkeypatch.setattr("xkron.io.cf.utc_now", lambda: datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC))


@pytest.fixture(scope="session")
def seed():
    """The seed notebook's simulated 50×30 grid (drawn with one BLAS thread, see seed_example)."""
    return seed_example()


@pytest.fixture(scope="session")
def fit_seed(seed):
    """Fit the seed notebook's model: Matern52(x1) × Cosine(x2), Gamma(2, 2) lengthscales,
    HalfNormal(2) amplitude and noise, zero mean. Keyword arguments go to ``xkron.fit``.

    One BLAS thread: on 2 shared cores, multi-threaded OpenBLAS on these small matrices
    oversubscribes the CPU.
    """

    def fit(**kwargs):
        gamma = Prior("Gamma", alpha=2, beta=2)
        with threadpool_limits(limits=1, user_api="blas"):
            return xkron.fit(
                seed["y"],
                {"x1": xkron.Matern52(ls=gamma), "x2": xkron.Cosine(ls=gamma)},
                amplitude=Prior("HalfNormal", sigma=2),
                noise=Prior("HalfNormal", sigma=2),
                mean="zero",
                progressbar=False,
                **kwargs,
            )

    return fit


def pytest_collection_modifyitems(config, items):
    """Spread the tutorials (the longest tests, minutes each) over pytest-xdist's workers, each at the
    head of one worker's share, so that the workers finish together.

    ``--dist worksteal`` first hands each of ``k`` workers a contiguous ``1/k`` of the collection
    (every worker collects the same order), then lets idle workers steal from the others' tails;
    so the tutorials, in reverse name order, are dealt to the heads of the ``k`` shares in turn.
    """
    tutorials = [item for item in items if "test_tutorial_runs" in item.nodeid]
    rest = [item for item in items if "test_tutorial_runs" not in item.nodeid]
    k = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    groups = [tutorials[::-1][j::k] for j in range(k)]
    ordered, taken = [], 0
    for j, group in enumerate(groups):
        ordered += group
        stop = len(rest) if j == k - 1 else taken + max(0, (j + 1) * len(items) // k - len(ordered))
        ordered += rest[taken:stop]
        taken = stop
    items[:] = ordered
