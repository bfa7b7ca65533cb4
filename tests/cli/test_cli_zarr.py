"""Issue 16, item 6: zarr (the optional extra ``xkron[zarr]``) on the command line.

A zarr round trip: data read from a zarr store fit to the same hyperparameters as from NetCDF,
a prediction written to a zarr store holds the same values as the NetCDF one, a zarr store serves
as a reference grid. Without the zarr package, the commands refuse a zarr path before any work,
naming the extra to install.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_calls import FAST
from cli_calls import ok as _ok
from cli_calls import run as _run

import xkron
from xkron.cli.files import ZARR_INSTALL

pytest.importorskip("zarr")

KERNELS = ["--kernel", "time=Matern32", "--kernel", "x=ExpQuad"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_zarr")
    rng = np.random.default_rng(7)
    x = np.linspace(0.0, 4.0, 5)
    y = np.sin(np.arange(6.0) / 2)[:, None] + np.cos(x)[None, :] + 0.1 * rng.standard_normal((6, 5))
    y[2, 3] = np.nan
    coords = {"time": pd.date_range("2000-01-01", periods=6, freq="D"), "x": x}
    ds = xr.Dataset({"v": (("time", "x"), y, {"units": "K"})}, coords=coords)
    ds.to_netcdf(root / "data.nc")
    ds.to_zarr(root / "data.zarr", mode="w")
    xr.Dataset(coords={"x": np.linspace(0.0, 4.0, 9)}).to_zarr(root / "ref.zarr", mode="w")
    return root


def test_zarr_round_trip(files, tmp_path):
    _ok("fit", files / "data.zarr", "--var", "v", *KERNELS, *FAST, "--out", tmp_path / "from_zarr.nc")
    _ok("fit", files / "data.nc", "--var", "v", *KERNELS, *FAST, "--out", tmp_path / "from_nc.nc")
    from_zarr, from_nc = xkron.open_fit(tmp_path / "from_zarr.nc"), xkron.open_fit(tmp_path / "from_nc.nc")
    xr.testing.assert_allclose(from_zarr.params, from_nc.params, rtol=1e-12)

    _ok("predict", tmp_path / "from_zarr.nc", "--grid", files / "ref.zarr", "--out", tmp_path / "pred.zarr")
    _ok("predict", tmp_path / "from_zarr.nc", "--grid", files / "ref.zarr", "--out", tmp_path / "pred.nc")
    with xr.open_zarr(tmp_path / "pred.zarr") as z, xr.open_dataset(tmp_path / "pred.nc") as n:
        z, n = z.load(), n.load()
    np.testing.assert_array_equal(z["x"].values, np.linspace(0.0, 4.0, 9))
    np.testing.assert_array_equal(z["time"].values, n["time"].values)
    for name in ("mean", "sd"):
        np.testing.assert_allclose(z[name].values, n[name].values, rtol=0, atol=0)
        assert z[name].attrs["units"] == "K"
    direct = from_nc.predict(x=np.linspace(0.0, 4.0, 9))
    np.testing.assert_allclose(z["mean"].values, direct["mean"].values, rtol=1e-12)


def test_missing_zarr_names_the_extra_before_any_work(files, tmp_path, monkeypatch):
    _ok("fit", files / "data.nc", "--var", "v", *KERNELS, *FAST, "--out", tmp_path / "fit.nc")
    monkeypatch.setitem(sys.modules, "zarr", None)  # `import zarr` now raises ImportError
    result = _run("predict", tmp_path / "fit.nc", "--out", tmp_path / "pred.zarr")
    assert result.exit_code == 2, result.output
    assert ZARR_INSTALL in result.output and 'pip install "xkron[zarr]"' in result.output
    assert not (tmp_path / "pred.zarr").exists()
    result = _run("fit", files / "data.zarr", "--var", "v", *KERNELS, *FAST, "--out", tmp_path / "f2.nc")
    assert result.exit_code == 2, result.output
    assert 'pip install "xkron[zarr]"' in result.output and not (tmp_path / "f2.nc").exists()
