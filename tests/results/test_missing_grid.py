"""Missing cells that leave a Kronecker grid of observed cells (whole slices, static masks):
the exact marginal model restricts the factors, and its log-likelihood and gap-filling
predictions equal the dense GP on the observed cells (``scipy.stats.multivariate_normal``,
numpy solves)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats as st
import xarray as xr
from pymc_extras.prior import Prior

import xkron
from xkron.spec.grid import cartesian

RNG = np.random.default_rng(7)
VALUES = {"amplitude": 1.3, "noise": 0.2, "mean": 0.4}


def _expquad(a, b, ls):
    return np.exp(-0.5 * np.subtract.outer(a, b) ** 2 / ls**2)


def _matern32(a, b, ls):
    r = np.sqrt(3) * np.abs(np.subtract.outer(a, b)) / ls
    return (1 + r) * np.exp(-r)


def _field(shape):
    return RNG.normal(size=shape)


def _dense(points_train, points_test, y_train, kernels):
    """Dense GP posterior mean/var and log-likelihood from kernel formulas over point lists."""
    K = np.ones((len(y_train), len(y_train)))
    Ks = np.ones((len(points_test[0]), len(y_train)))
    for (kernel, ls), a, b in zip(kernels, points_train, points_test, strict=True):
        K = K * kernel(a, a, ls)
        Ks = Ks * kernel(b, a, ls)
    eta2, s2, mu = VALUES["amplitude"] ** 2, VALUES["noise"] ** 2, VALUES["mean"]
    C = eta2 * K + s2 * np.eye(len(y_train))
    logp = st.multivariate_normal(np.full(len(y_train), mu), C).logpdf(y_train)
    mean = mu + eta2 * Ks @ np.linalg.solve(C, y_train - mu)
    var = eta2 - eta2**2 * np.einsum("ij,ji->i", Ks, np.linalg.solve(C, Ks.T))
    return logp, mean, var


def _fit(da, kernels):
    return da.kron.fit(kernels, **VALUES, progressbar=False)


def test_static_land_mask_inside_a_space_factor():
    t, lat, lon = np.linspace(0, 3, 4), np.linspace(-1, 1, 5), np.linspace(0, 2, 6)
    da = xr.DataArray(_field((4, 5, 6)), coords={"time": t, "lat": lat, "lon": lon}, dims=("time", "lat", "lon"))
    land = RNG.random((5, 6)) < 0.3
    da = da.where(~land)  # the same cells are missing at every time step
    kernels = {"time": xkron.Matern32(ls=1.5), ("lat", "lon"): xkron.ExpQuad(ls=[0.7, 0.9])}
    fit = _fit(da, kernels)
    space = fit.spec.factors[1]
    assert space.size == int((~land).sum()) and fit.spec.factors[0].subset is None

    T, LA, LO = cartesian([t, lat, lon])
    seen = np.isfinite(da.values.ravel())
    reference = [(_matern32, 1.5), (_expquad, 0.7), (_expquad, 0.9)]
    train = [T[seen], LA[seen], LO[seen]]
    logp, mean, var = _dense(train, [T, LA, LO], da.values.ravel()[seen], reference)
    assert fit.model.compile_logp()({}) == pytest.approx(logp, rel=1e-10)

    filled = fit.predict()  # every cell, the masked ones included
    np.testing.assert_allclose(filled["mean"].values.ravel(), mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(filled["sd"].values.ravel() ** 2, var, rtol=0, atol=1e-8)
    assert filled["mean"].dims == ("time", "lat", "lon") and bool(filled["mean"].notnull().all())


def test_missing_time_steps_and_rows():
    t, x = np.linspace(0, 5, 7), np.linspace(0, 1, 5)
    da = xr.DataArray(_field((7, 5)), coords={"t": t, "x": x}, dims=("t", "x"))
    da[[1, 4], :] = np.nan  # two missing time steps
    da[:, 2] = np.nan  # and one station out throughout
    kernels = {"t": xkron.Matern32(ls=2.0), "x": xkron.ExpQuad(ls=0.4)}
    fit = _fit(da, kernels)
    assert [f.size for f in fit.spec.factors] == [5, 4]
    T, X = cartesian([t, x])
    seen = np.isfinite(da.values.ravel())
    logp, mean, var = _dense([T[seen], X[seen]], [T, X], da.values.ravel()[seen], [(_matern32, 2.0), (_expquad, 0.4)])
    assert fit.model.compile_logp()({}) == pytest.approx(logp, rel=1e-10)
    np.testing.assert_allclose(fit.predict()["mean"].values.ravel(), mean, atol=1e-8)
    np.testing.assert_allclose(fit.predict()["sd"].values.ravel() ** 2, var, atol=1e-8)


def test_restricted_fit_round_trips_and_fits_hyperparameters(tmp_path):
    t, lat, lon = np.linspace(0, 3, 5), np.linspace(-1, 1, 6), np.linspace(0, 2, 7)
    truth = np.sin(t)[:, None, None] * np.cos(2 * lat)[None, :, None] * np.sin(1.5 * lon)[None, None, :]
    da = xr.DataArray(truth + 0.05 * _field(truth.shape), coords={"t": t, "lat": lat, "lon": lon})
    da = da.where(~(RNG.random((6, 7)) < 0.25))
    fit = da.kron.fit(
        {"t": xkron.ExpQuad(), ("lat", "lon"): xkron.ExpQuad()},
        amplitude=Prior("HalfNormal", sigma=2),
        progressbar=False,
    )
    assert fit.optimizer["success"]
    fit.to_netcdf(tmp_path / "masked.nc")
    again = xkron.open_fit(tmp_path / "masked.nc")
    np.testing.assert_array_equal(again.spec.factors[1].subset, fit.spec.factors[1].subset)
    xr.testing.assert_identical(again.predict(t=[0.5, 4.0]), fit.predict(t=[0.5, 4.0]))
    assert again.sample(2, random_seed=0)["f"].notnull().all()


def test_explicit_mask_equals_nan_cells_and_keeps_the_data(tmp_path):
    t, lat, lon = np.linspace(0, 3, 4), np.linspace(-1, 1, 5), np.linspace(0, 2, 6)
    da = xr.DataArray(_field((4, 5, 6)), coords={"time": t, "lat": lat, "lon": lon}, dims=("time", "lat", "lon"))
    ocean = xr.DataArray(RNG.random((5, 6)) > 0.3, coords={"lat": lat, "lon": lon}, dims=("lat", "lon"))
    kernels = {"time": xkron.Matern32(ls=1.5), ("lat", "lon"): xkron.ExpQuad(ls=[0.7, 0.9])}
    masked = da.kron.fit(kernels, mask=ocean, **VALUES, progressbar=False)
    as_nan = _fit(da.where(ocean), kernels)
    xr.testing.assert_identical(masked.data, da)  # no data lost
    assert masked.model.compile_logp()({}) == pytest.approx(as_nan.model.compile_logp()({}), rel=1e-13)
    xr.testing.assert_allclose(masked.predict(), as_nan.predict(), rtol=1e-12)
    masked.to_netcdf(tmp_path / "m.nc")
    again = xkron.open_fit(tmp_path / "m.nc")
    xr.testing.assert_equal(again.mask, masked.mask)
    xr.testing.assert_identical(again.predict(lat=[0.1]), masked.predict(lat=[0.1]))


def test_bad_masks_are_rejected():
    da = xr.DataArray(_field((3, 4)), coords={"a": np.arange(3.0), "b": np.arange(4.0)}, dims=("a", "b"))
    kernels = {"a": "ExpQuad", "b": "ExpQuad"}
    with pytest.raises(TypeError, match=r"boolean xarray\.DataArray"):
        _fit_mask(da, kernels, np.ones((3, 4), dtype=bool))
    shifted = xr.DataArray(np.ones(4, dtype=bool), coords={"b": np.arange(4.0) + 1}, dims="b")
    with pytest.raises(ValueError, match="does not align with the data along 'b'"):
        _fit_mask(da, kernels, shifted)
    nothing = xr.DataArray(np.zeros(4, dtype=bool), coords={"b": np.arange(4.0)}, dims="b")
    with pytest.raises(ValueError, match="NaN or masked"):
        _fit_mask(da, kernels, nothing)


def _fit_mask(da, kernels, mask):
    return da.kron.fit(kernels, mask=mask, **VALUES, progressbar=False)
