"""``KronFit.to_netcdf`` → ``xkron.open_fit``: everything survives, predictions are bit-identical."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pymc_extras.prior import Prior
from threadpoolctl import threadpool_limits

import xkron
from xkron.datasets import load_air_temperature

CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def _same_report(a, b):
    """Dict equality where NaN equals NaN (a fit without free parameters reports logp=NaN)."""
    assert a.keys() == b.keys()
    for key in a:
        if isinstance(a[key], float) and math.isnan(a[key]):
            assert isinstance(b[key], float) and math.isnan(b[key]), key
        else:
            assert a[key] == b[key], key


def _normalise(value):
    return list(value) if isinstance(value, tuple) else value


def _roundtrip(fit, path):
    fit.to_netcdf(path)
    return xkron.open_fit(path)


# --------------------------------------------------------------------------- MAP fit of real data


@pytest.fixture(scope="module")
def air():
    """Real data: float32, cftime 360_day time, CF attrs, NetCDF encoding from the file."""
    da = load_air_temperature().isel(time=slice(0, 10), latitude=slice(0, 4), longitude=slice(0, 5))
    assert da.dtype == np.float32 and da.encoding and da["time"].dt.calendar == "360_day"
    return da


@pytest.fixture(scope="module")
def air_fit(air):
    kernels = {"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad(ls={"latitude": 5.0})}
    with threadpool_limits(limits=1, user_api="blas"):
        return xkron.fit(air, kernels, noise=Prior("HalfNormal", sigma=1.0), progressbar=False)


@pytest.fixture(scope="module")
def air_again(air_fit, tmp_path_factory):
    return _roundtrip(air_fit, tmp_path_factory.mktemp("fit") / "air_fit.nc")


def test_training_data_survive(air, air_fit, air_again):
    again = air_again.data
    xr.testing.assert_identical(again, air)  # values, dims, coords (cftime), attrs, name
    assert again.dtype == np.float32
    np.testing.assert_array_equal(again.values, air.values)
    assert list(again["time"].values) == list(air["time"].values)
    assert again["time"].dt.calendar == "360_day"
    for dim in air.dims:
        assert again[dim].attrs == air[dim].attrs


def test_training_data_encoding_survives(air, air_again):
    original, again = air.encoding, air_again.data.encoding
    for key in ("dtype", "zlib", "complevel", "shuffle", "chunksizes", "contiguous", "original_shape"):
        assert _normalise(again[key]) == _normalise(original[key]), key
    for key in ("units", "calendar"):
        assert air_again.data["time"].encoding[key] == air["time"].encoding[key]


def test_kernels_priors_params_and_report_survive(air_fit, air_again):
    assert [(f.dims, f.kernel) for f in air_again.spec.factors] == [(f.dims, f.kernel) for f in air_fit.spec.factors]
    for f, g in zip(air_fit.spec.factors, air_again.spec.factors, strict=True):
        for a, b in zip(f.coords, g.coords, strict=True):
            np.testing.assert_array_equal(a, b)
    assert air_again.spec.priors.keys() == air_fit.spec.priors.keys()
    n_priors = 0
    for name, prior in air_fit.spec.priors.items():
        assert type(air_again.spec.priors[name]) is type(prior), name
        assert air_again.spec.priors[name] == prior, name
        n_priors += isinstance(prior, Prior)
    assert n_priors >= 4  # default priors and the user's noise prior, not just fixed numbers
    assert air_again.encodings == air_fit.encodings
    xr.testing.assert_identical(air_again.params, air_fit.params)
    assert air_again.method == air_fit.method == "map"
    _same_report(air_again.optimizer, air_fit.optimizer)
    assert air_again.optimizer["success"] is True


def test_predictions_bit_identical_after_reopen(air, air_fit, air_again):
    new_time = xr.date_range("1858-06-01", periods=4, freq="2YS-JUN", calendar="360_day", use_cftime=True)
    grid = {"time": new_time.values, "latitude": np.array([14.0, 20.0, 26.0])}
    points = xr.Dataset(
        {
            "time": ("site", air["time"].values[[0, 3, 9]]),
            "latitude": ("site", [15.5, 19.0, 40.0]),
            "longitude": ("site", [226.0, 240.0, 231.0]),
        }
    )
    for request in (grid, points):
        for noise in (False, True):
            a = air_fit.predict(request, noise=noise)
            b = air_again.predict(request, noise=noise)
            for var in ("mean", "sd"):
                assert np.array_equal(a[var].values, b[var].values), (var, noise)
            xr.testing.assert_identical(a, b)


def test_predictions_reopen_with_cf_attributes(air_fit, tmp_path):
    new_time = xr.date_range("1870-06-01", periods=3, freq="YS-JUN", calendar="360_day", use_cftime=True)
    pred = air_fit.predict(time=new_time.values, noise=True)
    path = tmp_path / "prediction.nc"
    pred.to_netcdf(path)
    with xr.open_dataset(path, decode_times=CFTIME) as back:
        back = back.load()
    xr.testing.assert_identical(back, pred)
    assert back["mean"].attrs["units"] == "K"
    assert back["sd"].attrs["standard_name"] == "air_temperature standard_error"
    assert back.attrs["Conventions"] == pred.attrs["Conventions"]
    assert list(back["time"].values) == list(new_time.values)


# --------------------------------------------------------------------------- datetime64, fixed values


def test_datetime_coordinate_fixed_fit_roundtrip(tmp_path):
    times = pd.date_range("2001-03-01", periods=6, freq="12h").values
    x = np.array([0.0, 1.0, 3.0])
    da = xr.DataArray(
        np.random.default_rng(0).normal(size=(6, 3)),
        coords={"time": times, "x": x},
        dims=("time", "x"),
        attrs={"units": "m s-1"},
    )  # unnamed
    fit = xkron.fit(
        da,
        {"time": xkron.Matern52(ls=1.5), "x": xkron.RatQuad(ls=2.0, alpha=0.8)},
        amplitude=1.0,
        noise=0.2,
        mean=0.1,
        progressbar=False,
    )
    again = _roundtrip(fit, tmp_path / "dt.nc")
    xr.testing.assert_identical(again.data, da)
    assert again.data.name is None
    assert again.data["time"].dtype.kind == "M"
    xr.testing.assert_identical(again.params, fit.params)
    assert again.spec.priors == fit.spec.priors
    _same_report(again.optimizer, fit.optimizer)
    request = {
        "time": np.array(["2001-02-27T00:00", "2001-03-02T09:00"], dtype="datetime64[ns]"),
        "x": np.array([-1.0, 0.5, 4.0]),
    }
    assert np.array_equal(fit.predict(request)["mean"].values, again.predict(request)["mean"].values)
    assert np.array_equal(fit.predict(request)["sd"].values, again.predict(request)["sd"].values)


def test_packed_encoding_survives(tmp_path):
    da = xr.DataArray(
        np.round(np.random.default_rng(1).normal(size=(5, 4)), 2),
        coords={"x": np.arange(5.0), "y": np.arange(4.0)},
        dims=("x", "y"),
        name="v",
    )
    da.encoding = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 0.0, "_FillValue": -9999}
    da.to_netcdf(tmp_path / "packed.nc")
    with xr.open_dataarray(tmp_path / "packed.nc") as packed:
        packed = packed.load()
    fit = xkron.fit(
        packed, {"x": xkron.ExpQuad(ls=1.0), "y": xkron.ExpQuad(ls=1.0)}, amplitude=1.0, noise=0.1, progressbar=False
    )
    again = _roundtrip(fit, tmp_path / "fit.nc")
    np.testing.assert_array_equal(again.data.values, packed.values)
    for key in ("dtype", "_FillValue", "scale_factor", "add_offset"):
        assert again.data.encoding[key] == packed.encoding[key], key


# --------------------------------------------------------------------------- NUTS fit


@pytest.fixture(scope="module")
def nuts_fit():
    a, b = np.linspace(0, 1, 5), np.linspace(0, 2, 4)
    da = xr.DataArray(
        np.add.outer(np.sin(3 * a), np.cos(b)), coords={"a": a, "b": b}, dims=("a", "b"), name="z", attrs={"units": "1"}
    )
    with threadpool_limits(limits=1, user_api="blas"):
        return xkron.fit(
            da,
            {"a": xkron.ExpQuad(), "b": xkron.Matern52(ls=0.7)},
            method="nuts",
            draws=15,
            tune=15,
            chains=2,
            cores=1,
            progressbar=False,
            random_seed=3,
        )


def test_nuts_fit_roundtrip(nuts_fit, tmp_path):
    again = _roundtrip(nuts_fit, tmp_path / "nuts.nc")
    assert isinstance(again.posterior, xr.DataTree)
    assert set(again.posterior.children) == set(nuts_fit.posterior.children)
    assert {"posterior", "sample_stats", "observed_data"} <= set(again.posterior.children)
    for group in nuts_fit.posterior.children:
        xr.testing.assert_identical(again.posterior[group].to_dataset(), nuts_fit.posterior[group].to_dataset())
    xr.testing.assert_identical(again.params, nuts_fit.params)
    assert again.method == "nuts"
    assert again.spec.priors == nuts_fit.spec.priors
    request = {"a": xr.DataArray([0.1, 1.4], dims="p"), "b": xr.DataArray([0.3, 2.5], dims="p")}
    for per_draw in (False, True):
        x, y = nuts_fit.predict(**request, per_draw=per_draw), again.predict(**request, per_draw=per_draw)
        assert np.array_equal(x["mean"].values, y["mean"].values)
        assert np.array_equal(x["sd"].values, y["sd"].values)
