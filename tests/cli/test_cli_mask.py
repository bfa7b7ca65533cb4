"""Issue 16, item 6: masks on the command line for data that are NaN on land.

* ``xkron fit`` without a mask on NaN-land data, then ``xkron predict --mask``: NaN exactly on the
  never-observed (land) cells, gaps filled, on the training grid and on a new time grid;
* ``xkron fit --mask FILE.nc:VAR`` (a land-sea mask of another file, float32 coordinates and a
  time dim of one point, as ERA5 stores them) equals ``xkron.fit(mask=...)``;
* ``xkron predict --grid REF.nc --mask REF.nc:VAR`` masks a prediction on a finer grid;
* clear errors for a mask on another grid and for a fit whose land cannot be told from gaps.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_calls import FAST
from cli_calls import ok as _ok
from cli_calls import open_loaded as _open
from cli_calls import run as _run

import xkron

KERNELS = ["--kernel", "time=Matern32", "--kernel", "latitude,longitude=ExpQuad"]
KERNEL_MAP = {"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad()}
LAT, LON = np.linspace(10.0, 30.0, 5), np.linspace(0.0, 30.0, 4)


def _sea(lat, lon):
    """1 on sea, 0 on land: land is the corner latitude < 16, longitude < 12 (four cells of the data grid)."""
    return ((lat[:, None] >= 16) | (lon[None, :] >= 12)).astype("i1")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``sst.nc`` (NaN on land at every time, two gaps), ``lsm.nc`` (ERA5-like), ``fine.nc`` (a finer grid's lsm)."""
    root = tmp_path_factory.mktemp("cli_mask")
    rng = np.random.default_rng(3)
    times = pd.date_range("2000-01-01", periods=6, freq="D")
    t = np.arange(6.0)
    y = np.sin(t / 2)[:, None, None] + np.cos(LAT / 10)[None, :, None] * np.sin(LON / 10)[None, None, :]
    y = y + 0.1 * rng.standard_normal(y.shape)
    y[:, _sea(LAT, LON) == 0] = np.nan
    y[1, 2, 3] = y[4, 3, 1] = np.nan  # gaps (clouds), to be filled
    coords = {"time": times, "latitude": LAT, "longitude": LON}
    xr.Dataset({"sst": (("time", "latitude", "longitude"), y, {"units": "K"})}, coords=coords).to_netcdf(
        root / "sst.nc"
    )
    lsm = xr.Dataset(
        {"lsm": (("time", "latitude", "longitude"), _sea(LAT, LON)[None].astype("f4"))},
        coords={
            "time": [np.datetime64("1979-01-01", "ns")],
            "latitude": LAT.astype("f4"),
            "longitude": LON.astype("f4"),
        },
    )
    lsm.to_netcdf(root / "lsm.nc")
    flat, flon = np.linspace(10.0, 30.0, 9), np.linspace(0.0, 30.0, 7)
    fine = xr.Dataset(
        {"lsm": (("latitude", "longitude"), _sea(flat, flon))}, coords={"latitude": flat, "longitude": flon}
    )
    fine.to_netcdf(root / "fine.nc")
    _ok("fit", root / "sst.nc", "--var", "sst", *KERNELS, *FAST, "--out", root / "fit.nc")
    return root


def test_predict_mask_on_nan_land_fit_blanks_land_and_fills_gaps(files, tmp_path):
    _ok("predict", files / "fit.nc", "--mask", "--out", tmp_path / "p.nc")
    written = _open(tmp_path / "p.nc")
    direct = xkron.open_fit(files / "fit.nc").predict()
    land = xr.DataArray(_sea(LAT, LON) == 0, coords={"latitude": LAT, "longitude": LON})
    assert bool(written["mean"].where(land).isnull().all())  # NaN on land at every time
    assert int(written["mean"].isnull().sum()) == 6 * int(land.sum())  # and nowhere else: the gaps are filled
    sea = ~land
    np.testing.assert_allclose(
        written["mean"].where(sea).values, direct["mean"].where(sea).values, rtol=1e-12, equal_nan=True
    )
    # The land mask does not vary in time: it applies on a new time grid too.
    _ok("predict", files / "fit.nc", "--mask", "--grid", "time=2000-01-02:2000-01-10:1D", "--out", tmp_path / "t.nc")
    new = _open(tmp_path / "t.nc")
    assert new.sizes["time"] == 9 and int(new["mean"].isnull().sum()) == 9 * int(land.sum())


