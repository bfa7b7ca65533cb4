"""``condition()`` and ``fit(subsample=...)`` for latent fits by Laplace and INLA.

The conditioned fit's posterior of ``f`` is the Laplace approximation on the new data at the fitted
hyperparameters: checked against an independent path, a fit of the whole grid with every
hyperparameter fixed at those values (its own preparation, mode search and posterior), and
against the unconditioned fit where the data are the same. INLA keeps its design and weights.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron

A, B = np.linspace(0, 10, 24), np.linspace(0, 5, 12)
K = {"a": "Matern52", "b": "Matern52"}
FIELD = np.sin(A)[:, None] * np.cos(B)[None, :]


def counts(seed=0, exposure=None):
    rng = np.random.default_rng(seed)
    rate = np.exp(0.3 + FIELD) * (1.0 if exposure is None else exposure)
    return xr.DataArray(rng.poisson(rate).astype(float), coords={"a": A, "b": B}, dims=("a", "b"))


def fixed_fit(data, fit, **kwargs):
    """The whole grid fitted with every hyperparameter fixed at ``fit``'s values: an independent posterior."""
    p = {n: float(fit.params[n]) for n in fit.params.data_vars}
    kernels = {d: xkron.Matern52(ls=p[f"ls_{d}"]) for d in K}
    return data.kron.fit(kernels, method="laplace", amplitude=p["amplitude"], mean=p["mean"], progressbar=False,
                         **kwargs)  # fmt: skip


@pytest.fixture(scope="module")
def window_fit():
    return counts().isel(a=slice(0, 12)).kron.fit(K, likelihood="poisson", method="laplace", progressbar=False)


def test_condition_on_the_same_data_is_the_fit_itself(window_fit):
    again = window_fit.condition(window_fit.data).predict(quantiles=[0.1])
    xr.testing.assert_equal(again, window_fit.predict(quantiles=[0.1]))


def test_condition_on_a_larger_grid_is_the_laplace_posterior_there(window_fit):
    """Fitted on half the grid, conditioned on the whole (with gaps): equal to the fixed-hyperparameter fit
    of the whole grid, at the grid and at new inputs, response scale included."""
    whole = counts().where(lambda d: (d.a < 3) | (d.a > 4))
    new = {"a": [-1.0, 3.5, 11.0], "b": [0.25, 4.0]}
    got = window_fit.condition(whole)
    ref = fixed_fit(whole, window_fit, likelihood="poisson")
    assert got.data.sizes == whole.sizes and got.params.identical(window_fit.params)
    for kwargs in ({}, new, {"scale": "response"}):
        xr.testing.assert_allclose(got.predict(**kwargs), ref.predict(**kwargs), rtol=1e-10, atol=1e-12)


def test_condition_takes_per_cell_exposure_on_the_new_grid():
    exposure = xr.DataArray(np.random.default_rng(1).uniform(1, 3, FIELD.shape), coords={"a": A, "b": B})
    data = counts(2, exposure.values)
    half = {"a": slice(0, 12)}
    fit = data.isel(half).kron.fit(K, likelihood=xkron.Poisson(exposure=exposure.isel(half)), method="laplace",
                                   progressbar=False)  # fmt: skip
    with pytest.raises(
        ValueError, match=r"exposure differs between cells.*likelihood=xkron.Poisson\(exposure=\.\.\.\)"
    ):
        fit.condition(data)
    got = fit.condition(data, likelihood=xkron.Poisson(exposure=exposure))
    ref = fixed_fit(data, fit, likelihood=xkron.Poisson(exposure=exposure))
    xr.testing.assert_allclose(got.predict(scale="response"), ref.predict(scale="response"), rtol=1e-10)


def test_subsample_is_the_thinned_fit_conditioned_on_the_whole_grid():
    data = counts(3)
    sub = data.kron.fit(K, likelihood="poisson", method="laplace", subsample={"a": 2}, progressbar=False)
    thin = data.isel(a=slice(None, None, 2)).kron.fit(K, likelihood="poisson", method="laplace", progressbar=False)
    xr.testing.assert_equal(sub.params, thin.params)
    assert sub.data.sizes == data.sizes
    xr.testing.assert_allclose(sub.predict(), thin.condition(data).predict(), rtol=1e-12)


