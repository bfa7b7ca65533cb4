"""Issue 14: ``fit(method="laplace")`` for latent models, end to end.

- With a Gaussian likelihood the Laplace marginal is the exact marginal: the latent Laplace fit
  reaches the marginal MAP fit's optimum, and predicts what it predicts.
- With Poisson counts the fitted point is a stationary point of the model's own log density
  (PyTensor's gradient through the Op, without the transforms' Jacobians, as a MAP), and its predictions are those
  of the Laplace posterior at the fitted values (:func:`xkron.posterior.laplace.laplace_posterior`,
  itself checked against the dense formulas in ``tests/posterior/test_laplace_posterior.py``).
- The default method rule, the refusals, and a NetCDF round trip.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pymc_extras.prior import Prior

import xkron
from xkron.inference.arguments import check_call
from xkron.inference.options import FitOptions
from xkron.posterior.conditional import TestInputs
from xkron.posterior.laplace import laplace_posterior
from xkron.settings import LAPLACE_DEFAULT_CELLS

KERNELS = {"time": xkron.Matern52(), "x": xkron.ExpQuad()}


def _field(seed: int, shape=(16, 12)):
    rng = np.random.default_rng(seed)
    t, x = np.arange(shape[0], dtype=float), np.linspace(0, 5, shape[1])
    K1 = np.exp(-0.5 * np.subtract.outer(t, t) ** 2 / 4.0**2)
    K2 = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 1.5**2)
    roots = [np.linalg.cholesky(K + 1e-8 * np.eye(len(K))) for K in (K1, K2)]
    f = 0.6 + 0.7 * roots[0] @ rng.normal(size=shape) @ roots[1].T
    return f, {"time": t, "x": x}, rng


@pytest.fixture(scope="module")
def counts():
    f, coords, rng = _field(0)
    y = rng.poisson(np.exp(f)).astype(float)
    y[rng.random(y.shape) < 0.2] = np.nan
    da = xr.DataArray(y, coords=coords, dims=("time", "x"), name="counts")
    return da, xkron.fit(da, KERNELS, likelihood="poisson", method="laplace", progressbar=False)


def test_gaussian_likelihood_reaches_the_marginal_fit():
    f, coords, rng = _field(1)
    y = f + 0.3 * rng.normal(size=f.shape)
    y[rng.random(y.shape) < 0.2] = np.nan
    da = xr.DataArray(y, coords=coords, dims=("time", "x"))
    priors = {"amplitude": Prior("HalfNormal", sigma=2.0), "mean": Prior("Normal", mu=0.0, sigma=2.0)}
    noise = Prior("HalfNormal", sigma=1.0)
    marginal = xkron.fit(da, KERNELS, noise=noise, **priors, progressbar=False)
    laplace = xkron.fit(
        da, KERNELS, likelihood=xkron.Gaussian(noise=noise), latent=True, method="laplace", **priors, progressbar=False
    )
    for name in marginal.params.data_vars:
        np.testing.assert_allclose(float(laplace.params[name]), float(marginal.params[name]), rtol=2e-3)
    np.testing.assert_allclose(laplace.optimizer["logp"], marginal.optimizer["logp"], atol=1e-3)
    new = {"time": [2.5, 20.0], "x": [0.3, 4.4, 7.0]}
    a, b = laplace.predict(new), marginal.predict(new)
    np.testing.assert_allclose(a["mean"], b["mean"], atol=5e-3)
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=5e-3)


def test_poisson_fit_is_a_stationary_point_of_the_laplace_posterior(counts):
    _, fit = counts
    model = fit.model
    assert [p.name for p in model.potentials] == ["log_marginal"]
    point = model.initial_point()
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms[rv]
        x = float(fit.params[rv.name])
        point[value.name] = np.asarray(transform.forward(x).eval() if transform else x)
    dlogp = model.compile_dlogp(jacobian=False)(point)  # the MAP is the mode of the density, not of the transform's
    assert np.max(np.abs(dlogp)) < 1e-3
    assert fit.optimizer["laplace"]["converged"]


def test_poisson_predictions_are_the_laplace_posterior(counts):
    da, fit = counts
    new = {"time": np.array([3.5, 17.0]), "x": np.array([0.0, 2.2, 6.0])}
    out = fit.predict(new)
    values = {k: float(v) for k, v in fit.params.items()}
    post = laplace_posterior(da.values, fit.spec, values)
    mean, var = post.moments([TestInputs("a", (new["time"],)), TestInputs("b", (new["x"],))], "ab")
    np.testing.assert_allclose(out["mean"].values, mean, atol=1e-10)
    np.testing.assert_allclose(out["sd"].values, np.sqrt(var), rtol=1e-10)
    response = fit.predict(new, scale="response", quantiles=[0.05, 0.95])
    assert np.all(response["mean"] > 0) and np.all(response["quantiles"].sel(quantile=0.05) < response["mean"])
    draws = fit.sample(3, observed=True, random_seed=0, progressbar=False)
    assert draws["y"].dims == ("sample", "time", "x") and np.all(draws["y"] == np.round(draws["y"]))


def test_round_trip_predicts_the_same(counts, tmp_path):
    _, fit = counts
    fit.to_netcdf(tmp_path / "fit.nc")
    again = xkron.open_fit(tmp_path / "fit.nc")
    assert again.method == "laplace"
    xr.testing.assert_allclose(again.predict(), fit.predict(), rtol=1e-10)


def _resolved(shape, **options):
    da = xr.DataArray(
        np.ones(shape), coords={d: np.arange(n) for d, n in zip("ab", shape, strict=True)}, dims=("a", "b")
    )
    given = dict.fromkeys(FitOptions.keywords())
    given.update(likelihood="poisson", collapse=None, restarts=2, solver="auto", shared=False, errors="raise")
    given.update(progressbar=False, **options)
    return check_call(da, FitOptions(**given)).method


def test_default_method_for_latent_models_follows_grid_size():
    assert _resolved((50, LAPLACE_DEFAULT_CELLS // 50)) == "nuts"
    assert _resolved((50, LAPLACE_DEFAULT_CELLS // 50 + 1)) == "laplace"


def test_laplace_refusals(counts):
    da, _ = counts
    with pytest.raises(ValueError, match="method='laplace' is not available for the Gaussian marginal model"):
        xkron.fit(da.fillna(0.0), KERNELS, method="laplace", progressbar=False)
    with pytest.raises(ValueError, match="collapse=True cannot apply here"):
        xkron.fit(da, KERNELS, likelihood="poisson", method="laplace", collapse=True, progressbar=False)
    with pytest.raises(TypeError, match="unexpected keyword argument 'draws'"):
        xkron.fit(da, KERNELS, likelihood="poisson", method="laplace", draws=10, progressbar=False)


def test_large_grid_starts_from_a_thinned_copy():
    """Above LAPLACE_COARSE_CELLS the MAP first fits the grid thinned by 2 and starts the whole grid from that
    optimum alone; the whole grid's optimum is then no worse, under the whole grid's (exact) Laplace
    posterior, than the thinned copy's."""
    f, coords, rng = _field(3, shape=(24, 16))
    y = rng.poisson(np.exp(f)).astype(float)
    y[rng.random(y.shape) < 0.2] = np.nan
    da = xr.DataArray(y, coords=coords, dims=("time", "x"))
    import xkron.inference.coarse as coarse

    original = coarse.LAPLACE_COARSE_CELLS
    try:
        coarse.coarse_problem.__defaults__ = (200,)
        fit = xkron.fit(da, KERNELS, likelihood="poisson", method="laplace", progressbar=False)
    finally:
        coarse.coarse_problem.__defaults__ = (original,)
    report = fit.optimizer["coarse"]
    assert report["shape"] == [12, 8] and report["n_eval"] > 0 and fit.optimizer["n_starts"] == 1
    logp = fit.model.compile_logp(jacobian=False)
    point = fit.model.initial_point()

    def at(values):
        for rv in fit.model.free_RVs:
            transform = fit.model.rvs_to_transforms[rv]
            x = float(values[rv.name])
            point[fit.model.rvs_to_values[rv].name] = np.asarray(transform.forward(x).eval() if transform else x)
        return float(logp(point))

    assert at({k: float(v) for k, v in fit.params.items()}) >= at(report["values"]) - 1e-6
