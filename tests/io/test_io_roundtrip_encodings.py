"""Item 1 of issue 11: fits of data with the time encodings real archives use survive to_netcdf/open_fit.

Each case writes a small field the way an archive does (the units, calendar and dtype of its
time axis), reads it back with xarray as a user would, fits it (fixed hyperparameters: no
optimiser), writes the fit and opens it again. The reopened fit must hold the same data,
coordinates (same type and resolution: cftime stays cftime of its calendar, datetime64[us] stays
[us]), attributes and encodings, and predict bit-identically. The references are xarray's own
reader and the fit as it was before writing.
"""

from __future__ import annotations

import datetime
import warnings

import cftime
import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xkron

# name: (units, calendar, decoder of the input file, how many units one step is at most)
CASES = {
    "reanalysis_hours_since_1-1-1": ("hours since 1-1-1 00:00:0.0", "gregorian", None, 24),
    "days_since_1800": ("days since 1800-1-1", None, None, 40),
    "days_since_1800_float_hours": ("days since 1800-1-1", "standard", None, 0.25),
    "months_since_360_day": ("months since 1990-01-01", "360_day", None, 3),
    "proleptic_gregorian": ("days since 1850-01-01 00:00:00", "proleptic_gregorian", None, 400),
    "proleptic_gregorian_cftime": ("days since 1850-01-01", "proleptic_gregorian", "cftime", 30),
    "julian": ("days since 1850-01-01", "julian", None, 30),
    "noleap": ("hours since 1979-01-01", "noleap", None, 6),
    "360_day": ("days since 1860-01-01", "360_day", None, 360),
    "datetime64_us": ("microseconds since 2020-02-02 02:02:02.000002", "proleptic_gregorian", "us", 10**6),
    "datetime64_s_year_1000": ("seconds since 1000-01-01", "proleptic_gregorian", "s", 86_400),
}


def _decoder(kind):
    if kind == "cftime":
        return xr.coders.CFDatetimeCoder(use_cftime=True)
    if kind in ("s", "us"):
        return xr.coders.CFDatetimeCoder(time_unit=kind)
    return True


