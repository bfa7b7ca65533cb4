"""Gaussian fits with arbitrary missing cells and per-cell noise, against the dense GP on the observed cells.

References are built independently here: kernel formulas over point lists, numpy solves and
``scipy.stats.multivariate_normal``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
import xarray as xr
from pymc_extras.prior import Prior

import xkron
from xkron.spec.grid import cartesian

RNG = np.random.default_rng(5)
VALUES = {"amplitude": 1.3, "noise": 0.2, "mean": 0.4}
T, X = np.linspace(0, 3, 6), np.linspace(0, 1, 7)
KERNELS = {"t": xkron.Matern32(ls=1.5), "x": xkron.ExpQuad(ls=0.4)}


def _k(a, b):
    r = np.sqrt(3) * np.abs(np.subtract.outer(a[0], b[0])) / 1.5
    return (1 + r) * np.exp(-r) * np.exp(-0.5 * np.subtract.outer(a[1], b[1]) ** 2 / 0.4**2)


def _data():
    da = xr.DataArray(RNG.normal(size=(6, 7)), coords={"t": T, "x": X}, dims=("t", "x"), attrs={"units": "K"})
    da = da.where(RNG.random((6, 7)) > 0.3)
    sd = xr.DataArray(0.05 + 0.3 * RNG.random(7), coords={"x": X}, dims="x")  # per station
    return da, sd


def _dense(da, sd):
    """Log-likelihood and posterior mean / var of f at every cell, from the dense formulas."""
    points = np.array(cartesian([T, X]))
    y = da.values.ravel()
    seen = np.isfinite(y)
    known = np.broadcast_to(sd.values**2, (6, 7)).ravel()
    eta2, s2, mu = VALUES["amplitude"] ** 2, VALUES["noise"] ** 2, VALUES["mean"]
    C = eta2 * _k(points[:, seen], points[:, seen]) + np.diag(s2 + known[seen])
    logp = st.multivariate_normal(np.full(seen.sum(), mu), C).logpdf(y[seen])
    Ks = eta2 * _k(points, points[:, seen])
    mean = mu + Ks @ np.linalg.solve(C, y[seen] - mu)
    cov = eta2 * _k(points, points) - Ks @ np.linalg.solve(C, Ks.T)
    return logp, mean.reshape(6, 7), cov


@pytest.mark.parametrize(("solver", "variance"), [("dense", None), ("iterative", "lanczos"), ("iterative", "sampled")])
def test_logp_and_gap_filling_equal_the_dense_gp(solver, variance):
    da, sd = _data()
    options = (
        {"variance_samples": 2000, "probes": 64, "variance": variance, "tol": 1e-10} if solver == "iterative" else None
    )
    fit = da.kron.fit(KERNELS, **VALUES, noise_sd=sd, solver=solver, solver_options=options, progressbar=False)
    assert fit.spec.solver == solver
    logp, mean, cov = _dense(da, sd)
    # The iterative log-determinant is a stochastic Lanczos estimate (8 probes, ~30 cells here).
    assert fit.model.compile_logp()({}) == pytest.approx(logp, rel=1e-9 if solver == "dense" else 5e-3)
    filled = fit.predict()
    np.testing.assert_allclose(filled["mean"].values, mean, atol=1e-7)
    var = np.diag(cov).reshape(6, 7)
    if solver == "dense":
        np.testing.assert_allclose(filled["sd"].values ** 2, var, rtol=1e-8, atol=1e-12)
    elif variance == "lanczos":  # the rigorous Lanczos bracket, stopped at the default 1% on the sd
        np.testing.assert_allclose(filled["sd"].values, np.sqrt(var), rtol=fit.spec.solver.variance_tol)
    else:  # control-variate Monte Carlo, 2000 draws: sd to ~3% (Monte Carlo error 1/√(2·2000) ≈ 1.6%)
        np.testing.assert_allclose(filled["sd"].values, np.sqrt(var), rtol=0.06)
    assert filled["mean"].attrs["units"] == "K"


def test_gradient_through_the_model_equals_finite_differences():
    da, sd = _data()
    fit = da.kron.fit(
        {"t": xkron.Matern32(), "x": xkron.ExpQuad()},
        amplitude=Prior("HalfNormal", sigma=2),
        noise=Prior("HalfNormal", sigma=1),
        noise_sd=sd,
        solver="dense",
        method="map",
        restarts=0,
        progressbar=False,
    )
    model = fit.model
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    point = {k: v + 0.1 for k, v in model.initial_point().items()}
    grad = dlogp(point)
    names = [v.name for v in model.value_vars]
    for i, name in enumerate(names):
        h = 1e-5
        up, down = dict(point), dict(point)
        up[name] = point[name] + h
        down[name] = point[name] - h
        assert grad[i] == pytest.approx((logp(up) - logp(down)) / (2 * h), rel=1e-6, abs=1e-6)


def test_posterior_samples_match_the_dense_posterior():
    da, sd = _data()
    fit = da.kron.fit(KERNELS, **VALUES, noise_sd=sd, solver="dense", progressbar=False)
    _, mean, cov = _dense(da, sd)
    fields = fit.sample(4000, random_seed=1)["f"].values.reshape(4000, -1)
    se = np.sqrt(np.diag(cov) / 4000)
    assert np.all(np.abs(fields.mean(axis=0) - mean.ravel()) < 5 * se)
    emp = np.cov(fields.T)
    scale = np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    assert np.max(np.abs(emp - cov) / scale) < 0.15


def test_auto_solver_choice():
    da, sd = _data()
    complete = da.fillna(0.0)
    assert complete.kron.fit(KERNELS, **VALUES, progressbar=False).spec.solver == "kronecker"
    assert complete.kron.fit(KERNELS, **VALUES, noise_sd=0.1, progressbar=False).spec.solver == "kronecker"
    assert complete.kron.fit(KERNELS, **VALUES, noise_sd=sd, progressbar=False).spec.solver == "dense"
    assert da.kron.fit(KERNELS, **VALUES, progressbar=False).spec.solver == "dense"
    with pytest.raises(ValueError, match="noise_sd differs between cells"):
        complete.kron.fit(KERNELS, **VALUES, noise_sd=sd, solver="kronecker", progressbar=False)


def test_equal_known_noise_adds_to_sigma_squared():
    da, _ = _data()
    complete = da.fillna(0.3)
    with_known = complete.kron.fit(KERNELS, **VALUES, noise_sd=0.1, progressbar=False)
    folded = complete.kron.fit(KERNELS, **{**VALUES, "noise": np.sqrt(0.2**2 + 0.1**2)}, progressbar=False)
    assert with_known.model.compile_logp()({}) == pytest.approx(folded.model.compile_logp()({}), rel=1e-12)


def test_map_iterative_agrees_with_dense():
    t, x = np.linspace(0, 10, 30), np.linspace(0, 5, 40)
    truth = np.sin(t)[:, None] * np.cos(1.3 * x)[None, :]
    da = xr.DataArray(truth + 0.1 * RNG.normal(size=truth.shape), coords={"t": t, "x": x}, dims=("t", "x"))
    da = da.where(RNG.random(truth.shape) > 0.3)
    kernels = {"t": xkron.ExpQuad(), "x": xkron.ExpQuad()}
    kwargs = {"mean": "zero", "restarts": 0, "progressbar": False}
    dense = da.kron.fit(kernels, solver="dense", **kwargs)
    iterative = da.kron.fit(kernels, solver="iterative", solver_options={"probes": 16}, **kwargs)
    # The documented tolerance on ~800 observed cells: 2% (measured: 0.5% with 16 probes).
    for name in ("ls_t", "ls_x", "amplitude", "noise"):
        assert float(iterative.params[name]) == pytest.approx(float(dense.params[name]), rel=0.02), name


def test_bad_noise_inputs():
    da, sd = _data()
    with pytest.raises(TypeError, match="noise_sd="):
        da.kron.fit(KERNELS, noise=sd, progressbar=False)
    with pytest.raises(ValueError, match="Gaussian likelihood only"):
        da.fillna(1.0).round().kron.fit(KERNELS, likelihood="poisson", noise_sd=sd, progressbar=False)
    negative = sd.copy(data=np.where(np.arange(7) == 2, -0.1, sd.values))
    with pytest.raises(ValueError, match="noise_sd must be a finite sd >= 0"):
        da.kron.fit(KERNELS, noise_sd=negative, progressbar=False)
    with pytest.raises(ValueError, match="noise_sd must be a finite sd >= 0"):
        da.fillna(0.0).kron.fit(KERNELS, noise_sd=sd.where(sd.x != X[3]), progressbar=False)
    with pytest.raises(ValueError, match="x"):
        da.kron.fit(KERNELS, noise_sd=sd.assign_coords(x=X + 1), progressbar=False)
    with pytest.raises(ValueError, match="noise=0 with noise_sd = 0"):
        da.kron.fit(KERNELS, noise=0.0, noise_sd=sd * 0, progressbar=False)
    with pytest.raises(ValueError, match="solver"):
        da.kron.fit(KERNELS, solver="cholesky", progressbar=False)


def test_output_mask_and_round_trip(tmp_path):
    da, sd = _data()
    land = xr.DataArray(np.arange(7) != 4, coords={"x": X}, dims="x")
    fit = da.kron.fit(KERNELS, **VALUES, noise_sd=sd, mask=land, progressbar=False)
    everywhere = fit.predict()
    ocean_only = fit.predict(mask=True)
    assert bool(everywhere["mean"].notnull().all())
    assert bool(ocean_only["mean"].isel(x=4).isnull().all()) and bool(ocean_only["mean"].isel(x=0).notnull().all())
    assert ocean_only["mean"].dims == ("t", "x") and ocean_only["sd"].attrs == everywhere["sd"].attrs
    with pytest.raises(ValueError, match="line up"):
        fit.predict(x=[0.5], mask=land)
    fit.to_netcdf(tmp_path / "f.nc")
    again = xkron.open_fit(tmp_path / "f.nc")
    assert again.spec.solver == fit.spec.solver
    xr.testing.assert_identical(again.predict(mask=True), ocean_only)
