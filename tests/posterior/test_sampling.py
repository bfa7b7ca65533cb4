"""Matheron sample fields against the dense posterior: empirical mean and covariance of many
exact draws match the dense Gaussian formulas within Monte Carlo error, for the marginal
(Gaussian) and the latent model, at test points near and far from the data."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.posterior.conditional import KronPosterior, LatentPosterior
from xkron.posterior.fields import posterior_fields
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, Matern52
from xkron.spec.modelspec import JITTER

N_DRAWS = 40_000


def _factors():
    return (
        Factor(("a",), Matern52(), (np.linspace(0, 1, 5),)),
        Factor(("b",), Cosine(), (np.linspace(0, 2, 4),)),
    )


VALUES = {"ls_a": 0.4, "ls_b": 1.3, "amplitude": 1.2, "noise": 0.3, "mean": 0.5}
# New coordinates: inside the data, on a training coordinate, and far away (prior variance).
NEW = [np.array([0.1, 0.5, 6.0]), np.array([0.3, 9.0])]


def _dense_blocks(factors, values):
    params = [{"ls": [values["ls_a"]]}, {"ls": [values["ls_b"]]}]
    K = [f.covariance(p) for f, p in zip(factors, params, strict=True)]
    Ks = [f.covariance(p, test=[t]) for f, p, t in zip(factors, params, NEW, strict=True)]
    Kss = [f.kernel.correlation([np.subtract.outer(t, t)], p) for f, p, t in zip(factors, params, NEW, strict=True)]
    eta2 = values["amplitude"] ** 2
    return K, eta2 * np.kron(*Ks), eta2 * np.kron(*Kss)


def _check_moments(samples, mean, cov):
    """Each entry of the sample mean and covariance within 5 Monte Carlo standard errors."""
    n = samples.shape[0]
    flat = samples.reshape(n, -1)
    sd = np.sqrt(np.diag(cov))
    assert np.all(np.abs(flat.mean(0) - mean) <= 5 * sd / np.sqrt(n) + 1e-12)
    emp = np.cov(flat.T)
    # var of a sample covariance entry: (C_ij² + C_ii C_jj) / n
    se = np.sqrt((cov**2 + np.outer(np.diag(cov), np.diag(cov))) / n)
    assert np.all(np.abs(emp - cov) <= 5 * se + 1e-12)


def test_marginal_samples_match_dense_posterior():
    rng = np.random.default_rng(1)
    factors = _factors()
    y = rng.normal(size=(5, 4))
    K, Ks, Kss = _dense_blocks(factors, VALUES)
    Ky = VALUES["amplitude"] ** 2 * np.kron(*K) + VALUES["noise"] ** 2 * np.eye(20)
    mean = VALUES["mean"] + Ks @ np.linalg.solve(Ky, y.ravel() - VALUES["mean"])
    cov = Kss - Ks @ np.linalg.solve(Ky, Ks.T)
    post = KronPosterior.condition(y, factors, VALUES)
    samples = posterior_fields(post, [[t] for t in NEW], N_DRAWS, rng)
    assert samples.shape == (N_DRAWS, 3, 2)
    _check_moments(samples, mean, cov)
    # Far from the data (a = 6): the prior variance η².
    far = samples[:, 2, :].var(axis=0)
    np.testing.assert_allclose(far, VALUES["amplitude"] ** 2, rtol=0.05)


def test_latent_samples_match_dense_conditional():
    rng = np.random.default_rng(2)
    factors = _factors()
    v = rng.normal(size=(5, 4))
    K, Ks, Kss = _dense_blocks(factors, VALUES)
    L = np.kron(*(np.linalg.cholesky(k + JITTER * np.eye(len(k))) for k in K))
    f_train = VALUES["mean"] + VALUES["amplitude"] * L @ v.ravel()
    K_train = VALUES["amplitude"] ** 2 * L @ L.T
    mean = VALUES["mean"] + Ks @ np.linalg.solve(K_train, f_train - VALUES["mean"])
    cov = Kss - Ks @ np.linalg.solve(K_train, Ks.T)
    post = LatentPosterior.condition(v, factors, VALUES)
    samples = posterior_fields(post, [[t] for t in NEW], N_DRAWS, rng)
    _check_moments(samples, mean, cov)
    np.testing.assert_allclose(samples[:, 2, :].var(axis=0), VALUES["amplitude"] ** 2, rtol=0.05)


def test_samples_on_the_training_grid_of_a_latent_draw_are_its_field():
    factors = _factors()
    v = np.random.default_rng(3).normal(size=(5, 4))
    post = LatentPosterior.condition(v, factors, VALUES)
    train = [[f.coords[0]] for f in factors]
    samples = posterior_fields(post, train, 3, np.random.default_rng(4))
    # Given v the training cells are known up to the jitter: (K_1 + jI) ⊗ (K_2 + jI) exceeds
    # K_1 ⊗ K_2 by j (K_1 ⊕ K_2) + j², a conditional sd of about η √(j (λ_1 + λ_2)) ≈ 3e-3 here.
    np.testing.assert_allclose(samples, np.broadcast_to(post.field(), samples.shape), atol=0.02)


# --------------------------------------------------------------------------- labelled


@pytest.fixture(scope="module")
def map_fit():
    x = np.linspace(0, 1, 7)
    da = xr.DataArray(
        np.outer(np.sin(3 * x), np.cos(2 * x)),
        coords={"a": x, "b": x},
        dims=("b", "a"),
        name="t",
        attrs={"units": "K"},
    )
    return da.kron.fit(
        {"a": xkron.ExpQuad(ls=0.4), "b": xkron.Matern32(ls=0.5)}, amplitude=1.0, noise=0.05, progressbar=False
    )


def test_map_sample_fields_are_labelled_reproducible_and_match_predict(map_fit):
    new_a = np.linspace(-0.5, 1.5, 6)
    s1 = map_fit.sample(4000, a=new_a, random_seed=7)
    s2 = map_fit.sample(4000, a=new_a, random_seed=7)
    xr.testing.assert_identical(s1, s2)
    assert s1["f"].dims == ("sample", "b", "a") and s1["f"].attrs["units"] == "K"
    np.testing.assert_array_equal(s1["a"], new_a)
    pred = map_fit.predict(a=new_a)
    z = (s1["f"].mean("sample") - pred["mean"]) / (pred["sd"] / np.sqrt(4000))
    assert float(abs(z).max()) < 5
    np.testing.assert_allclose(s1["f"].std("sample"), pred["sd"], rtol=0.1)
    noisy = map_fit.sample(4000, a=new_a, observed=True, random_seed=8)
    np.testing.assert_allclose((noisy["y"] - noisy["f"]).std("sample"), map_fit.params["noise"].item(), rtol=0.1)


def test_sample_rejects_points(map_fit):
    points = xr.Dataset({"a": ("p", [0.1, 0.2]), "b": ("p", [0.3, 0.4])})
    with pytest.raises(ValueError, match="joint draws on a grid"):
        map_fit.sample(2, points)


@pytest.fixture(scope="module")
def nuts_fit():
    x = np.linspace(0, 1, 6)
    rng = np.random.default_rng(0)
    da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)) + 0.1 * rng.normal(size=(6, 6)), coords={"a": x, "b": x})
    return da.kron.fit(
        {"a": xkron.ExpQuad(), "b": xkron.ExpQuad()},
        method="nuts",
        draws=30,
        tune=100,
        chains=2,
        random_seed=1,
        progressbar=False,
    )


def test_posterior_sample_fields_are_one_to_one_with_draws(nuts_fit):
    s = nuts_fit.sample(a=[0.25, 2.0], random_seed=0)
    assert s["f"].dims == ("chain", "draw", "a", "b")
    np.testing.assert_array_equal(s["draw"], nuts_fit.params["draw"])
    thinned = nuts_fit.sample(5, a=[0.25, 2.0], random_seed=0)
    assert thinned.sizes["draw"] == 5
    np.testing.assert_array_equal(thinned["draw"], [0, 7, 14, 22, 29])
    # Each field comes from its own draw: the field's far-away spread follows that draw's amplitude.
    assert s["f"].sel(a=2.0).std("b").notnull().all()
