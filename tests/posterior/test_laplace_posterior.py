"""Issue 14: the Laplace posterior of ``f`` as GP regression on pseudo-data (:mod:`xkron.posterior.laplace`).

Every moment is checked against the dense Laplace formulas of Rasmussen & Williams (2006, eqs. 3.21
and 3.24, with ``B = I + W^½ K W^½`` so that unobserved cells simply have ``W = 0``), built in numpy
from the mode alone; the sample fields against those moments; the Gaussian likelihood against the
exact Gaussian posterior; the mean correction against the exact posterior mean (importance sampling).
"""

from __future__ import annotations

import dataclasses
import pickle

import cloudpickle
import numpy as np
import pytest
from pymc_extras.prior import Prior

import xkron.posterior.laplace as laplace_module
from xkron.linalg.laplace_system import laplace_variance
from xkron.posterior.conditional import TestInputs, prior_variance
from xkron.posterior.fields import posterior_fields
from xkron.posterior.laplace import LaplacePosterior, laplace_mode, laplace_posterior
from xkron.posterior.observed import ObservedPosterior
from xkron.settings import LAPLACE_VARIANCE_PROBES
from xkron.spec.grid import Factor
from xkron.spec.kernels import ExpQuad, Matern52
from xkron.spec.likelihoods import Gaussian, Poisson, StudentT
from xkron.spec.modelspec import ModelSpec, factor_params

X = (np.linspace(0, 5, 9), np.linspace(0, 3, 7))
NEW = (np.array([-0.5, 0.7, 2.2, 6.0]), np.array([0.1, 1.4, 3.5]))
VALUES = {"ls_a": 1.3, "ls_b": 0.9, "amplitude": 0.8, "mean": 0.4}


def spec_for(likelihood):
    factors = (Factor(("a",), Matern52(), (X[0],)), Factor(("b",), ExpQuad(), (X[1],)))
    return ModelSpec(factors, {"amplitude": Prior("HalfNormal")}, likelihood=likelihood, latent=True)


def poisson_data(seed=0, missing=0.25):
    rng = np.random.default_rng(seed)
    y = rng.poisson(np.exp(0.4 + rng.normal(0, 0.7, (9, 7)))).astype(float)
    y[rng.random(y.shape) < missing] = np.nan
    return y


def dense_reference(spec, values, mode, tests):
    """Mean and variance at ``tests`` (one flat array per factor) from ``W`` and ``∇log p`` at the mode."""
    params = [factor_params(f, values) for f in spec.factors]
    eta2 = values["amplitude"] ** 2
    K = eta2 * np.kron(*(f.covariance(p) for f, p in zip(spec.factors, params, strict=True)))
    Ks = eta2 * np.kron(*(f.covariance(p, test=(t,)) for f, p, t in zip(spec.factors, params, tests, strict=True)))
    Kss = eta2 * np.kron(*(f.kernel_matrix(p, (t,), (t,)) for f, p, t in zip(spec.factors, params, tests, strict=True)))
    w = np.maximum(mode.w.ravel(), 0.0)
    s = np.sqrt(w)
    B = np.eye(len(w)) + s[:, None] * K * s[None, :]
    mean = values["mean"] + Ks @ mode.d1.ravel()
    V = np.linalg.solve(B, s[:, None] * Ks.T)
    var = np.diag(Kss) - np.sum((s[:, None] * Ks.T) * V, axis=0)
    return mean.reshape(len(tests[0]), len(tests[1])), var.reshape(len(tests[0]), len(tests[1]))


def moments(post, tests):
    return post.moments([TestInputs("a", (tests[0],)), TestInputs("b", (tests[1],))], "ab")


@pytest.mark.parametrize("tests", [X, NEW], ids=["grid", "new"])
def test_poisson_moments_equal_dense_laplace_formulas(tests):
    spec, y = spec_for(Poisson()), poisson_data()
    mode = laplace_mode(y, spec, VALUES)
    mean, var = moments(laplace_posterior(y, spec, VALUES, mode, mean_correction=False), tests)
    ref_mean, ref_var = dense_reference(spec, VALUES, mode, tests)
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-10)
    np.testing.assert_allclose(var, ref_var, rtol=1e-9, atol=1e-12)
    if tests is X:  # at the grid the mean is the mode itself
        np.testing.assert_allclose(mean, mode.f, atol=1e-8)


