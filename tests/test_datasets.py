"""Tests for the bundled datasets (xkron.datasets)."""

from __future__ import annotations

from pathlib import Path

import cftime
import numpy as np
import pytest
import xarray as xr
from threadpoolctl import threadpool_limits

from xkron import datasets
from xkron.datasets import load_air_temperature, seed_example


@pytest.fixture(scope="module")
def air() -> xr.DataArray:
    return load_air_temperature()


@pytest.fixture(scope="module")
def seed() -> xr.Dataset:
    return seed_example()


# --------------------------------------------------------------------------
# air temperature
# --------------------------------------------------------------------------


def test_air_temperature_structure(air: xr.DataArray) -> None:
    assert isinstance(air, xr.DataArray)
    assert air.name == "air_temperature"
    assert air.dims == ("time", "latitude", "longitude")
    assert air.shape == (240, 19, 25)
    assert air.dtype == np.float32
    assert set(air.coords) == {"time", "latitude", "longitude"}
    assert not air.isnull().any()


def test_air_temperature_attrs(air: xr.DataArray) -> None:
    assert air.attrs["units"] == "K"
    assert air.attrs["standard_name"] == "air_temperature"
    assert air.attrs["long_name"] == "Near-surface air temperature"
    assert air["latitude"].attrs["units"] == "degrees_north"
    assert air["latitude"].attrs["standard_name"] == "latitude"
    assert air["longitude"].attrs["units"] == "degrees_east"
    assert air["longitude"].attrs["standard_name"] == "longitude"
    assert air["time"].attrs["standard_name"] == "time"
    # encodings survive the load
    assert air.encoding["dtype"] == np.float32
    assert air.encoding["zlib"] is True
    assert air["time"].encoding["calendar"] == "360_day"
    assert air["time"].encoding["units"].startswith("hours since 1970-01-01")


def test_air_temperature_time_axis(air: xr.DataArray) -> None:
    times = air["time"].values
    assert all(isinstance(t, cftime.Datetime360Day) for t in times)
    assert air["time"].dt.calendar == "360_day"
    assert [t.year for t in times] == list(range(1860, 2100))
    assert {(t.month, t.day) for t in times} == {(6, 1)}


def test_air_temperature_grid(air: xr.DataArray) -> None:
    np.testing.assert_allclose(air["latitude"], np.arange(15.0, 60.01, 2.5))
    np.testing.assert_allclose(air["longitude"], np.arange(225.0, 315.01, 3.75))
    assert 250.0 < float(air.min()) < float(air.max()) < 320.0


def test_air_temperature_matches_iris_sample_data(air: xr.DataArray) -> None:
    iris_sample_data = pytest.importorskip("iris_sample_data")
    src = Path(iris_sample_data.path) / "A1B_north_america.nc"
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(src, decode_times=decode) as ds:
        orig = ds["air_temperature"].isel(latitude=slice(None, None, 2), longitude=slice(None, None, 2))
        orig = orig.load()
    assert orig.shape == air.shape
    np.testing.assert_array_equal(air.values, orig.values)
    np.testing.assert_array_equal(air["latitude"].values, orig["latitude"].values)
    np.testing.assert_array_equal(air["longitude"].values, orig["longitude"].values)
    assert list(air["time"].values) == list(orig["time"].values)


def test_bundled_file_opens_cleanly() -> None:
    path = datasets.DATA_DIR / datasets.AIR_TEMPERATURE_FILE
    assert path.is_file()
    assert path.stat().st_size < 600_000
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(path, decode_times=decode) as ds:
        assert set(ds.data_vars) == {"air_temperature", "time_bnds"}
        assert ds.attrs["Conventions"] == "CF-1.8"
        for key in ("title", "source", "history"):
            assert ds.attrs[key]