def test_inla_keeps_its_design_and_weights_on_the_new_grid():
    data = counts(4)
    inla = data.kron.fit(K, likelihood="poisson", method="inla", subsample={"a": 2}, progressbar=False)
    assert inla.draw_weights is not None and len(inla.draw_weights) == inla.params.sizes["draw"] > 1
    got = inla.predict()
    per_point = [fixed_fit(data, _at(inla, i), likelihood="poisson").predict() for i in range(len(inla.draw_weights))]
    w = inla.draw_weights
    mean = sum(wi * p["mean"] for wi, p in zip(w, per_point, strict=True))
    second = sum(wi * (p["sd"] ** 2 + p["mean"] ** 2) for wi, p in zip(w, per_point, strict=True))
    xr.testing.assert_allclose(got["mean"], mean, rtol=1e-9)
    xr.testing.assert_allclose(got["sd"], np.sqrt(second - mean**2), rtol=1e-8)
    xr.testing.assert_equal(inla.posterior["observed_data"]["y"].variable, data.variable)  # not the thinned grid's


class _at:
    """One INLA design point as a fit-like object with ``params`` (for :func:`fixed_fit`)."""

    def __init__(self, fit, i):
        self.params = fit.params.stack(s=("chain", "draw")).isel(s=i).drop_vars(["s", "chain", "draw"])


def test_dask_data_stay_lazy_until_a_prediction_needs_them(window_fit):
    data = counts()
    lazy = window_fit.condition(data.chunk({"a": 6}))
    assert lazy.data.chunks is not None
    xr.testing.assert_allclose(lazy.predict(), window_fit.condition(data).predict(), rtol=1e-12)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda f, d: f.condition(d, noise_sd=0.1), r"noise_sd= and gaps= apply to Gaussian marginal fits"),
        (
            lambda f, d: f.condition(d, likelihood=xkron.Bernoulli()),
            r"likelihood= must be the fit's family \(poisson\)",
        ),
        (lambda f, d: f.condition(d.where(d.a < -1)), r"all 288 cells given to condition\(\) are NaN"),
        (lambda f, d: f.condition(d - 0.5), r"poisson data must be non-negative integer counts"),
    ],
    ids=["noise-sd", "family", "all-missing", "not-counts"],
)
def test_condition_refuses_what_a_latent_fit_cannot_take(window_fit, call, match):
    with pytest.raises(ValueError, match=match):
        call(window_fit, counts())


def test_nuts_fits_and_subsample_with_nuts_are_refused():
    data = counts().isel(a=slice(0, 6), b=slice(0, 4))
    nuts = data.kron.fit(K, likelihood="poisson", method="nuts", draws=20, tune=20, chains=1, progressbar=False)
    with pytest.raises(
        ValueError, match=r"condition\(\) applies to latent fits by method='laplace' or 'inla', not 'nuts'"
    ):
        nuts.condition(data)
    with pytest.raises(ValueError, match=r"subsample= applies to .* latent fits by method='laplace' or 'inla'"):
        data.kron.fit(K, likelihood="poisson", method="nuts", subsample={"a": 2}, progressbar=False)
    bad = counts().copy()
    bad[5, 3] = -1.0  # a cell the thinning drops (a[1::2]): refused before the thinned fit
    with pytest.raises(ValueError, match=r"non-negative integer counts.*first at"):
        bad.kron.fit(K, likelihood="poisson", method="laplace", subsample={"a": 2}, progressbar=False)


def test_gaussian_marginal_fit_takes_its_noise_not_a_likelihood():
    x = np.linspace(0, 1, 12)
    da = xr.DataArray(np.sin(6 * x)[:, None] * np.cos(4 * x)[None, :], coords={"a": x, "b": x})
    fit = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False)
    with pytest.raises(ValueError, match=r"likelihood= gives per-cell data .* condition\(data, noise_sd=\.\.\.\)"):
        fit.condition(da, likelihood=xkron.Gaussian())