@pytest.mark.parametrize("tests", [X, NEW], ids=["grid", "new"])
def test_whitened_posterior_matches_dense(monkeypatch, tests):
    """Above DENSE_MAX_CELLS the posterior works through the Newton matrix: the mean is still exact
    (``α = ∇log p``, no solve), the variance within 5 of its own stated standard errors of the dense one
    (on the training grid its Monte Carlo part is all there is to miss), and its solves are ``A⁻¹``."""
    spec, y = spec_for(Poisson()), poisson_data(seed=1)
    mode = laplace_mode(y, spec, VALUES)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    post = laplace_posterior(y, spec, VALUES, mode, mean_correction=False)
    assert isinstance(post, LaplacePosterior)
    mean, var = moments(post, tests)
    ref_mean, ref_var = dense_reference(spec, VALUES, mode, tests)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-10)
    labels = [TestInputs("a", (tests[0],)), TestInputs("b", (tests[1],))]
    prior = np.broadcast_to(prior_variance(spec.factors, VALUES, labels, "ab"), var.shape)
    result = laplace_variance(post.system, post.cross(labels), ["a", "b"], "ab", prior)
    np.testing.assert_allclose(result.variance, var)
    assert np.all(np.abs(var - ref_var) <= 5 * result.se + 1e-12)
    # On this 63-cell grid (a quarter missing, W over a factor of 8) the estimated part is large: the
    # report states it (variance se up to 11%), and the sd is within 8% of the dense one.
    assert post.variance_reports[-1]["max_relative_se"] < 0.15
    keep = mode.w > 0
    b = np.where(keep, np.random.default_rng(0).normal(size=keep.shape), 0.0)
    eta2 = VALUES["amplitude"] ** 2
    params = [factor_params(f, VALUES) for f in spec.factors]
    K = eta2 * np.kron(*(f.covariance(p) for f, p in zip(spec.factors, params, strict=True)))
    A = K[np.ix_(keep.ravel(), keep.ravel())] + np.diag(1 / mode.w[keep])
    np.testing.assert_allclose(post.system.solve(b)[keep], np.linalg.solve(A, b[keep]), rtol=1e-7, atol=1e-9)


def test_whitened_variance_solves_its_probes_once(monkeypatch):
    """The probe solves do not depend on the test inputs: the mean correction, each predict call and
    each chunk share one set (one solve of the probes in all), and the estimate is the same as from a
    fresh system; the system still pickles with cloudpickle (dask workers) without its lock."""
    spec, y = spec_for(Poisson()), poisson_data(seed=1)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    post = laplace_posterior(y, spec, VALUES)  # the mean correction asks for the training-grid variance
    calls = []
    solve_h = post.system.solve_h
    monkeypatch.setattr(post.system, "solve_h", lambda rows, tol=None: calls.append(rows.shape) or solve_h(rows, tol))
    _, whole = moments(post, NEW)
    _, first = moments(post, (NEW[0][:2], NEW[1]))
    _, last = moments(post, (NEW[0][2:], NEW[1]))
    assert calls == []
    np.testing.assert_array_equal(np.concatenate([first, last]), whole)
    fresh = laplace_posterior(y, spec, VALUES, mean_correction=False)
    np.testing.assert_allclose(moments(fresh, NEW)[1], whole, rtol=1e-12)
    clone = pickle.loads(cloudpickle.dumps(fresh.system))
    np.testing.assert_array_equal(clone.probe_solves(LAPLACE_VARIANCE_PROBES, 0)[1],
                                  fresh.system.probe_solves(LAPLACE_VARIANCE_PROBES, 0)[1])  # fmt: skip


