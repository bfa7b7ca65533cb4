"""Predictions far from the data: the prior mean and sd, never NaN (issue 11, item 8).

At moderate distances the predictions are compared with a dense GP written out in numpy; at
huge, overflowing or infinite distances the decaying kernels must give exactly the prior
(``mean = μ``, ``sd = η``), for the Gaussian, latent and observed-cells posteriors and for
sample fields. The periodic kernels never decay: past the distance at which float64 loses the
phase within the period they are refused with an error naming the dim.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.posterior.conditional import LatentPosterior, TestInputs
from xkron.posterior.observed import ObservedPosterior
from xkron.spec.grid import Factor

DECAYING = ["ExpQuad", "Matern12", "Matern32", "Matern52", "RatQuad"]
ETA, SIGMA, MU = 1.3, 0.2, 0.4
FAR = np.array([1e300, -1e300, 1.7e308, -1.7e308, 1e30])
A, B = np.linspace(0.0, 1.0, 6), np.linspace(-1.0, 1.0, 5)


def kernel(name, ls=0.5):
    return xkron.RatQuad(ls=ls, alpha=2.0) if name == "RatQuad" else getattr(xkron, name)(ls=ls)


def ref_corr(name, d, ls):
    r = np.abs(d) / ls
    s3, s5 = np.sqrt(3) * r, np.sqrt(5) * r
    return {
        "ExpQuad": lambda: np.exp(-0.5 * r**2),
        "Matern12": lambda: np.exp(-r),
        "Matern32": lambda: (1 + s3) * np.exp(-s3),
        "Matern52": lambda: (1 + s5 + s5**2 / 3) * np.exp(-s5),
        "RatQuad": lambda: (1 + r**2 / 4.0) ** -2.0,
    }[name]()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    return xr.DataArray(MU + rng.normal(size=(6, 5)), coords={"a": A, "b": B}, dims=("a", "b"))


def fixed_fit(da, name, ls=0.5):
    kernels = {"a": kernel(name, ls), "b": xkron.ExpQuad(ls=0.7)}
    return da.kron.fit(kernels, amplitude=ETA, noise=SIGMA, mean=MU, progressbar=False)


@pytest.mark.parametrize("name", DECAYING)
def test_far_predictions_are_the_prior(data, name):
    result = fixed_fit(data, name).predict(a=FAR)
    np.testing.assert_array_equal(result["mean"].values, MU)
    np.testing.assert_allclose(result["sd"].values, ETA, rtol=1e-15)
    noisy = fixed_fit(data, name).predict(a=FAR, noise=True)
    np.testing.assert_allclose(noisy["sd"].values, np.hypot(ETA, SIGMA), rtol=1e-15)


@pytest.mark.parametrize("name", DECAYING)
def test_moderate_distances_match_a_dense_gp(data, name):
    new_a = np.array([-40.0, -3.0, 0.55, 2.5, 7.0, 30.0])
    result = fixed_fit(data, name).predict(a=new_a)

    def cov(pa, pb, qa, qb):
        ka = ref_corr(name, np.subtract.outer(pa, qa), 0.5)
        return ETA**2 * ka * np.exp(-0.5 * (np.subtract.outer(pb, qb) / 0.7) ** 2)

    ta, tb = (m.ravel() for m in np.meshgrid(A, B, indexing="ij"))
    sa, sb = (m.ravel() for m in np.meshgrid(new_a, B, indexing="ij"))
    K = cov(ta, tb, ta, tb) + SIGMA**2 * np.eye(ta.size)
    Ks = cov(sa, sb, ta, tb)
    mean = MU + Ks @ np.linalg.solve(K, data.values.ravel() - MU)
    var = ETA**2 - np.einsum("mn,nm->m", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(var), rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", DECAYING)
@pytest.mark.parametrize("ls", [1e-300, 1e-320, 1e300])
def test_extreme_lengthscales_give_finite_predictions(data, name, ls):
    """A tiny lengthscale makes every other point independent (overflowing r), a huge one makes all one."""
    result = fixed_fit(data, name, ls=ls).predict(a=np.array([0.25, 1e300, 5.0]))
    assert np.isfinite(result["mean"]).all() and np.isfinite(result["sd"]).all()
    if ls < 1:  # no training point shares these coordinates: the prior
        np.testing.assert_array_equal(result["mean"].values, MU)
        np.testing.assert_allclose(result["sd"].values, ETA, rtol=1e-15)


@pytest.mark.parametrize("name", DECAYING)
def test_far_points_in_a_two_dim_factor_and_scattered(data, name):
    fit = data.kron.fit({("a", "b"): kernel(name)}, amplitude=ETA, noise=SIGMA, mean=MU, progressbar=False)
    points = xr.Dataset({"a": ("p", [1e300, 0.3, -1e308]), "b": ("p", [0.0, 1e300, 1e308])})
    result = fit.predict(points)
    np.testing.assert_array_equal(result["mean"].values, MU)
    np.testing.assert_allclose(result["sd"].values, ETA, rtol=1e-15)


@pytest.mark.parametrize("name", DECAYING)
def test_latent_and_observed_posteriors_far_away(name):
    factors = (Factor(("a",), kernel(name), (A,)), Factor(("b",), xkron.ExpQuad(ls=0.7), (B,)))
    values = {"ls_a": 0.5, "ls_b": 0.7, "amplitude": ETA, "noise": SIGMA, "mean": MU}
    if name == "RatQuad":
        values["alpha_a"] = 2.0
    tests = [TestInputs("p", (FAR,)), TestInputs("p", (np.zeros(FAR.size),))]
    rng = np.random.default_rng(2)
    latent = LatentPosterior.condition(rng.normal(size=(6, 5)), factors, values)
    y = rng.normal(size=(6, 5))
    y[2, 3] = np.nan
    observed = ObservedPosterior.condition(y, factors, values)
    for post in (latent, observed):
        mean, var = post.moments(tests, "p")
        np.testing.assert_array_equal(mean, MU)
        np.testing.assert_allclose(var, ETA**2, rtol=1e-12)


@pytest.mark.parametrize("name", DECAYING)
def test_sample_fields_far_away_are_prior_draws(data, name):
    fields = fixed_fit(data, name).sample(400, a=np.array([1e300, -1e300]), b=np.array([0.0]), random_seed=0)["f"]
    assert np.isfinite(fields).all()
    # Independent of the data and of each other: 800 N(μ, η²) draws (4 standard errors).
    z = (fields.values - MU) / ETA
    assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.var() - 1) < 4 * np.sqrt(2 / z.size)


@pytest.mark.parametrize("name", ["Periodic", "Cosine"])
def test_periodic_kernels_refuse_distances_whose_phase_is_lost(data, name):
    k = xkron.Periodic(ls=0.8, period=0.5) if name == "Periodic" else xkron.Cosine(ls=0.5)
    fit = data.kron.fit({"a": k, "b": xkron.ExpQuad(ls=0.7)}, amplitude=ETA, noise=SIGMA, mean=MU, progressbar=False)
    for far in (1e300, -1.7e308, 1e13):
        with pytest.raises(ValueError, match=rf"{name} kernel along 'a'.*phase"):
            fit.predict(a=np.array([0.3, far]))
        with pytest.raises(ValueError, match=rf"{name} kernel along 'a'.*phase"):
            fit.sample(1, a=np.array([far]), random_seed=0)
    # A million periods away is still resolved: the same as one period away.
    near, million = fit.predict(a=np.array([0.3 + 0.5])), fit.predict(a=np.array([0.3 + 0.5 * 1e6]))
    np.testing.assert_allclose(million["mean"].values, near["mean"].values, rtol=0, atol=1e-7)
    np.testing.assert_allclose(million["sd"].values, near["sd"].values, rtol=0, atol=1e-7)
