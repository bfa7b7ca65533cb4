"""Issue 14: the pointwise log-densities of every likelihood equal scipy.stats' (to rounding) and PyMC's (to its
own approximations of ``gammaln``, about 1e-8 relative), and their ``f``-derivatives equal central finite
differences of the log-density (the third of the second)."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytest
import scipy.stats as st

from xkron.spec.likelihoods import LIKELIHOODS
from xkron.spec.pointwise import pointwise, pointwise_params

RNG = np.random.default_rng(3)
F = np.linspace(-2.0, 2.0, 9)

CASES = {
    "gaussian": (RNG.normal(size=9), {"noise": 0.7}, {"noise_sd": np.full(9, 0.3)}),
    "student_t": (np.array([-9.0, -2, -0.5, 0, 0.3, 1, 2.5, 4, 12]), {"noise": 0.8, "nu": 3.5}, {}),
    "poisson": (RNG.poisson(3.0, size=9).astype(float), {}, {"exposure": np.linspace(0.5, 2.0, 9)}),
    "negative_binomial": (RNG.poisson(4.0, size=9).astype(float), {"dispersion": 2.5}, {"exposure": 1.5}),
    "bernoulli": (np.array([0.0, 1, 1, 0, 1, 0, 0, 1, 1]), {}, {}),
    "binomial": (np.array([0.0, 3, 5, 2, 7, 1, 4, 6, 8]), {}, {"trials": np.full(9, 8.0)}),
    "gamma": (RNG.gamma(2.0, size=9) + 0.1, {"shape": 1.7}, {}),
}


def pymc_logp(name, f, y, values, data):
    likelihood = LIKELIHOODS[name]()
    with pm.Model():
        rv = likelihood.observe(f, values, data, y)
    return pm.logp(rv, y).eval()


def test_every_likelihood_has_pointwise_terms():
    assert set(CASES) == set(LIKELIHOODS)


def scipy_logp(name, f, y, values, data):
    exposure = np.asarray(data.get("exposure", 1.0))
    if name == "gaussian":
        return st.norm.logpdf(y, f, np.hypot(values["noise"], data["noise_sd"]))
    if name == "student_t":
        return st.t.logpdf(y, values["nu"], loc=f, scale=values["noise"])
    if name == "poisson":
        return st.poisson.logpmf(y, exposure * np.exp(f))
    if name == "negative_binomial":
        a = values["dispersion"]
        return st.nbinom.logpmf(y, a, a / (a + exposure * np.exp(f)))
    if name in ("bernoulli", "binomial"):
        return st.binom.logpmf(y, data.get("trials", 1.0), 1 / (1 + np.exp(-f)))
    return st.gamma.logpdf(y, values["shape"], scale=np.exp(f) / values["shape"])


@pytest.mark.parametrize("name", list(CASES))
def test_log_density_is_scipys_and_pymcs(name):
    y, values, data = CASES[name]
    logp = pointwise(name, F, y, values, data).logp
    np.testing.assert_allclose(logp, scipy_logp(name, F, y, values, data), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(logp, pymc_logp(name, F, y, values, data), rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", list(CASES))
def test_derivatives_are_central_differences(name):
    y, values, data = CASES[name]
    t, h = pointwise(name, F, y, values, data), 1e-5
    up, down = pointwise(name, F + h, y, values, data), pointwise(name, F - h, y, values, data)
    pairs = ((t.d1, up.logp, down.logp), (t.d2, up.d1, down.d1), (t.d3, up.d2, down.d2))
    for derivative, value_up, value_down in pairs:
        fd = (value_up - value_down) / (2 * h)
        np.testing.assert_allclose(derivative, fd, rtol=1e-6, atol=1e-6 * max(1.0, np.abs(fd).max()))


def test_log_concave_likelihoods_and_student_t_outliers():
    for name in ("poisson", "negative_binomial", "bernoulli", "binomial", "gamma", "gaussian"):
        y, values, data = CASES[name]
        assert np.all(pointwise(name, F, y, values, data).d2 <= 0), name
    y, values, data = CASES["student_t"]
    assert np.any(pointwise("student_t", F, y, values, data).d2 > 0)  # the outliers at -9 and 12


def test_binomial_is_stable_for_large_latent_values():
    t = pointwise("bernoulli", np.array([-800.0, 800.0]), np.array([0.0, 1.0]), {}, {})
    assert np.all(np.isfinite(t.logp)) and np.allclose(t.logp, 0.0)


def test_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="no pointwise terms for likelihood 'weibull'"):
        pointwise("weibull", F, F, {}, {})


@pytest.mark.parametrize("name", list(CASES))
def test_parameter_derivatives_are_central_differences(name):
    """``∂/∂φ`` of the log-density and of its first two ``f``-derivatives, for each extra hyperparameter."""
    y, values, data = CASES[name]
    derivatives = pointwise_params(name, F, y, values, data)
    assert set(derivatives) == set(LIKELIHOODS[name].params)
    for param, analytic in derivatives.items():
        h = 1e-6 * values[param]
        up = pointwise(name, F, y, {**values, param: values[param] + h}, data)
        down = pointwise(name, F, y, {**values, param: values[param] - h}, data)
        for got, a, b in zip(analytic, (up.logp, up.d1, up.d2), (down.logp, down.d1, down.d2), strict=True):
            fd = (a - b) / (2 * h)
            np.testing.assert_allclose(got, fd, rtol=1e-6, atol=1e-7 * max(1.0, np.abs(fd).max()), err_msg=param)