def test_whitened_variance_is_held_within_rigorous_bounds_and_warns_when_uncertain(monkeypatch):
    """Nearly certain yes/no events (W from ~0 to 1/4): the exact variance lies within the bounds, the
    lower one being the exact Laplace variance for W = max W at every cell; the estimate is within them;
    and a prediction warns where the estimate's se is large against the variance."""
    from xkron.spec.likelihoods import Bernoulli

    spec = spec_for(Bernoulli())
    rng = np.random.default_rng(3)
    y = (np.add.outer(X[0] - 2.5, X[1] - 1.5) + 0.3 * rng.normal(size=(9, 7)) > 0).astype(float)
    y[rng.random(y.shape) < 0.2] = np.nan
    values = {**VALUES, "amplitude": 6.0}
    mode = laplace_mode(y, spec, values)
    assert mode.w[mode.observed].min() < 0.02 * mode.w.max()
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    post = laplace_posterior(y, spec, values, mode, mean_correction=False)
    labels = [TestInputs("a", (NEW[0],)), TestInputs("b", (NEW[1],))]
    prior = np.broadcast_to(prior_variance(spec.factors, values, labels, "ab"), (4, 3))
    result = laplace_variance(post.system, post.cross(labels), ["a", "b"], "ab", prior)
    _, exact = dense_reference(spec, values, mode, NEW)
    assert np.all(result.lower <= exact * (1 + 1e-9)) and np.all(exact <= result.upper * (1 + 1e-9))
    assert np.all((result.lower <= result.variance) & (result.variance <= result.upper))
    flat = dataclasses.replace(mode, w=np.full(mode.w.shape, mode.w.max()))
    _, at_max = dense_reference(spec, values, flat, NEW)
    np.testing.assert_allclose(result.lower, at_max, rtol=1e-9)
    monkeypatch.setattr(laplace_module, "LAPLACE_VARIANCE_WARN_SE", 0.0)
    with pytest.warns(UserWarning, match=r"standard error exceeds 0% of the variance at 12 of 12 cells"):
        moments(post, NEW)
    assert post.variance_reports[-1]["cells_over_warn_se"] == 12


def test_gaussian_likelihood_is_the_exact_posterior():
    """With Gaussian observations the Laplace posterior is the Gaussian one: pseudo-data ``ỹ = y``, noise ``σ²``."""
    spec, y = spec_for(Gaussian()), np.log1p(poisson_data(seed=2))
    values = {**VALUES, "noise": 0.3}
    mean, var = moments(laplace_posterior(y, spec, values), NEW)
    exact = ObservedPosterior.condition(y, spec.factors, values)
    ref_mean, ref_var = moments(exact, NEW)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-8)
    np.testing.assert_allclose(var, ref_var, rtol=1e-8, atol=1e-12)


def test_student_t_outlier_keeps_its_pull_on_the_mean():
    """A far outlier has ``W < 0``: it leaves the covariance (positive part) but the mean is still ``μ + k*ᵀ∇log p``."""
    spec = spec_for(StudentT())
    rng = np.random.default_rng(3)
    y = 0.4 + 0.3 * rng.normal(size=(9, 7))
    y[4, 3] = 12.0
    values = {**VALUES, "noise": 0.2, "nu": 3.0}
    mode = laplace_mode(y, spec, values)
    assert mode.w[4, 3] < 0
    mean, var = moments(laplace_posterior(y, spec, values, mode, mean_correction=False), NEW)
    ref_mean, ref_var = dense_reference(spec, values, mode, NEW)
    np.testing.assert_allclose(mean, ref_mean, atol=1e-10)
    np.testing.assert_allclose(var, ref_var, rtol=1e-9)


@pytest.mark.parametrize("whitened", [False, True], ids=["dense", "whitened"])
def test_sample_fields_have_the_laplace_moments(monkeypatch, whitened):
    """Matheron draws with the pseudo-noise: their mean and variance match the exact (dense) Laplace moments within 5
    Monte Carlo se of the draws. (The whitened posterior's own variance is a Monte Carlo estimate too, 8% se here:
    ``tests/linalg/test_laplace_variance.py`` holds it to its se.)"""
    spec, y = spec_for(Poisson()), poisson_data(seed=4)
    mean, var = moments(laplace_posterior(y, spec, VALUES), NEW)  # dense: exact
    if whitened:
        monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    post = laplace_posterior(y, spec, VALUES)
    n = 4000
    fields = posterior_fields(post, [[NEW[0]], [NEW[1]]], n, np.random.default_rng(0))
    assert np.all(np.abs(fields.mean(axis=0) - mean) < 5 * np.sqrt(var / n))
    assert np.all(np.abs(fields.var(axis=0) / var - 1) < 5 * np.sqrt(2 / n))