def test_fit_mask_from_another_file_equals_library(files, tmp_path):
    _ok("fit", files / "sst.nc", "--var", "sst", *KERNELS, *FAST, "--mask", f"{files / 'lsm.nc'}:lsm",
        "--out", tmp_path / "f.nc")  # fmt: skip
    with xr.open_dataset(files / "sst.nc") as ds:
        data = ds["sst"].load()
    mask = xr.DataArray(_sea(LAT, LON) != 0, coords={"latitude": LAT, "longitude": LON})
    direct = xkron.fit(data, KERNEL_MAP, mask=mask, restarts=0, random_seed=0, progressbar=False)
    fit = xkron.open_fit(tmp_path / "f.nc")
    xr.testing.assert_allclose(fit.params, direct.params, rtol=1e-10)
    assert fit.mask is not None and int((~fit.mask).sum()) == 6 * 4
    # predict --mask re-applies that (stored) mask.
    _ok("predict", tmp_path / "f.nc", "--mask", "--out", tmp_path / "p.nc")
    assert int(_open(tmp_path / "p.nc")["mean"].isnull().sum()) == 6 * 4


def test_predict_on_reference_grid_with_its_mask(files, tmp_path):
    fine = files / "fine.nc"
    _ok("predict", files / "fit.nc", "--grid", fine, "--mask", f"{fine}:lsm", "--out", tmp_path / "p.nc")
    written = _open(tmp_path / "p.nc")
    flat, flon = np.linspace(10.0, 30.0, 9), np.linspace(0.0, 30.0, 7)
    direct = xkron.open_fit(files / "fit.nc").predict(latitude=flat, longitude=flon)
    sea = xr.DataArray(_sea(flat, flon) != 0, coords={"latitude": flat, "longitude": flon})
    expected = direct["mean"].where(sea)
    np.testing.assert_allclose(written["mean"].values, expected.values, rtol=1e-12, equal_nan=True)
    assert int(written["mean"].isnull().sum()) == 6 * int((~sea).sum())


def test_mask_errors(files, tmp_path):
    shifted = xr.Dataset({"lsm": (("latitude",), np.ones(5))}, coords={"latitude": LAT + 0.5})
    shifted.to_netcdf(tmp_path / "shifted.nc")
    result = _run("predict", files / "fit.nc", "--mask", f"{tmp_path / 'shifted.nc'}:lsm", "--out", tmp_path / "p.nc")
    assert result.exit_code == 2
    assert "the mask's 'latitude' coordinate (5 values, 10.5 .. 30.5) does not hold every" in " ".join(
        result.output.split()
    )
    result = _run("predict", files / "fit.nc", "--mask", f"{files / 'lsm.nc'}:nope", "--out", tmp_path / "p.nc")
    assert result.exit_code == 2 and "no variable 'nope'" in result.output
    # Without a time dim, never-observed cells cannot be told from gaps: the message names the fix.
    xy = xr.Dataset({"v": (("x", "y"), np.where(np.eye(4) > 0, np.nan, np.arange(16.0).reshape(4, 4)))},
                    coords={"x": np.arange(4.0), "y": np.arange(4.0)})  # fmt: skip
    xy.to_netcdf(tmp_path / "xy.nc")
    _ok("fit", tmp_path / "xy.nc", "--var", "v", "--kernel", "x,y=ExpQuad", *FAST, "--out", tmp_path / "xy_fit.nc")
    result = _run("predict", tmp_path / "xy_fit.nc", "--mask", "--out", tmp_path / "p.nc")
    assert result.exit_code == 2
    assert "without a time dim" in result.output and "--mask FILE.nc:VAR" in " ".join(result.output.split())
    assert not (tmp_path / "p.nc").exists()
