"""Hyperparameters on a thinned grid, conditioning on every observed cell of the whole one (issue 13 item 5).

``fit(..., subsample=...)`` and ``KronFit.condition`` on grids with NaN cells, hidden cells and
per-cell known noise. Each fit's hyperparameters must be exactly those of a direct fit on the
thinned data with the same options, and its predictions those of the GP with those
hyperparameters conditioned on the observed cells of the whole grid, computed here from the
kernel formulas with a dense covariance and its Cholesky factor.
"""

from __future__ import annotations

import dask
import numpy as np
import pytest
import scipy.linalg as sla
import xarray as xr

import xkron
import xkron.inference.prepare
import xkron.spec.solver
from xkron.linalg.lazy import is_dask

RNG = np.random.default_rng(13)
T, X = np.linspace(0.0, 6.0, 16), np.linspace(0.0, 1.0, 10)
KERNELS = {"t": xkron.Matern32(), "x": xkron.ExpQuad()}
FIT = {"restarts": 0, "progressbar": False}
STEP = {"t": 2}


class _RaiseIfComputed:
    """A dask scheduler that fails the test if anything is computed."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("dask computed something it should have left lazy")


class _CountingScheduler:
    """dask's synchronous scheduler, counting the computes it runs."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.get(dsk, keys, **kwargs)


def _field() -> xr.DataArray:
    truth = np.sin(T)[:, None] * np.cos(3 * X)[None, :]
    values = truth + 0.1 * RNG.normal(size=truth.shape)
    return xr.DataArray(values, coords={"t": T, "x": X}, dims=("t", "x"), name="v", attrs={"units": "K"})


FIELD = _field()
CLOUDS = xr.DataArray(RNG.uniform(size=FIELD.shape) > 0.3, coords=FIELD.coords) & ~(
    (FIELD.t > 2.5) & (FIELD.t < 4.0) & (FIELD.x > 0.3) & (FIELD.x < 0.7)
)
GAPPY = FIELD.where(CLOUDS)  # 30% scattered gaps and a block
LAND = xr.DataArray(np.isin(np.arange(X.size), [0, 7, 8]), coords={"x": X}) == 0  # True = sea
NOISE_SD = xr.DataArray(0.05 + 0.2 * RNG.uniform(size=FIELD.shape), coords=FIELD.coords)


def _values(fit) -> dict[str, float]:
    return {k: float(v) for k, v in fit.params.items()}


def dense_reference(da: xr.DataArray, values: dict, observed: np.ndarray, sd: np.ndarray | None = None):
    """Posterior mean and sd at every cell of the GP with ``values``, conditioned on ``observed`` cells."""
    t, x = (g.ravel() for g in np.meshgrid(da.t.values, da.x.values, indexing="ij"))
    r = np.sqrt(3.0) * np.abs(np.subtract.outer(t, t)) / values["ls_t"]
    K = values["amplitude"] ** 2 * (1 + r) * np.exp(-r) * np.exp(-0.5 * (np.subtract.outer(x, x) / values["ls_x"]) ** 2)
    o = np.asarray(observed, dtype=bool).ravel()
    noise = values["noise"] ** 2 + (0.0 if sd is None else np.asarray(sd, dtype=float).ravel() ** 2)
    A = K[np.ix_(o, o)] + np.diag(np.broadcast_to(noise, o.shape)[o])
    chol = sla.cholesky(A, lower=True)
    alpha = sla.cho_solve((chol, True), da.values.ravel()[o] - values["mean"])
    mean = values["mean"] + K[:, o] @ alpha
    half = sla.solve_triangular(chol, K[o, :], lower=True)
    var = values["amplitude"] ** 2 - np.sum(half * half, axis=0)
    return mean.reshape(da.shape), np.sqrt(var).reshape(da.shape)


def _check_against_dense(fit, da, observed, sd=None, atol=1e-8):
    predicted = fit.predict()
    mean, sd_ref = dense_reference(da, _values(fit), observed, sd)
    np.testing.assert_allclose(predicted["mean"].values, mean, rtol=0, atol=atol)
    np.testing.assert_allclose(predicted["sd"].values, sd_ref, rtol=0, atol=atol)


# --------------------------------------------------------------------------- (1) NaN cells


@pytest.fixture(scope="module")
def gappy_fit():
    return xkron.fit(GAPPY, KERNELS, subsample=STEP, **FIT)


def test_subsample_on_gappy_grid_fits_the_thinned_grid_and_conditions_on_every_observed_cell(gappy_fit):
    direct = xkron.fit(GAPPY.isel(t=slice(None, None, 2)), KERNELS, **FIT)
    xr.testing.assert_identical(gappy_fit.params, direct.params)
    assert gappy_fit.optimizer["logp"] == direct.optimizer["logp"]
    assert gappy_fit.data.sizes == GAPPY.sizes and gappy_fit.spec.solver == "dense"
    assert int(np.isfinite(gappy_fit._data_tensor).sum()) == int(CLOUDS.sum())  # every observed cell, whole grid
    _check_against_dense(gappy_fit, GAPPY, CLOUDS.values)