@pytest.mark.parametrize("whitened", [False, True], ids=["dense", "whitened"])
def test_mean_correction_moves_the_mean_towards_the_exact_posterior_mean(monkeypatch, whitened):
    """Sparse counts make the posterior skewed: its mean is not the mode. The exact posterior mean of
    ``f`` on a 9 × 7 grid by importance sampling (400,000 draws from the Laplace Gaussian, self-normalised
    weights; Monte Carlo se from the weights) against the mode and against the corrected mean."""
    spec = spec_for(Poisson())
    rng = np.random.default_rng(6)
    values = {**VALUES, "amplitude": 1.2, "mean": -1.0}
    y = rng.poisson(np.exp(-1.0 + rng.normal(0, 1.0, (9, 7)))).astype(float)  # mostly 0 and 1
    mode = laplace_mode(y, spec, values)
    plain, _ = moments(laplace_posterior(y, spec, values, mode, mean_correction=False), X)
    if whitened:
        monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    corrected, _ = moments(laplace_posterior(y, spec, values, mode), X)
    # Importance sampling from q = N(f̂, Σ), Σ = (C⁻¹ + W)⁻¹, to p(f | y) ∝ p(y | f) N(f; μ, C).
    params = [factor_params(f, values) for f in spec.factors]
    C = values["amplitude"] ** 2 * np.kron(*(f.covariance(p) for f, p in zip(spec.factors, params, strict=True)))
    C += 1e-10 * np.eye(len(C))
    Ci = np.linalg.inv(C)
    Sigma = np.linalg.inv(Ci + np.diag(mode.w.ravel()))
    L = np.linalg.cholesky(Sigma)
    n = 400_000
    z = np.random.default_rng(7).standard_normal((n, len(C)))
    f = mode.f.ravel() + z @ L.T
    centred = f - values["mean"]
    log_prior = -0.5 * np.einsum("ij,jk,ik->i", centred, Ci, centred)
    log_w = (y.ravel() * f - np.exp(f)).sum(axis=1) + log_prior + 0.5 * (z**2).sum(1)
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    exact = w @ f
    se = np.sqrt(w**2 @ (f - exact) ** 2)  # self-normalised importance sampling se per cell
    assert 1 / np.sum(w**2) > 0.1 * n  # the Laplace Gaussian is a good proposal here (ESS 25%)
    err_plain = np.abs(plain.ravel() - exact)
    err_corrected = np.abs(corrected.ravel() - exact)
    assert np.max(se) < 0.2 * np.max(err_plain)  # the mode's error is well above Monte Carlo error
    # The correction removes nearly all of the mode's error (measured: the error's norm 1.03 -> 0.013
    # on the dense path, 0.037 with the whitened path's Monte Carlo variances), cell by cell and overall.
    assert np.linalg.norm(err_corrected) < 0.1 * np.linalg.norm(err_plain)
    assert np.all(err_corrected <= np.maximum(0.3 * err_plain, 4 * se))


def test_each_design_point_has_its_own_variance_seed(monkeypatch):
    """INLA mixes the Laplace posteriors of its design points: each point's Monte Carlo variance takes its
    own seed (the index of the point), so that the mixture averages their errors instead of repeating
    one; every estimate stays within its stated se of the dense variance."""
    from xkron.results.conditioned import DrawPosteriors

    spec, y = spec_for(Poisson()), poisson_data(seed=1)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    posteriors = DrawPosteriors(y, spec, [VALUES, VALUES, VALUES], laplace=True)
    assert [p.seed for p in posteriors] == [0, 1, 2]
    tests = [TestInputs("a", (X[0],)), TestInputs("b", (X[1],))]
    prior = np.broadcast_to(prior_variance(spec.factors, VALUES, tests, "ab"), (9, 7))
    mode = laplace_mode(y, spec, VALUES)
    _, ref_var = dense_reference(spec, VALUES, mode, X)
    results = [laplace_variance(p.system, p.cross(tests), ["a", "b"], "ab", prior, seed=p.seed) for p in posteriors]
    assert not np.allclose(results[0].variance, results[1].variance)
    for result in results:
        assert np.all(np.abs(result.variance - ref_var) <= 5 * result.se + 1e-12)


