"""Item 2 of issue 11: a write that fails half-way leaves the previous file intact (library side).

The CLI's outputs go through the same helper; see ``tests/test_cli_outputs.py``.
"""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.io.atomic import TEMP_MARKER, atomic_write


def _fit(scale=1.0):
    x = np.linspace(0.0, 1.0, 4)
    da = xr.DataArray(scale * np.add.outer(x, x**2), coords={"a": x, "b": x}, dims=("a", "b"), name="z")
    kernels = {"a": xkron.ExpQuad(ls=0.5), "b": xkron.Matern32(ls=0.7)}
    return xkron.fit(da, kernels, amplitude=1.0, noise=0.1, mean=0.0, progressbar=False)


def _leftovers(folder):
    return [p for p in os.listdir(folder) if TEMP_MARKER in p]


def test_failed_fit_write_keeps_the_previous_file(tmp_path):
    path = tmp_path / "fit.nc"
    good = _fit()
    good.to_netcdf(path)
    before = path.read_bytes()
    bad = _fit(scale=2.0)
    bad.params.attrs["not_storable"] = {"a dict": "is no NetCDF attribute"}  # fails after the root group is written
    with pytest.raises(TypeError):
        bad.to_netcdf(path)
    assert path.read_bytes() == before
    again = xkron.open_fit(path)
    assert again.predict()["mean"].values.tobytes() == good.predict()["mean"].values.tobytes()
    assert _leftovers(tmp_path) == []


def test_failed_batch_write_keeps_the_previous_file(tmp_path):
    rng = np.random.default_rng(0)
    da = xr.DataArray(
        rng.normal(size=(2, 4, 3)),
        coords={"m": ["r1", "r2"], "a": np.arange(4.0), "b": np.arange(3.0)},
        dims=("m", "a", "b"),
    )
    kernels = {"a": xkron.ExpQuad(ls=1.0), "b": xkron.ExpQuad(ls=1.0)}
    batch = xkron.fit(da, kernels, batch_dims=["m"], amplitude=1.0, noise=0.3, mean=0.0, progressbar=False)
    path = tmp_path / "batch.nc"
    batch.to_netcdf(path)
    before = path.read_bytes()
    next(iter(batch.fits.values())).params.attrs["not_storable"] = {"x": 1}
    with pytest.raises(TypeError):
        batch.to_netcdf(path)
    assert path.read_bytes() == before
    assert _leftovers(tmp_path) == []


def test_interrupted_write_removes_its_temporary_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(KeyboardInterrupt), atomic_write(path) as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert path.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_successful_write_replaces_and_keeps_permissions(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    os.chmod(path, 0o640)
    with atomic_write(path) as tmp:
        assert tmp.parent == path.parent and tmp.suffix == ".txt" and not tmp.exists()
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert _leftovers(tmp_path) == []


def test_a_directory_store_is_replaced_whole(tmp_path):
    path = tmp_path / "store.zarr"
    path.mkdir()
    (path / "old_only").write_text("1")
    with atomic_write(path) as tmp:
        tmp.mkdir()
        (tmp / "new_only").write_text("2")
    assert sorted(os.listdir(path)) == ["new_only"]
    with pytest.raises(RuntimeError), atomic_write(path) as tmp:
        tmp.mkdir()
        raise RuntimeError("disk full")
    assert sorted(os.listdir(path)) == ["new_only"]
    assert _leftovers(tmp_path) == []


def test_append_mode_is_refused(tmp_path):
    with pytest.raises(ValueError, match="written whole"):
        _fit().to_netcdf(tmp_path / "fit.nc", mode="a")