def test_condition_keeps_whole_missing_slices_out_and_uses_kronecker_where_the_rest_is_complete(gappy_fit):
    """Missing time steps (whole slices) leave a complete grid of observed inputs: the exact Kronecker solver."""
    days_off = FIELD.where(~FIELD.t.isin(T[[3, 4, 11]]))
    done = gappy_fit.condition(days_off)
    assert done.spec.solver == "kronecker" and done.spec.factors[0].size == 13
    _check_against_dense(done, days_off, np.isfinite(days_off.values))


def test_condition_solver_follows_the_fit_and_the_number_of_observed_cells(gappy_fit, monkeypatch):
    iterative = xkron.fit(GAPPY, KERNELS, subsample=STEP, solver="iterative", solver_options={"tol": 1e-10}, **FIT)
    assert iterative.spec.solver == xkron.spec.solver.Solver("iterative", tol=1e-10)
    mean, _ = dense_reference(GAPPY, _values(iterative), CLOUDS.values)
    # The mean is a CG solve to tol 1e-10: its error is far below the 1e-6 allowed here.
    np.testing.assert_allclose(iterative.predict()["mean"].values, mean, rtol=0, atol=1e-6)
    complete = iterative.condition(FIELD)
    assert complete.spec.solver == "kronecker"
    monkeypatch.setattr(xkron.spec.solver, "DENSE_MAX_CELLS", int(CLOUDS.sum()) - 1)
    assert gappy_fit.condition(GAPPY).spec.solver == "iterative"
    monkeypatch.setattr(xkron.spec.solver, "DENSE_MAX_CELLS", int(CLOUDS.sum()))
    assert gappy_fit.condition(GAPPY).spec.solver == "dense"


# --------------------------------------------------------------------------- (2) mask


def test_subsample_with_a_mask_that_hides_cells():
    fit = xkron.fit(GAPPY, KERNELS, mask=LAND, subsample=STEP, **FIT)
    direct = xkron.fit(GAPPY.isel(t=slice(None, None, 2)), KERNELS, mask=LAND, **FIT)
    xr.testing.assert_identical(fit.params, direct.params)
    observed = CLOUDS.values & LAND.values[None, :]
    _check_against_dense(fit, GAPPY, observed)
    assert fit.mask.dims == ("t", "x") and not bool(fit.mask.sel(x=X[7]).any())
    assert bool(fit.predict(mask=True)["mean"].sel(x=X[7]).isnull().all())


# --------------------------------------------------------------------------- (3) per-cell noise


@pytest.fixture(scope="module")
def noise_fit():
    return xkron.fit(GAPPY, KERNELS, noise_sd=NOISE_SD, subsample=STEP, **FIT)


def test_subsample_with_per_cell_noise_sd(noise_fit):
    thin = {"t": slice(None, None, 2)}
    direct = xkron.fit(GAPPY.isel(thin), KERNELS, noise_sd=NOISE_SD.isel(thin), **FIT)
    xr.testing.assert_identical(noise_fit.params, direct.params)
    assert noise_fit.spec.solver == "dense"
    np.testing.assert_array_equal(noise_fit.spec.known_noise_sd, NOISE_SD.values)
    _check_against_dense(noise_fit, GAPPY, CLOUDS.values, NOISE_SD.values)
    complete = noise_fit.condition(FIELD, noise_sd=NOISE_SD)
    assert complete.spec.solver == "dense"  # noise that differs between cells rules out the Kronecker eigenbasis
    _check_against_dense(complete, FIELD, np.ones(FIELD.shape, bool), NOISE_SD.values)


def test_condition_reuses_a_known_noise_that_is_one_value_and_needs_one_that_differs(noise_fit):
    equal = xkron.fit(GAPPY, KERNELS, noise_sd=0.1, subsample=STEP, **FIT)
    done = equal.condition(GAPPY)  # the fit's 0.1, on the whole grid
    _check_against_dense(done, GAPPY, CLOUDS.values, np.full(FIELD.shape, 0.1))
    with pytest.raises(ValueError, match=r"known per-cell noise .* differs between cells: pass .*noise_sd="):
        noise_fit.condition(GAPPY)


# --------------------------------------------------------------------------- (4) dask


def test_dask_condition_computes_nothing_and_predicts_as_numpy(gappy_fit):
    lazy = GAPPY.chunk({"t": 5, "x": 5})
    with dask.config.set(scheduler=_RaiseIfComputed()):
        pending = gappy_fit.condition(lazy, gaps=True)
        masked = gappy_fit.condition(lazy, mask=LAND)
    assert is_dask(pending.data.data) and is_dask(masked.data.data)
    counter = _CountingScheduler()
    with dask.config.set(scheduler=counter):
        xr.testing.assert_allclose(pending.predict(), gappy_fit.predict(), rtol=0, atol=1e-12)
        assert counter.calls == 1  # the data read once, when the posterior was first needed
        xr.testing.assert_allclose(masked.predict(), gappy_fit.condition(GAPPY, mask=LAND).predict(), atol=1e-12)
    assert pending.spec.solver == "dense" and not is_dask(pending.data.data)