def _archive_field(path, case, offsets, seed):
    """A (time, x) field whose time axis is stored as ``offsets`` in the case's units, read back by xarray."""
    units, calendar, decode, _ = CASES[case]
    attrs = {"units": units, "standard_name": "time", "axis": "T"}
    if calendar is not None:
        attrs["calendar"] = calendar
    values = np.asarray(offsets)
    x = np.array([0.0, 1.5, 2.5])
    raw = xr.Dataset(
        {"tas": (("time", "x"), np.random.default_rng(seed).normal(size=(values.size, 3)).astype(np.float32))},
        coords={"time": ("time", values, attrs), "x": ("x", x, {"units": "km"})},
    )
    raw["tas"].attrs = {"units": "K", "long_name": "air temperature"}
    raw.to_netcdf(path, encoding={"tas": {"zlib": True, "complevel": 2}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", xr.SerializationWarning)
        with xr.open_dataset(path, decode_times=_decoder(decode)) as ds:
            return ds["tas"].load()


def _new_times(da):
    """Requests between and beyond the training times, of the training times' type."""
    t = da["time"].values
    if t.dtype.kind == "M":
        step = (t[-1] - t[0]) / max(len(t) - 1, 1)
        return np.array([t[0] - step, t[0] + step / 3, t[-1] + 2 * step]).astype(t.dtype)
    return np.array([t[0] - (t[1] - t[0]), t[0] + (t[1] - t[0]) / 3, t[-1] + 2 * (t[1] - t[0])], dtype=object)


def _same_encoding(a, b):
    """Encodings equal key by key, with NaN equal to NaN and numpy types kept (repr compares both), less
    ``source``: the local path of the file read, which a fit file does not record."""
    b = {k: v for k, v in b.items() if k != "source"}
    assert "source" not in a
    assert a.keys() == b.keys()
    for key in a:
        assert repr(a[key]) == repr(b[key]), key


def _check_round_trip(da, path):
    kernels = {"time": xkron.Matern52(ls=2.0 * _span_days(da)), "x": xkron.ExpQuad(ls=1.0)}
    fit = xkron.fit(da, kernels, amplitude=1.3, noise=0.2, mean=0.1, progressbar=False)
    fit.to_netcdf(path)
    again = xkron.open_fit(path)

    xr.testing.assert_identical(again.data, da)  # values, dims, coords, attrs, name
    assert again.data.dtype == da.dtype
    for name in da.coords:
        assert again.data[name].dtype == da[name].dtype, name
        assert type(again.data[name].values.flat[0]) is type(da[name].values.flat[0]), name
    assert again.encodings == fit.encodings
    for f, g in zip(fit.spec.factors, again.spec.factors, strict=True):
        for a, b in zip(f.coords, g.coords, strict=True):
            assert a.tobytes() == b.tobytes()
    for request in ({}, {"time": _new_times(da), "x": np.array([0.2, 3.0])}):
        a, b = fit.predict(request, noise=True), again.predict(request, noise=True)
        assert a["mean"].values.tobytes() == b["mean"].values.tobytes()
        assert a["sd"].values.tobytes() == b["sd"].values.tobytes()
        xr.testing.assert_identical(a, b)
    for name in da.coords:  # the encodings as they were: the file's units, calendar, dtype
        _same_encoding(again.data[name].encoding, da[name].encoding)
    _same_encoding(again.data.encoding, da.encoding)


def _span_days(da):
    """The time span in days (the lengthscale scale), from xarray's own time arithmetic."""
    t = da["time"].values
    span = (t.max() - t.min()) / (np.timedelta64(1, "D") if t.dtype.kind == "M" else datetime.timedelta(1))
    return max(float(span), 1e-9)


@pytest.mark.parametrize("case", sorted(CASES))
def test_archive_time_encodings_round_trip(case, tmp_path):
    step = CASES[case][3]
    offsets = np.array([0, 1, 2, 4, 5]) * step + (7 if isinstance(step, int) else 0.5)
    da = _archive_field(tmp_path / "input.nc", case, offsets, seed=0)
    if case.startswith(("julian", "noleap", "360_day", "months", "proleptic_gregorian_cftime")):
        assert isinstance(da["time"].values[0], cftime.datetime)
    if case == "datetime64_us":
        assert da["time"].dtype == np.dtype("datetime64[us]")
    _check_round_trip(da, tmp_path / "fit.nc")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    case=st.sampled_from(sorted(CASES)),
    start=st.integers(0, 50),
    steps=st.lists(st.integers(1, 4), min_size=2, max_size=4, unique=False),
    seed=st.integers(0, 2**16),
)
def test_time_encodings_round_trip_property(case, start, steps, seed, tmp_path_factory):
    folder = tmp_path_factory.mktemp("enc")
    step = CASES[case][3]
    offsets = (start + np.cumsum([0, *steps])) * step
    if isinstance(step, int):
        offsets = offsets.astype(np.int64)
    da = _archive_field(folder / "input.nc", case, offsets, seed)
    _check_round_trip(da, folder / "fit.nc")


def test_datetime64_us_built_in_memory_keeps_its_resolution(tmp_path):
    times = np.array(["2020-01-01T00:00:00.000001", "2020-01-01T00:00:00.000003", "2020-01-01T00:00:01"], "M8[us]")
    da = xr.DataArray(np.arange(6.0).reshape(3, 2), coords={"time": times, "x": [0.0, 1.0]}, dims=("time", "x"))
    assert da["time"].dtype == np.dtype("datetime64[us]")
    _check_round_trip(da, tmp_path / "fit.nc")


def test_time_coordinate_encoding_that_would_round_is_not_applied(tmp_path):
    """Hourly times with the encoding 'days since 1800-1-1' as int32 cannot be written exactly:
    the fit stores them losslessly and restores that encoding on the reopened DataArray."""
    times = np.array(["2000-01-01T00", "2000-01-01T01", "2000-01-01T07"], dtype="datetime64[ns]")
    da = xr.DataArray(np.arange(6.0).reshape(3, 2), coords={"time": times, "x": [0.0, 1.0]}, dims=("time", "x"))
    da["time"].encoding = {"units": "days since 1800-1-1", "dtype": np.dtype("int32")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _check_round_trip(da, tmp_path / "fit.nc")


def test_non_dim_time_coordinates_keep_their_types(tmp_path):
    """Sibling: auxiliary times (lead timedelta64[s], valid datetime64[us]) next to a datetime64[s] dim."""
    t = np.array(["2000-01-01", "2000-01-02", "2000-01-04"], dtype="datetime64[s]")
    lead = np.array([1, 2, 3], dtype="timedelta64[h]").astype("timedelta64[s]")
    da = xr.DataArray(
        np.random.default_rng(0).normal(size=(3, 2)),
        coords={"time": t, "x": [0.0, 1.0], "lead": ("time", lead), "valid": ("time", (t + lead).astype("M8[us]"))},
        dims=("time", "x"),
    )
    _check_round_trip(da, tmp_path / "fit.nc")
