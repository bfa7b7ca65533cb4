"""The gap fillers and grids that ``tests/benchmarks/bench_missing.py`` compares xkron with.

DINEOF must recover a low-rank field from gappy data and find its rank by cross-validation;
linear interpolation must be exact where it should be (a plane); the synthetic masks must have
the shares of land and cloud the benchmark claims.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import xarray as xr

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "benchmarks"))

import gappy_grids as gg


def _grid(values: np.ndarray) -> xr.DataArray:
    nt, ny, nx = values.shape
    coords = {"time": np.arange(nt), "latitude": 0.5 * np.arange(ny), "longitude": 0.7 * np.arange(nx)}
    return xr.DataArray(values, coords=coords, dims=gg.DIMS)


def _rank3(seed=0, shape=(40, 15, 20), missing=0.3, noise=0.1):
    """A rank-3 (time x space) field plus small noise, with ``missing`` of the cells hidden at random."""
    rng = np.random.default_rng(seed)
    nt, ny, nx = shape
    t = np.linspace(0, 1, nt)
    temporal = np.stack([np.sin(2 * np.pi * t), np.cos(3 * np.pi * t), t - 0.5])
    spatial = rng.standard_normal((3, ny * nx)) * np.array([[3.0], [2.0], [1.5]])
    truth = (temporal.T @ spatial).reshape(shape) + 5.0
    y = truth + noise * rng.standard_normal(shape)
    hidden = rng.random(shape) < missing
    return truth, np.where(hidden, np.nan, y), hidden


def test_dineof_recovers_a_rank3_field_and_picks_three_modes():
    truth, data, hidden = _rank3()
    sea = np.ones(data.shape[1:], dtype=bool)
    filled, info = gg.dineof(_grid(data), sea)
    rmse = np.sqrt(np.mean((filled[hidden] - truth[hidden]) ** 2))
    mean_fill = np.nanmean(data)
    rmse_mean = np.sqrt(np.mean((mean_fill - truth[hidden]) ** 2))
    assert rmse < 0.05 * rmse_mean, (rmse, rmse_mean)
    assert rmse < 0.1, rmse  # below the noise sd (0.1): the three modes average the noise out
    assert info["k"] in (3, 4), info
    assert info["cv_rmse"][2] < 1.2 * 0.1, info["cv_rmse"]  # at 3 modes the held-out error is the noise sd
    assert np.array_equal(filled[~hidden], data[~hidden])  # observed cells are kept


def test_dineof_leaves_land_empty_and_fills_every_sea_cell():
    _, data, _ = _rank3(shape=(12, 6, 7))
    sea = np.ones((6, 7), dtype=bool)
    sea[:2, :3] = False
    data[:, ~sea] = np.nan
    filled, _ = gg.dineof(_grid(data), sea, k_max=4)
    assert np.isnan(filled[:, ~sea]).all()
    assert np.isfinite(filled[:, sea]).all()


def test_linear_fill_is_exact_on_a_plane():
    rng = np.random.default_rng(1)
    da = _grid(np.zeros((3, 12, 14)))
    lat, lon = np.meshgrid(da["latitude"].values, da["longitude"].values, indexing="ij")
    plane = np.stack([1.0 + 2.0 * lat - 0.5 * lon + k for k in range(3)])
    hidden = rng.random(plane.shape) < 0.4
    hidden[:, [0, -1], :] = False  # keep the corners' rows and columns: every hidden cell is inside the hull
    hidden[:, :, [0, -1]] = False
    sea = np.ones(plane.shape[1:], dtype=bool)
    filled = gg.linear_fill(da.copy(data=np.where(hidden, np.nan, plane)), sea)
    np.testing.assert_allclose(filled, plane, rtol=0, atol=1e-10)


def test_linear_fill_uses_the_nearest_cell_outside_the_hull():
    da = _grid(np.full((1, 3, 3), np.nan))
    da.values[0, 1, 1], da.values[0, 1, 2], da.values[0, 2, 1] = 1.0, 2.0, 3.0
    filled = gg.linear_fill(da, np.ones((3, 3), dtype=bool))
    assert filled[0, 0, 0] == 1.0  # nearest observed cell of the corner
    assert np.isfinite(filled).all()


def test_cloud_masks_hide_the_stated_share_of_the_sea():
    rng = np.random.default_rng(2)
    land = gg.land_mask((40, 60), 0.6, 6.0, rng)
    observed = gg.cloud_masks(8, ~land, rng, sigma=4.0, drift=(1, 2), max_day=3)
    cover = 1 - observed.sum((1, 2)) / (~land).sum()
    assert land.mean() == pytest.approx(0.6, abs=1e-3)
    assert cover.mean() == pytest.approx(0.45, abs=0.01)
    assert cover[3] == pytest.approx(0.9, abs=0.01)
    assert not (observed & land).any()
    assert not np.array_equal(observed[0], observed[1])  # the clouds move


def test_land_mask_is_one_connected_mass():
    from scipy import ndimage

    land = gg.land_mask((50, 70), 0.3, 5.0, np.random.default_rng(3))
    _, n = ndimage.label(land)
    assert n == 1
    assert land.sum() == round(0.3 * land.size)


def test_transplant_holds_out_what_the_donor_hides():
    observed = np.array([[[1, 1, 0, 1]], [[1, 0, 0, 1]], [[0, 1, 1, 1]]], dtype=bool)
    held = gg.transplant(observed, [(0, 1), (2, 0)])
    np.testing.assert_array_equal(held[0, 0], [False, True, False, False])
    np.testing.assert_array_equal(held[1, 0], [False] * 4)
    np.testing.assert_array_equal(held[2, 0], [False, False, True, False])


def test_gp_draw_has_the_kronecker_covariance():
    x = np.linspace(0, 1, 4)
    c1, c2 = gg.matern32(x, 0.5), gg.matern52(x[:3], 0.3)
    rng = np.random.default_rng(4)
    draws = np.stack([gg.gp_draw([c1, c2], rng).ravel() for _ in range(8000)])
    np.testing.assert_allclose(np.cov(draws.T), np.kron(c1, c2), atol=0.06)  # Monte Carlo sd of each entry <= 0.016


def test_baselines_refuse_dask_data_without_computing_it():
    import dask.array

    from xkron.baselines import dineof, linear_fill

    values = np.ones((3, 4, 5))
    da = xr.DataArray(dask.array.from_array(values, chunks=2), dims=("time", "latitude", "longitude"))
    for fill in (linear_fill, dineof):
        with pytest.raises(TypeError, match="need the data in memory"):
            fill(da)