def test_design_points_share_the_probes_of_one_posterior(monkeypatch):
    """An INLA mixture of effectively ``1/Σ w²`` points gives each point that share of the variance's
    probes (at least 16), and the weighted mixture of their variances is within its stated se
    (``√Σ w² se²``) of the dense one."""
    from xkron.posterior.laplace import mixture_probes
    from xkron.results.conditioned import DrawPosteriors

    spec, y = spec_for(Poisson()), poisson_data(seed=1)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    draws = [VALUES, {**VALUES, "ls_a": 1.6}, {**VALUES, "amplitude": 0.6}]
    weights = np.array([0.5, 0.25, 0.25])
    posteriors = DrawPosteriors(y, spec, draws, laplace=True, weights=weights)
    np.testing.assert_allclose(posteriors.points, 1 / 0.375)
    probes = mixture_probes(posteriors.points)
    assert probes == 24
    tests = [TestInputs("a", (X[0],)), TestInputs("b", (X[1],))]
    mixed, se2, ref, centre = 0.0, 0.0, 0.0, None
    for w, values, post in zip(weights, draws, posteriors, strict=True):
        _, var = post.moments(tests, "ab")
        assert post.variance_reports[-1]["probes"] == probes
        prior = np.broadcast_to(prior_variance(spec.factors, values, tests, "ab"), (9, 7))
        result = laplace_variance(post.system, post.cross(tests), ["a", "b"], "ab", prior, probes, post.seed, centre)
        centre = result.weights if centre is None else centre
        np.testing.assert_array_equal(result.variance, var)
        ref += w * dense_reference(spec, values, laplace_mode(y, spec, values), X)[1]
        mixed, se2 = mixed + w * var, se2 + (w * result.se) ** 2
    assert np.all(np.abs(mixed - ref) <= 5 * np.sqrt(se2) + 1e-12)


@pytest.mark.parametrize("first", [0, 4], ids=["in-order", "a-point-before-the-centre"])
def test_design_points_after_the_centre_take_its_weights(monkeypatch, first):
    """With effectively 9 points, the centre cross-fits its variance's weights on 16 probes and draws,
    and the other points take those weights with 8 each (``LAPLACE_POOLED_MIN_PROBES``), fitted on the
    same output cells, also where a point is asked for before the centre; the mixture stays within
    its stated se of the dense one."""
    from xkron.results.conditioned import DrawPosteriors

    spec, y = spec_for(Poisson()), poisson_data(seed=3)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    draws = [{**VALUES, "ls_a": 1.3 + 0.05 * k, "amplitude": 0.8 - 0.02 * k} for k in range(9)]
    posteriors = DrawPosteriors(y, spec, draws, laplace=True, weights=np.ones(9) / 9)
    tests = [TestInputs("a", (NEW[0],)), TestInputs("b", (NEW[1],))]
    built = {first: posteriors[first]}  # conditioned on access: asked for first
    moments_first = built[first].moments(tests, "ab")[1]
    cross = posteriors[0].cross(tests)
    prior = np.broadcast_to(prior_variance(spec.factors, draws[0], tests, "ab"), (4, 3))
    centre = laplace_variance(posteriors[0].system, cross, ["a", "b"], "ab", prior, 16, 0)
    mixed, se2, ref = 0.0, 0.0, 0.0
    for k in range(9):
        post = built.get(k) or posteriors[k]
        var = moments_first if k == first else post.moments(tests, "ab")[1]
        assert post.variance_reports[-1]["probes"] == (16 if k == 0 else 8)
        prior = np.broadcast_to(prior_variance(spec.factors, draws[k], tests, "ab"), (4, 3))
        own = None if k == 0 else centre.weights
        result = laplace_variance(post.system, post.cross(tests), ["a", "b"], "ab", prior, 16 if k == 0 else 8, k, own)
        np.testing.assert_array_equal(result.variance, var)
        ref += dense_reference(spec, draws[k], laplace_mode(y, spec, draws[k]), NEW)[1] / 9
        mixed, se2 = mixed + var / 9, se2 + (result.se / 9) ** 2
    assert np.all(np.abs(mixed - ref) <= 5 * np.sqrt(se2) + 1e-12)


