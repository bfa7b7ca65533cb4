"""Bad input to ``da.kron.fit`` fails with a clear error before any model is built."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
import xkron.inference.run


@pytest.fixture
def grid():
    rng = np.random.default_rng(0)
    return xr.DataArray(
        rng.normal(size=(5, 4, 3)),
        coords={"time": np.arange(5.0), "lat": np.linspace(10, 20, 4), "lon": np.linspace(0, 5, 3)},
        dims=("time", "lat", "lon"),
        name="t",
    )


@pytest.fixture(autouse=True)
def no_model_building(monkeypatch):
    """Any error must come before the PyMC model is built (i.e. before any compute)."""

    def fail(*args, **kwargs):
        raise AssertionError("the model was built before the input was checked")

    monkeypatch.setattr(xkron.inference.run, "build_model", fail)


ALL = {"time": xkron.Matern32(), ("lat", "lon"): xkron.ExpQuad()}


@pytest.mark.parametrize(
    ("change", "kernels", "error", "match"),
    [
        (None, {"time": "ExpQuad", "lat": "ExpQuad", "lon": "ExpQuad", "level": "ExpQuad"}, ValueError, "level"),
        (None, {"time": "ExpQuad", ("lat", "lon"): "ExpQuad", "lat": "ExpQuad"}, ValueError, "lat"),
        (None, {"time": "ExpQuad", "lat": "ExpQuad"}, ValueError, "lon"),
        (None, {"time": "Matern72", ("lat", "lon"): "ExpQuad"}, (TypeError, ValueError), "Matern72"),
        (lambda da: da.assign_coords(lat=[10.0, 12.0, 11.0, 20.0]), ALL, ValueError, "lat"),
        (lambda da: da.assign_coords(lon=[0.0, 0.0, 5.0]), ALL, ValueError, "lon"),
        (lambda da: da.assign_coords(time=[0.0, 1.0, np.nan, 3.0, 4.0]), ALL, ValueError, "time"),
        (lambda da: da.copy(data=np.where(da > 1.5, np.inf, da)), ALL, ValueError, "inf"),
        (lambda da: da.astype(str), ALL, TypeError, "dtype"),
        (lambda da: da.isel(lon=[0]), ALL, ValueError, "lon"),
    ],
    ids=[
        "dim-not-in-data",
        "dim-mapped-twice",
        "dim-not-mapped",
        "unknown-kernel",
        "non-monotonic",
        "duplicate-coordinate",
        "non-finite-coordinate",
        "inf-data",
        "non-numeric-data",
        "one-point",
    ],
)
def test_bad_input_is_rejected_before_compute(grid, change, kernels, error, match):
    da = change(grid) if change is not None else grid
    with pytest.raises(error, match=match):
        da.kron.fit(kernels, progressbar=False)


def test_nan_error_says_how_many_and_where(grid):
    da = grid.copy()
    da[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"1 NaN or masked cell.*solver='auto'") as info:
        da.kron.fit(ALL, solver="kronecker", progressbar=False)
    assert "lat" in str(info.value) and "time" in str(info.value)


def test_bad_hyperparameter_values(grid):
    with pytest.raises(ValueError, match="noise"):
        grid.kron.fit(ALL, noise=-1.0, progressbar=False)
    with pytest.raises(TypeError, match="amplitude"):
        grid.kron.fit(ALL, amplitude="big", progressbar=False)
    with pytest.raises(ValueError, match="method"):
        grid.kron.fit(ALL, method="vi", progressbar=False)


def test_dataset_accessor_names_missing_variable(grid):
    with pytest.raises(KeyError, match="t2m"):
        grid.to_dataset().kron.fit("t2m", ALL, progressbar=False)


def test_predict_rejects_unknown_dim(grid, monkeypatch):
    monkeypatch.undo()  # this one needs a real (fixed-value) fit
    fit = grid.kron.fit(
        {"time": xkron.Matern32(ls=2.0), ("lat", "lon"): xkron.ExpQuad(ls=3.0)},
        amplitude=1.0,
        noise=0.1,
        mean=0.0,
        progressbar=False,
    )
    with pytest.raises(ValueError, match="level"):
        fit.predict(level=[1.0, 2.0])
    with pytest.raises(ValueError, match="per_draw"):
        fit.predict(per_draw=True)
