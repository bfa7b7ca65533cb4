"""Fixtures shared by the reference tests: the seed example and its MarginalKron model."""

from __future__ import annotations

import datetime
import os

import numpy as np
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


@pytest.fixture
def assert_gradient_matches_fd():
    """``check(model, seed)``: a PyMC model's compiled gradient equals five-point central differences
    (error ``O(h⁴)``, ``h = 1e-4``) of its compiled log density, within 1e-6, at its initial point moved
    by ``N(0, 0.3²)`` in every unconstrained coordinate."""

    def check(model, seed: int) -> None:
        names = [v.name for v in model.value_vars]
        point = model.initial_point()
        rng = np.random.default_rng(seed)
        x0 = np.concatenate([np.ravel(point[n]) + 0.3 * rng.standard_normal(np.size(point[n])) for n in names])
        logp, dlogp = model.compile_logp(), model.compile_dlogp()

        def value(x):
            return logp(dict(zip(names, (np.array(v) for v in x), strict=True)))

        h, expected = 1e-4, np.empty_like(x0)
        for i, e in enumerate(np.eye(x0.size) * h):
            expected[i] = (8 * (value(x0 + e) - value(x0 - e)) - (value(x0 + 2 * e) - value(x0 - 2 * e))) / (12 * h)
        got = dlogp(dict(zip(names, (np.array(v) for v in x0), strict=True)))
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)

    return check


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
