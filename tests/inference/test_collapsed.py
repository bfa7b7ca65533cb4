"""Collapsed NUTS for latent Gaussian models, against dense references in numpy/scipy.

- ``whitened_draws``: the empirical mean and covariance of many draws of ``v | θ, y`` equal
  the dense Gaussian conditional of the whitened model, ``m = η Lᵀ C⁻¹ (y − μ)``,
  ``S = I − η² Lᵀ C⁻¹ L`` with ``L = ⊗ chol(K_i + JITTER·I)`` and ``C = η² L Lᵀ + s² I``.
- ``build_marginal_model(jitter=JITTER)``: its log-likelihood is ``scipy.stats.multivariate_normal``
  with the latent model's covariance.
- A collapsed fit and a joint NUTS fit (``collapse=False``) of one model both match the exact
  posterior of the amplitude (1-D quadrature of the dense marginal likelihood) and the
  exact posterior mean of ``v`` (the quadrature mixture of ``m(η)``), within Monte Carlo error.
"""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import scipy.stats as st
import xarray as xr
from pymc_extras.prior import Prior

import xkron
import xkron.inference.run
from xkron.models.build import build_marginal_model
from xkron.posterior.fields import whitened_draws
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, ExpQuad
from xkron.spec.modelspec import JITTER, ModelSpec

RNG = np.random.default_rng(26112026)


def _factors():
    a = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),))
    b = Factor(("b",), Cosine(), (np.linspace(0, 2, 4),))  # rank 2: the jitter matters
    return (a, b), {"ls_a": 0.3, "ls_b": 1.3}


def _dense_root(factors, values):
    L, K = np.ones((1, 1)), np.ones((1, 1))
    for f in factors:
        Kf = f.covariance({"ls": [values[f"ls_{f.dims[0]}"]]}) + JITTER * np.eye(f.size)
        L, K = np.kron(L, np.linalg.cholesky(Kf)), np.kron(K, Kf)
    return L, K


def _conditional(y, L, eta, mean, noise_var):
    """Dense mean and covariance of ``v | y`` in the whitened model."""
    C = eta**2 * L @ L.T + noise_var * np.eye(len(y))
    gain = eta * np.linalg.solve(C, L).T
    return gain @ (y - mean), np.eye(len(y)) - eta * gain @ L


def test_whitened_draws_match_dense_conditional():
    factors, values = _factors()
    values = {**values, "amplitude": 1.4, "mean": 0.2}
    L, K = _dense_root(factors, values)
    noise_var = 0.3**2
    y = 0.2 + 1.4 * L @ RNG.normal(size=20) + 0.3 * RNG.normal(size=20)
    m, S = _conditional(y, L, 1.4, 0.2, noise_var)
    n = 40_000
    v = whitened_draws(y.reshape(5, 4), factors, values, noise_var, np.random.default_rng(1), n=n).reshape(n, -1)
    sd = np.sqrt(np.diag(S))
    assert np.max(np.abs(v.mean(0) - m) / (sd / np.sqrt(n))) < 5
    cov = np.cov(v.T)
    se = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
    assert np.max(np.abs(cov - S) / se) < 5
    # The field they give is the dense GP posterior with the latent model's covariance.
    f = 0.2 + 1.4 * v @ L.T
    Kf = 1.4**2 * K
    gain = Kf @ np.linalg.inv(Kf + noise_var * np.eye(20))
    f_sd = np.sqrt(np.diag(Kf - gain @ Kf))
    assert np.max(np.abs(f.mean(0) - (0.2 + gain @ (y - 0.2))) / (f_sd / np.sqrt(n))) < 5


def test_marginal_model_with_jitter_is_the_latent_models_marginal():
    factors, values = _factors()
    _, K = _dense_root(factors, values)
    priors = {**values, "amplitude": Prior("HalfNormal"), "noise": 0.3, "mean": 0.1}
    y = RNG.normal(size=20)
    model = build_marginal_model(y.reshape(5, 4), ModelSpec(factors, priors), jitter=JITTER)
    logp = model.compile_logp(vars=[model["y"]], jacobian=False)
    for eta in (0.4, 1.7):
        expected = st.multivariate_normal(np.full(20, 0.1), eta**2 * K + 0.09 * np.eye(20)).logpdf(y)
        assert logp({"amplitude_log__": np.log(eta)}) == pytest.approx(expected, rel=1e-10)


# --- fits: the exact posterior of one free hyperparameter by quadrature ---------------------

NOISE, PRIOR_SD = 0.4, 1.0


@pytest.fixture(scope="module")
def problem():
    a = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 6),))
    b = Factor(("b",), ExpQuad(), (np.linspace(0, 1, 5),))
    values = {"ls_a": 0.4, "ls_b": 0.6}
    L, K = _dense_root((a, b), values)
    y = 0.9 * L @ RNG.normal(size=30) + NOISE * RNG.normal(size=30)
    da = xr.DataArray(y.reshape(6, 5), coords={"a": a.coords[0], "b": b.coords[0]}, dims=("a", "b"))
    # p(η | y) on a fine grid: HalfNormal prior times the dense marginal likelihood.
    eta = np.linspace(1e-3, 5, 4000)
    logpost = np.array([st.multivariate_normal(np.zeros(30), e**2 * K + NOISE**2 * np.eye(30)).logpdf(y) for e in eta])
    logpost += st.halfnorm(scale=PRIOR_SD).logpdf(eta)
    w = np.exp(logpost - logpost.max())
    w /= w.sum()
    means = np.array([_conditional(y, L, e, 0.0, NOISE**2)[0] for e in eta])
    return da, values, eta, w, means