def test_dask_subsample_reads_only_the_thinned_grid_to_fit(gappy_fit):
    counter = _CountingScheduler()
    with dask.config.set(scheduler=counter):
        fit = xkron.fit(GAPPY.chunk({"t": 4}), KERNELS, subsample=STEP, **FIT)
        assert counter.calls == 1 and is_dask(fit.data.data)  # the thinned grid, for the fit; the whole one lazy
        xr.testing.assert_identical(fit.params, gappy_fit.params)
        xr.testing.assert_allclose(fit.predict(), gappy_fit.predict(), rtol=0, atol=1e-12)
        assert counter.calls == 2


def test_dask_per_cell_noise_and_to_netcdf_read_the_data_when_needed(noise_fit, tmp_path):
    fit = noise_fit
    with dask.config.set(scheduler=_RaiseIfComputed()):
        lazy = fit.condition(GAPPY.chunk({"t": 8}), noise_sd=NOISE_SD.chunk({"t": 8}))
    lazy.to_netcdf(tmp_path / "fit.nc")
    reopened = xkron.open_fit(tmp_path / "fit.nc")
    xr.testing.assert_allclose(reopened.predict(), fit.predict(), rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- (5) errors


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f.condition(GAPPY.rename(x="y")), ValueError, r"fit's dims \('t', 'x'\), but its dims are"),
        (lambda f: f.condition(GAPPY.values), TypeError, r"data must be an xarray\.DataArray"),
        (lambda f: f.condition(GAPPY * np.nan), ValueError, r"all 160 cells given to condition\(\) are NaN"),
        (
            lambda f: f.condition(GAPPY, gaps=False),
            ValueError,
            rf"gaps=False, but {int((~CLOUDS).sum())} cell\(s\) are NaN or masked",
        ),
        (lambda f: f.condition(GAPPY, gaps="yes"), TypeError, r"gaps must be None, True or False"),
        (lambda f: f.condition(GAPPY, noise_sd=0.1), ValueError, r"applies to fits made with known noise"),
        (lambda f: f.condition(GAPPY, mask=LAND.values), TypeError, r"mask must be a boolean xarray\.DataArray"),
        (
            lambda f: f.condition(GAPPY.chunk(4), mask=LAND.assign_coords(x=X + 1)),
            ValueError,
            r"mask does not align with the data",
        ),
        (lambda f: f.condition(GAPPY.chunk(4), mask=LAND, gaps=False), ValueError, r"gaps=False says the grid"),
    ],
    ids=["dims", "not-dataarray", "all-nan", "gaps-false", "gaps-type", "noise-sd", "mask-type", "mask-lazy", "lazy"],
)
def test_condition_refuses_before_any_compute(gappy_fit, call, error, match):
    with dask.config.set(scheduler=_RaiseIfComputed()), pytest.raises(error, match=match):
        call(gappy_fit)


def test_condition_refuses_known_noise_that_leaves_cells_without_noise():
    fit = xkron.fit(GAPPY, KERNELS, noise=0, noise_sd=NOISE_SD, subsample=STEP, **FIT)
    i, j = np.argwhere(CLOUDS.values)[5]  # an observed cell
    silent = NOISE_SD.copy(data=NOISE_SD.values.copy())
    silent[i, j] = 0.0
    where = rf"'t': {float(T[i])!r}, 'x': {float(X[j])!r}"
    with pytest.raises(ValueError, match=rf"noise is fixed at 0, and noise_sd is 0 at 1 observed cell.*{where}"):
        fit.condition(GAPPY, noise_sd=silent)
    with pytest.raises(ValueError, match=r"noise_sd must be a finite sd >= 0 at every observed cell"):
        fit.condition(GAPPY, noise_sd=-NOISE_SD)


def test_a_noise_too_small_for_the_whole_grid_is_a_clear_error():
    """A fit whose noise sd reached ~0 (possible on a complete thinned grid) cannot be conditioned densely on
    close cells: the Cholesky factor fails, and the error says why and what to do."""
    fixed = {"t": xkron.Matern32(ls=3.0), "x": xkron.ExpQuad(ls=2.0)}
    fit = xkron.fit(FIELD, fixed, amplitude=1.0, noise=1e-12, mean=0.0, subsample=STEP, **FIT)
    with pytest.raises(np.linalg.LinAlgError, match=r"numerically singular at noise=1e-12.*Fix the noise at a floor"):
        fit.condition(GAPPY).predict()
