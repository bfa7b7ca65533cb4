"""Issue 13, item 3: data-driven MAP starts from the empirical semivariogram of the observed cells.

A draw of a product-kernel GP on a gappy grid (a static "land" blob plus random gaps) must give
back its lengthscales within 20% and its noise variance within a factor 2 (the nugget, an
extrapolation to lag 0, scatters more); where the variogram cannot tell (too few pairs, a dim
along which the data are constant) the starts fall back to the old ladder without an error.
"""

from __future__ import annotations

import numpy as np
import pytest

from xkron.settings import NUGGET_FRACTION, RESTART_LS_FACTORS
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, ExpQuad, Matern32, Matern52
from xkron.spec.priors import data_priors, grid_scales, map_starts, resolve_priors, start_ladder
from xkron.spec.variogram import data_lengthscales, semivariogram

SHAPE = (40, 36, 44)
LS = (3.0, 4.0, 5.0)
ETA, SIGMA = 1.5, 0.3


def gp_draw(kernel, seed: int = 0, coords=None) -> tuple[np.ndarray, list[np.ndarray]]:
    """``10 + η f + σ ε``, ``f`` a draw of ``kernel(t) ⊗ kernel(a) ⊗ kernel(b)``; 20% land and 10% random gaps."""
    rng = np.random.default_rng(seed)
    coords = coords or [np.arange(n, dtype=float) for n in SHAPE]
    f = rng.standard_normal([len(c) for c in coords])
    for axis, (c, ls) in enumerate(zip(coords, LS, strict=True)):
        k = kernel.correlation([np.subtract.outer(c, c)], {"ls": [ls]})
        chol = np.linalg.cholesky(k + 1e-8 * np.eye(len(c)))
        f = np.moveaxis(np.tensordot(chol, np.moveaxis(f, axis, 0), axes=1), 0, axis)
    y = 10.0 + ETA * f + SIGMA * rng.standard_normal(f.shape)
    la, lo = np.meshgrid(coords[1], coords[2], indexing="ij")
    blob = np.hypot((la - la.mean()) / 6, (lo - lo.max()) / 9)
    y[:, blob <= np.quantile(blob, 0.2)] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan
    return y, coords


def factors_for(kernel, coords, dims=("t", "a", "b")):
    return tuple(Factor((d,), kernel, (c,)) for d, c in zip(dims, coords, strict=True))


def priors_for(factors, y):
    seen = y[np.isfinite(y)]
    return resolve_priors(factors, "constant", None, data_priors(seen.mean(), seen.std()), {"noise": None})


def test_semivariogram_matches_a_direct_count_on_irregular_coordinates():
    """Pairs binned by distance (median spacing), NaN cells dropping their pairs, checked pair by pair."""
    rng = np.random.default_rng(3)
    coord = np.cumsum(rng.uniform(0.8, 1.2, 30))
    y = rng.normal(size=(30, 5))
    y[rng.random(y.shape) < 0.2] = np.nan
    v = semivariogram(y, 0, coord)
    step = np.median(np.diff(coord))
    for lag, gamma, pairs in zip(v.lags, v.gamma, v.pairs, strict=True):
        i, j = np.triu_indices(30, 1)
        d = coord[j] - coord[i]
        same_bin = np.rint(d / step) == np.rint(lag / step)
        sq = (y[j][same_bin] - y[i][same_bin]) ** 2
        ok = np.isfinite(sq)
        assert pairs == ok.sum()
        assert gamma == pytest.approx(0.5 * sq[ok].mean(), rel=1e-12)
        assert lag == pytest.approx(np.average(np.broadcast_to(d[same_bin][:, None], sq.shape)[ok]), rel=1e-12)
    assert len(v.lags) == 10


@pytest.mark.parametrize("kernel", [ExpQuad(), Matern32(), Matern52()], ids=lambda k: k.name)
def test_variogram_recovers_lengthscales_and_noise_on_a_gappy_grid(kernel):
    y, coords = gp_draw(kernel)
    factors = factors_for(kernel, coords)
    ls, nugget = data_lengthscales(factors, y, {})
    for name, true in zip(("ls_t", "ls_a", "ls_b"), LS, strict=True):
        assert ls[name] == pytest.approx(true, rel=0.2), (name, ls)
    assert SIGMA**2 / 2 <= nugget <= 2 * SIGMA**2, nugget
    start, *restarts = map_starts(factors, priors_for(factors, y), y, 3)
    assert {k: start[k] for k in ls} == pytest.approx(ls, rel=1e-12)
    assert start["noise"] == pytest.approx(np.sqrt(nugget), rel=1e-12)
    assert start["amplitude"] == pytest.approx(np.sqrt(np.nanvar(y) - nugget), rel=1e-12)
    assert start["mean"] == pytest.approx(np.nanmean(y), rel=1e-12)
    for k, other in enumerate(restarts):
        assert other["ls_a"] == pytest.approx(RESTART_LS_FACTORS[k] * ls["ls_a"], rel=1e-12)


