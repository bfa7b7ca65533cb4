"""Out-of-core application of a fit: dask-backed data give lazy, chunked, exact results."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import xkron

RNG = np.random.default_rng(8)
T, X, Z = np.linspace(0, 5, 30), np.linspace(0, 1, 20), np.linspace(0, 2, 24)
KERNELS = {"t": xkron.ExpQuad(), "x": xkron.ExpQuad(), "z": xkron.Matern32()}
CHUNKS = {"t": 10, "x": 10, "z": 12}


class _RaiseIfComputed:
    """A dask scheduler that fails the test if anything is computed (as in cf_xarray's tests)."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("dask computed something it should have left lazy")


@pytest.fixture(scope="module")
def field():
    truth = np.sin(T)[:, None, None] * np.cos(3 * X)[None, :, None] * np.sin(2 * Z)[None, None, :]
    da = xr.DataArray(
        truth + 0.1 * RNG.normal(size=truth.shape),
        coords={"t": T, "x": X, "z": Z},
        dims=("t", "x", "z"),
        name="v",
        attrs={"units": "K"},
    )
    return da, da.kron.fit(KERNELS, restarts=0, progressbar=False)


def test_lazy_predictions_equal_in_memory_ones_and_keep_chunks(field):
    da, fit = field
    lazy = fit.condition(da.chunk(CHUNKS))
    new_t = np.linspace(0, 6, 17)
    with dask.config.set(scheduler=_RaiseIfComputed()):
        smooth, extended = lazy.predict(), lazy.predict(t=new_t, noise=True)
    assert smooth["mean"].chunks == da.chunk(CHUNKS).chunks
    assert extended["mean"].chunksizes["x"] == (10, 10) and extended["mean"].chunksizes["z"] == (12, 12)
    xr.testing.assert_allclose(smooth.compute(), fit.predict(), rtol=0, atol=1e-10)
    xr.testing.assert_allclose(extended.compute(), fit.predict(t=new_t, noise=True), rtol=0, atol=1e-10)
    assert smooth["mean"].attrs["units"] == "K"


def test_lazy_sample_fields_are_exact_draws(field):
    da, fit = field
    lazy = fit.condition(da.chunk(CHUNKS))
    with dask.config.set(scheduler=_RaiseIfComputed()):
        draws = lazy.sample(600, random_seed=1, observed=True)
    assert draws["f"].chunksizes["x"] == (10, 10)
    reference = fit.predict()
    f = draws["f"].compute()
    se = reference["sd"] / np.sqrt(600)
    assert float((abs(f.mean("sample") - reference["mean"]) / se).max()) < 5
    ratio = f.std("sample") / reference["sd"]
    assert abs(float(ratio.mean()) - 1) < 0.01 and float(abs(ratio - 1).max()) < 0.2
    again = lazy.sample(3, random_seed=1)["f"].compute()
    np.testing.assert_array_equal(again.values, lazy.sample(3, random_seed=1)["f"].values)


def test_subsample_fit_then_condition_on_the_full_field(field):
    da, _ = field
    thin = da.kron.fit(KERNELS, subsample={"t": 2}, restarts=0, progressbar=False)
    direct = da.isel(t=slice(None, None, 2)).kron.fit(KERNELS, restarts=0, progressbar=False)
    xr.testing.assert_identical(thin.params, direct.params)
    assert thin.data.sizes["t"] == 30
    lazy = da.chunk(CHUNKS).kron.fit(KERNELS, subsample={"t": 2}, restarts=0, progressbar=False)
    with dask.config.set(scheduler=_RaiseIfComputed()):
        smooth = lazy.predict()
    xr.testing.assert_allclose(smooth.compute(), thin.predict(), rtol=0, atol=1e-10)


def test_condition_rejects_what_it_cannot_honour(field):
    da, fit = field
    with pytest.raises(ValueError, match="complete grid"):
        fit.condition(da.where(da.t > 1))
    gappy = fit.condition(da.where(da.t > 1).chunk(CHUNKS))
    with pytest.raises(ValueError, match="NaN/inf cells"):
        gappy.predict()["mean"].compute()
    with pytest.raises(ValueError, match="dims"):
        fit.condition(da.rename(z="w"))
    with pytest.raises(NotImplementedError, match="scattered points"):
        fit.condition(da.chunk(CHUNKS)).predict(xr.Dataset({"t": ("p", [0.5]), "x": ("p", [0.1]), "z": ("p", [1.0])}))
    with pytest.raises(ValueError, match="subsample"):
        da.kron.fit(KERNELS, subsample={"w": 2}, progressbar=False)