def test_missing_data_file_message(monkeypatch, tmp_path) -> None:
    candidates = (tmp_path / "a" / "_datasets", tmp_path / "b" / "datasets")
    monkeypatch.setattr(datasets, "_CANDIDATE_DIRS", candidates)
    monkeypatch.setattr(datasets, "DATA_DIR", candidates[-1])
    with pytest.raises(FileNotFoundError) as excinfo:
        load_air_temperature()
    message = str(excinfo.value)
    for directory in candidates:
        assert str(directory / datasets.AIR_TEMPERATURE_FILE) in message


def test_wheel_layout_is_preferred(monkeypatch, tmp_path) -> None:
    wheel_dir = tmp_path / "xkron" / "_datasets"
    wheel_dir.mkdir(parents=True)
    src = datasets.DATA_DIR / datasets.AIR_TEMPERATURE_FILE
    (wheel_dir / datasets.AIR_TEMPERATURE_FILE).write_bytes(src.read_bytes())
    monkeypatch.setattr(datasets, "_CANDIDATE_DIRS", (wheel_dir, tmp_path / "missing" / "datasets"))
    assert datasets._resolve_data_dir() == wheel_dir


# --------------------------------------------------------------------------
# seed example (simulated data of PyMC's GP-Kron notebook)
# --------------------------------------------------------------------------


def _notebook_recipe() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the data-simulation cells of PyMC's GP-Kron notebook verbatim."""
    import pymc as pm

    seed = sum(map(ord, "gpkron"))
    rng = np.random.default_rng(seed)

    n1, n2 = (50, 30)
    x1 = np.linspace(0, 5, n1)
    x2 = np.linspace(0, 3, n2)
    X = pm.math.cartesian(x1[:, None], x2[:, None])

    l1_true = 0.8
    l2_true = 1.0
    eta_true = 1.0
    cov = (
        eta_true**2 * pm.gp.cov.Matern52(2, l1_true, active_dims=[0]) * pm.gp.cov.Cosine(2, ls=l2_true, active_dims=[1])
    )
    K = cov(X).eval()
    f_true = rng.multivariate_normal(np.zeros(X.shape[0]), K, 1).flatten()

    sigma_true = 0.5
    y = f_true + sigma_true * rng.standard_normal(X.shape[0])
    return X, f_true, y


def test_seed_example_structure(seed: xr.Dataset) -> None:
    assert set(seed.data_vars) == {"y", "f_true"}
    for name in ("y", "f_true"):
        assert seed[name].dims == ("x1", "x2")
        assert seed[name].shape == (50, 30)
        assert np.isfinite(seed[name]).all()
    np.testing.assert_array_equal(seed["x1"], np.linspace(0, 5, 50))
    np.testing.assert_array_equal(seed["x2"], np.linspace(0, 3, 30))
    assert seed.attrs["ls1_true"] == 0.8
    assert seed.attrs["ls2_true"] == 1.0
    assert seed.attrs["eta_true"] == 1.0
    assert seed.attrs["sigma_true"] == 0.5
    assert seed.attrs["seed"] == sum(map(ord, "gpkron"))
    assert seed.attrs["description"]


def test_seed_example_noise_level(seed: xr.Dataset) -> None:
    resid = (seed["y"] - seed["f_true"]).values
    assert abs(resid.std() - 0.5) < 0.03


def test_seed_example_matches_notebook(seed: xr.Dataset) -> None:
    # The notebook's SVD-based draw depends on the BLAS thread count (its covariance is
    # rank-deficient); seed_example() draws with one BLAS thread, so the reference does too.
    with threadpool_limits(limits=1, user_api="blas"):
        X, f_true, y = _notebook_recipe()
    # row-major reshape matches pm.math.cartesian order (x1 varies slowest)
    x1_grid, x2_grid = xr.broadcast(seed["x1"], seed["x2"])
    np.testing.assert_array_equal(x1_grid.values.ravel(), X[:, 0])
    np.testing.assert_array_equal(x2_grid.values.ravel(), X[:, 1])
    np.testing.assert_array_equal(seed["y"].values.ravel(), y)
    np.testing.assert_array_equal(seed["f_true"].values.ravel(), f_true)