def _fit(da, values, collapse):
    return da.kron.fit(
        {"a": xkron.ExpQuad(ls=values["ls_a"]), "b": xkron.ExpQuad(ls=values["ls_b"])},
        latent=True, collapse=collapse, amplitude=Prior("HalfNormal", sigma=PRIOR_SD), noise=NOISE, mean="zero",
        method="nuts", tune=300, draws=400, chains=2, cores=1, random_seed=3, progressbar=False,
    )  # fmt: skip


@pytest.mark.parametrize("collapse", [None, False])
def test_collapsed_and_joint_nuts_reach_the_exact_posterior(problem, collapse):
    da, values, eta, w, means = problem
    fit = _fit(da, values, collapse)
    post = fit.posterior["posterior"]
    assert post["v"].dims == ("chain", "draw", "v_dim_0", "v_dim_1")
    assert "v" in [rv.name for rv in fit.model.free_RVs]  # the latent model, either way
    assert int(fit.posterior["sample_stats"]["diverging"].sum()) == 0
    # Amplitude: posterior mean within 4 Monte Carlo standard errors of the quadrature mean.
    exact_mean = float(w @ eta)
    mcse = float(az.mcse(fit.posterior, var_names=["amplitude"])["amplitude"])
    assert abs(float(post["amplitude"].mean()) - exact_mean) < 4 * mcse
    # v: E[v | y] = Σ_η p(η | y) m(η); its sd is √(E[S(η)] + Var m(η)) (law of total variance).
    exact_v = w @ means
    v = post["v"].values.reshape(-1, 30)
    ess = np.asarray(az.ess(fit.posterior, var_names=["v"])["v"]).ravel()
    z = (v.mean(0) - exact_v) / (v.std(0) / np.sqrt(ess))
    assert np.max(np.abs(z)) < 5


def test_collapsed_is_the_default_reproducible_and_round_trips(problem, tmp_path):
    da, values, *_ = problem
    first, second = _fit(da, values, None), _fit(da, values, True)
    np.testing.assert_array_equal(first.posterior["posterior"]["v"], second.posterior["posterior"]["v"])
    # NUTS ran on the amplitude alone: the joint sampler's trees are deeper.
    assert float(first.posterior["sample_stats"]["tree_depth"].mean()) < 4
    first.to_netcdf(tmp_path / "fit.nc")
    back = xkron.open_fit(tmp_path / "fit.nc")
    np.testing.assert_array_equal(back.posterior["posterior"]["v"], first.posterior["posterior"]["v"])
    xr.testing.assert_allclose(back.predict(a=[1.5]), first.predict(a=[1.5]), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"likelihood": "poisson"}, "poisson likelihood has no closed-form marginal"),
        ({"method": "advi"}, "method='advi' is not NUTS"),
        ({"missing": True}, "the grid has missing cells"),
        ({"latent": False}, "collapse= applies to latent models"),
        ({"fixed": True}, "every hyperparameter is fixed"),
    ],
)
def test_collapse_true_where_it_cannot_apply_is_an_error(kwargs, message, monkeypatch):
    monkeypatch.setattr(xkron.inference.run, "sample_collapsed", None)  # must fail before sampling
    counts = xr.DataArray(RNG.poisson(3.0, size=(6, 5)).astype(float), dims=("a", "b"),
                          coords={"a": np.linspace(0, 1, 6), "b": np.linspace(0, 1, 5)})  # fmt: skip
    if kwargs.pop("missing", False):
        counts = counts.where(counts["a"] > 0)
    kernels = {"a": xkron.ExpQuad(), "b": xkron.ExpQuad()}
    if kwargs.pop("fixed", False):
        kernels = {"a": xkron.ExpQuad(ls=0.3), "b": xkron.ExpQuad(ls=0.3)}
        kwargs.update(amplitude=1.0, noise=0.5, mean=0.0)
    kwargs.setdefault("latent", True)
    with pytest.raises(ValueError, match=message):
        counts.kron.fit(kernels, collapse=True, progressbar=False, **kwargs)


def test_all_fixed_latent_gaussian_samples_v_jointly_from_its_exact_conditional(problem):
    """Nothing for the collapsed sampler to do: NUTS samples v alone, which is N(m, S) exactly."""
    da, values, *_ = problem
    fit = da.kron.fit(
        {"a": xkron.ExpQuad(ls=values["ls_a"]), "b": xkron.ExpQuad(ls=values["ls_b"])},
        latent=True, amplitude=0.9, noise=NOISE, mean="zero", method="nuts", tune=200, draws=300, chains=2,
        cores=1, random_seed=4, progressbar=False,
    )  # fmt: skip
    L, _ = _dense_root((Factor(("a",), ExpQuad(), (da["a"].values,)), Factor(("b",), ExpQuad(), (da["b"].values,))),
                       values)  # fmt: skip
    m, S = _conditional(da.values.ravel(), L, 0.9, 0.0, NOISE**2)
    v = fit.posterior["posterior"]["v"].values.reshape(-1, 30)
    ess = np.asarray(az.ess(fit.posterior, var_names=["v"])["v"]).ravel()
    assert np.max(np.abs(v.mean(0) - m) / np.sqrt(np.diag(S) / ess)) < 5