def test_design_points_conditioned_in_threads_equal_those_conditioned_in_order(monkeypatch):
    """``condition_all`` conditions the design points after the centre on several threads: the same
    modes, means and Monte Carlo variances as one after the other."""
    from xkron.results.conditioned import DrawPosteriors

    spec, y = spec_for(Poisson()), poisson_data(seed=3)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    draws = [{**VALUES, "ls_a": 1.3 + 0.05 * k, "amplitude": 0.8 - 0.02 * k} for k in range(9)]
    in_order = list(DrawPosteriors(y, spec, draws, laplace=True, weights=np.ones(9) / 9))
    threaded = DrawPosteriors(y, spec, draws, laplace=True, weights=np.ones(9) / 9).condition_all(threads=3)
    assert [p.seed for p in threaded] == list(range(9))
    for a, b in zip(in_order, threaded, strict=True):
        for x, z in zip(moments(a, NEW), moments(b, NEW), strict=True):
            np.testing.assert_allclose(z, x, rtol=1e-12, atol=1e-14)


def test_design_points_start_newton_from_the_first_mode(monkeypatch):
    """INLA's design points after the first start their mode search from the first mode found (the
    centre's): fewer Newton steps, the same posterior as a cold start (means to 1e-8)."""
    import xkron.results.conditioned as conditioned

    spec, y = spec_for(Poisson()), poisson_data(seed=2)
    draws = [VALUES, {**VALUES, "ls_a": 1.5, "amplitude": 0.9}]
    steps, starts = [], []

    def recording(*args, v0=None, **kwargs):
        mode = laplace_mode(*args, v0=v0, **kwargs)
        steps.append(mode.newton_steps)
        starts.append(v0)
        return mode

    monkeypatch.setattr(conditioned, "laplace_mode", recording)
    posteriors = list(conditioned.DrawPosteriors(y, spec, draws, laplace=True))
    assert starts[0] is None and starts[1] is not None
    cold = laplace_mode(y, spec, draws[1])
    assert steps[1] < cold.newton_steps
    for values, post in zip(draws, posteriors, strict=True):
        ref = laplace_posterior(y, spec, values)
        np.testing.assert_allclose(moments(post, NEW)[0], moments(ref, NEW)[0], atol=1e-8)


def test_a_mixture_warns_once_with_one_text(monkeypatch):
    """Every design point of a mixture warns with the same text (Python's default filter then shows it
    once, not once per point); a single posterior states its own counts."""
    import warnings

    from xkron.results.conditioned import DrawPosteriors

    spec, y = spec_for(Poisson()), poisson_data(seed=1)
    monkeypatch.setattr(laplace_module, "DENSE_MAX_CELLS", 10)
    monkeypatch.setattr(laplace_module, "LAPLACE_VARIANCE_WARN_SE", 0.0)  # every cell warns
    tests = [TestInputs("a", (X[0],)), TestInputs("b", (X[1],))]
    posteriors = list(DrawPosteriors(y, spec, [VALUES] * 3, laplace=True, weights=np.ones(3) / 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for post in posteriors:
            post.moments(tests, "ab")
        laplace_posterior(y, spec, VALUES).moments(tests, "ab")
    texts = [str(w.message) for w in caught]
    assert len(texts) == 4 and len(set(texts[:3])) == 1
    assert "some of its design points (effectively 3" in texts[0]
    assert "at 63 of 63 cells" in texts[3]