def test_a_multi_dim_factor_gets_each_dims_lengthscale_from_its_own_variogram():
    y, coords = gp_draw(Matern52(), seed=1)
    joint = (Factor(("t",), Matern52(), (coords[0],)), Factor(("a", "b"), Matern52(), (coords[1], coords[2])))
    ls, _ = data_lengthscales(joint, y.reshape(SHAPE[0], -1), {})
    single, _ = data_lengthscales(factors_for(Matern52(), coords), y, {})
    assert ls == pytest.approx(single, rel=1e-12)


def old_starts(factors, y, n):
    """The starts before issue 13: the ladder, ``sd(y)`` and ``sd(y)/10`` (over the observed cells)."""
    seen = y[np.isfinite(y)]
    starts = [{} for _ in range(n)]
    for f in factors:
        for name, coord in zip(f.param_names()["ls"], f.coords, strict=True):
            for s, v in zip(starts, start_ladder(*grid_scales(coord), n), strict=True):
                s[name] = v
    for s in starts:
        s.update(amplitude=seen.std(), noise=0.1 * seen.std(), mean=seen.mean())
    return starts


def test_too_few_pairs_fall_back_to_the_ladder():
    rng = np.random.default_rng(0)
    coords = [np.arange(6.0), np.arange(5.0)]
    y = rng.normal(size=(6, 5))
    y[rng.random(y.shape) < 0.3] = np.nan
    factors = factors_for(Matern52(), coords, dims=("a", "b"))
    assert data_lengthscales(factors, y, {}) == ({}, None)
    starts = map_starts(factors, priors_for(factors, y), y, 3)
    assert starts == [pytest.approx(s, rel=1e-12) for s in old_starts(factors, y, 3)]


def test_a_dim_along_which_the_data_are_constant_falls_back_to_the_ladder():
    y, coords = gp_draw(Matern52(), seed=2)
    y = np.where(np.isfinite(y), np.nanmean(y, axis=0, keepdims=True), np.nan)  # constant along t
    factors = factors_for(Matern52(), coords)
    ls, nugget = data_lengthscales(factors, y, {})
    assert "ls_t" not in ls and {"ls_a", "ls_b"} <= set(ls)
    lo, hi = NUGGET_FRACTION
    assert lo * np.nanvar(y) <= nugget <= hi * np.nanvar(y)
    starts = map_starts(factors, priors_for(factors, y), y, 3)
    assert [s["ls_t"] for s in starts] == pytest.approx(start_ladder(*grid_scales(coords[0]), 3).tolist())


def test_constant_data_and_nan_cells_never_raise():
    coords = [np.arange(12.0), np.arange(10.0)]
    y = np.full((12, 10), 4.0)
    y[::3, ::2] = np.nan
    factors = factors_for(Matern32(), coords, dims=("a", "b"))
    assert data_lengthscales(factors, y, {}) == ({}, None)
    starts = map_starts(factors, priors_for(factors, np.where(np.isfinite(y), y + 1e-3 * np.arange(10), y)), y, 2)
    assert all(np.isfinite(list(s.values())).all() for s in starts)


def test_periodic_factors_keep_the_periodogram_on_gappy_data():
    """A Cosine factor's starting periods come from the periodogram, with missing cells at the mean."""
    t = np.arange(48.0)
    rng = np.random.default_rng(5)
    y = np.cos(2 * np.pi * t / 8)[:, None] * rng.normal(1, 0.1, (1, 20)) + 0.05 * rng.normal(size=(48, 20))
    y[rng.random(y.shape) < 0.2] = np.nan
    factors = (Factor(("t",), Cosine(), (t,)), Factor(("x",), Matern52(), (np.arange(20.0),)))
    starts = map_starts(factors, priors_for(factors, y), y, 3)
    assert starts[0]["ls_t"] == pytest.approx(8.0, rel=0.05)
    assert len({round(s["ls_t"], 6) for s in starts}) == 3
