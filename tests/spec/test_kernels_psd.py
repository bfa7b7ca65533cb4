"""Every kernel is a valid covariance: positive semi-definite on any points, in any number of dims.

Property tests over random point sets (with repeated points) and random hyperparameters, on
1-D and multi-dim factors; the reference is numpy's symmetric eigensolver. A regression test
shows that a two-dim Cosine factor (once ``cos(2π r)`` of the Euclidean distance, which has
negative eigenvalues) now predicts like a dense GP with the product of per-dim cosines.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xkron
from xkron.spec.grid import Factor
from xkron.spec.kernel_registry import KERNELS as ALL_KERNELS

KERNELS = {
    name: ALL_KERNELS[name]
    for name in ("ExpQuad", "Matern12", "Matern32", "Matern52", "RatQuad", "Cosine", "Periodic", "Independent")
}
"""The unit-variance kernels of one formula (the trend kernels and combinations: ``test_kernel_algebra.py``)."""

SETTINGS = settings(max_examples=25, deadline=None)


def random_params(name: str, ndim: int, draw) -> dict:
    log_scale = st.floats(-1.5, 1.5)
    params = {"ls": [10 ** draw(log_scale) for _ in range(ndim)]}
    if name == "RatQuad":
        params["alpha"] = 10 ** draw(st.floats(-2.0, 2.0))
    if name == "Periodic":
        params["period"] = 10 ** draw(st.floats(-1.0, 1.0))
    if name == "Independent":
        params = {}
    return params


@st.composite
def point_sets(draw):
    """Points in 1-3 dims, some of them repeated, and a kernel with random hyperparameters."""
    name = draw(st.sampled_from(sorted(KERNELS)))
    ndim = draw(st.integers(1, 3))
    n_unique = draw(st.integers(1, 10))
    coord = st.floats(-5.0, 5.0, allow_nan=False)
    unique = np.array([[draw(coord) for _ in range(ndim)] for _ in range(n_unique)])
    if name == "Independent":  # its coordinates are labels: round them so that some coincide
        unique = np.round(unique)
    picks = draw(st.lists(st.integers(0, n_unique - 1), min_size=1, max_size=14))
    points = np.concatenate([unique, unique[picks]])  # every unique point, then repeats
    return name, points, random_params(name, ndim, draw)


def assert_psd(K: np.ndarray, what: str) -> None:
    n = K.shape[0]
    np.testing.assert_allclose(K, K.T, rtol=0, atol=1e-14, err_msg=what)
    np.testing.assert_allclose(np.diag(K), 1.0, rtol=0, atol=1e-14, err_msg=what)
    smallest = np.linalg.eigvalsh(K)[0]
    assert smallest >= -1e-10 * n, f"{what}: min eigenvalue {smallest:.3g} on {n} points"


@SETTINGS
@given(point_sets())
def test_every_kernel_is_psd_on_scattered_points_with_repeats(case):
    name, points, params = case
    kernel = KERNELS[name]()
    diffs = [np.subtract.outer(points[:, k], points[:, k]) for k in range(points.shape[1])]
    assert_psd(np.asarray(kernel.correlation(diffs, params), dtype=float), f"{name} {params}")


@st.composite
def grid_factors(draw):
    """A factor over 1-3 dims (the Cartesian product of its dims' coordinates), maybe a subset of it."""
    name = draw(st.sampled_from(sorted(KERNELS)))
    ndim = draw(st.integers(1, 3))
    coords = tuple(np.sort(np.array(draw(st.lists(st.floats(-3.0, 3.0), min_size=1, max_size=5)))) for _ in range(ndim))
    dims = tuple("xyz"[:ndim])
    full = int(np.prod([len(c) for c in coords]))
    subset = draw(st.one_of(st.none(), st.lists(st.integers(0, full - 1), min_size=1, max_size=full, unique=True)))
    factor = Factor(dims, KERNELS[name](), coords, None if subset is None else np.sort(subset))
    return factor, random_params(name, ndim, draw)


@SETTINGS
@given(grid_factors())
def test_every_kernel_factor_matrix_is_psd(case):
    factor, params = case
    assert_psd(factor.covariance(params), f"{factor.kernel.name} over {factor.dims} {params}")


def test_multi_dim_cosine_is_the_product_of_per_dim_cosines():
    rng = np.random.default_rng(3)
    p = rng.uniform(-2, 2, size=(9, 2))
    ls = [0.7, 1.9]
    diffs = [np.subtract.outer(p[:, k], p[:, k]) for k in range(2)]
    expected = np.cos(2 * np.pi * diffs[0] / ls[0]) * np.cos(2 * np.pi * diffs[1] / ls[1])
    np.testing.assert_allclose(xkron.Cosine().correlation(diffs, {"ls": ls}), expected, rtol=0, atol=1e-15)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_model_graph_evaluates_the_same_two_dim_formula(name):
    """The PyMC graph (pytensor) and the predictions (numpy) use one formula, Cosine's product included."""
    import pytensor.tensor as pt

    rng = np.random.default_rng(4)
    coords = (np.sort(rng.uniform(0, 2, 4)), np.sort(rng.uniform(0, 2, 3)))
    factor = Factor(("x", "y"), KERNELS[name](), coords)
    params = {"ls": [0.6, 1.3], "alpha": 1.7, "period": 0.9} if name != "Independent" else {}
    params = {k: v for k, v in params.items() if k in factor.kernel.param_specs()}
    symbolic = {k: [pt.as_tensor(v) for v in val] if k == "ls" else pt.as_tensor(val) for k, val in params.items()}
    graph = pt.as_tensor(factor.covariance(symbolic, xp=pt))
    np.testing.assert_allclose(graph.eval(), factor.covariance(params), rtol=1e-12, atol=1e-14)


def test_two_dim_cosine_factor_predicts_like_a_dense_gp():
    """Once ``cos(2π r)``: predictions of N(0, 1) data reached ±71 with sd 0 (issue 11, item 5)."""
    rng = np.random.default_rng(0)
    t, a, b = np.arange(4.0), np.linspace(0, 1, 6), np.linspace(0, 2, 5)
    da = xr.DataArray(rng.normal(size=(4, 6, 5)), coords={"t": t, "a": a, "b": b}, dims=("t", "a", "b"))
    eta, sigma, mu, ls_t, ls = 1.0, 0.3, 0.1, 1.5, [0.7, 1.1]
    fit = da.kron.fit(
        {"t": xkron.ExpQuad(ls=ls_t), ("a", "b"): xkron.Cosine(ls=ls)},
        amplitude=eta,
        noise=sigma,
        mean=mu,
        progressbar=False,
    )
    new_a = np.linspace(-0.5, 1.5, 9)
    result = fit.predict(a=new_a)

    def corr(P, Q):
        K = np.exp(-0.5 * (np.subtract.outer(P[0], Q[0]) / ls_t) ** 2)
        for k in (1, 2):
            K = K * np.cos(2 * np.pi * np.subtract.outer(P[k], Q[k]) / ls[k - 1])
        return eta**2 * K

    train = [m.ravel() for m in np.meshgrid(t, a, b, indexing="ij")]
    test = [m.ravel() for m in np.meshgrid(t, new_a, b, indexing="ij")]
    K = corr(train, train) + sigma**2 * np.eye(train[0].size)
    Ks = corr(test, train)
    mean = mu + Ks @ np.linalg.solve(K, da.values.ravel() - mu)
    var = eta**2 - np.einsum("mn,nm->m", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(np.clip(var, 0, None)), rtol=0, atol=1e-6)
    assert float(abs(result["mean"]).max()) < 5
