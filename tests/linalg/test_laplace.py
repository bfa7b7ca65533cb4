"""Issue 14, item 1: the Laplace approximation on Kronecker grids against dense references.

- With a Gaussian likelihood the Laplace marginal is the exact marginal likelihood (the posterior is
  Gaussian): against the Kronecker formula on a complete grid and the dense Cholesky one with missing cells.
- The Newton mode equals a dense Newton solve in ``f`` (``K⁻¹ + W``) on small grids, for the log-concave
  likelihoods, with missing cells; the Laplace marginal equals the dense formula
  ``Σ log p(y|f̂) − ½ (f̂−μ)ᵀK⁻¹(f̂−μ) − ½ log|I + W^½KW^½|``.
- The stochastic log-determinant is within its stated error of the dense one, and exact where the
  preconditioner is the Newton matrix itself.
"""

from __future__ import annotations

import numpy as np
import pytest

from xkron.linalg.dense import DenseSystem
from xkron.linalg.kronecker import KronEigen, marginal_loglik
from xkron.linalg.laplace import Whitened, laplace_loglik, newton_mode
from xkron.spec.pointwise import pointwise

RNG = np.random.default_rng(7)
SHAPE = (6, 5, 4)


def _matern52(n, ls):
    r = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) / ls
    return (1 + np.sqrt(5) * r + 5 * r * r / 3) * np.exp(-np.sqrt(5) * r)


FACTORS = [_matern52(6, 2.0), _matern52(5, 1.5), _matern52(4, 1.0)]
EIGEN = KronEigen.from_factors(FACTORS)
K = np.kron(np.kron(FACTORS[0], FACTORS[1]), FACTORS[2])
MISSING = RNG.random(SHAPE) < 0.25

DATA = {
    "poisson": (RNG.poisson(2.0, size=SHAPE).astype(float), {}, {"exposure": 1.5}),
    "negative_binomial": (RNG.poisson(3.0, size=SHAPE).astype(float), {"dispersion": 2.0}, {}),
    "bernoulli": ((RNG.random(SHAPE) < 0.3).astype(float), {}, {}),
    "binomial": (RNG.binomial(6, 0.4, size=SHAPE).astype(float), {}, {"trials": 6.0}),
    "gamma": (RNG.gamma(2.0, size=SHAPE), {"shape": 2.5}, {}),
}


def terms_of(name, y, values, data):
    return lambda f: pointwise(name, f, y, values, data)


@pytest.mark.parametrize("missing", [False, True], ids=["complete", "missing"])
@pytest.mark.parametrize("logdet", ["dense", "slq"])
def test_gaussian_laplace_marginal_is_the_exact_marginal(missing, logdet):
    y = RNG.normal(size=SHAPE)
    observed = ~MISSING if missing else np.ones(SHAPE, dtype=bool)
    eta2, noise, mean = 1.7, 0.4, 0.3
    mode = newton_mode(terms_of("gaussian", y, {"noise": noise}, {}), EIGEN, eta2, mean, observed)
    assert mode.converged
    result = laplace_loglik(mode, EIGEN, eta2, logdet, probes=64, cg_tol=1e-8)  # float64 products
    default = laplace_loglik(mode, EIGEN, eta2, logdet, probes=64)  # PROBE_TOL: float32 products
    assert abs(default.logp - result.logp) <= 1e-4 + 0.1 * result.logp_se
    if missing:
        exact = DenseSystem(FACTORS, eta2, noise**2, observed).loglik(y, mean).logp
    else:
        exact = marginal_loglik(y, EIGEN, eta2, noise**2, mean).logp
    if logdet == "dense" or not missing:  # complete grid, constant W: the preconditioner is H, SLQ is exact
        assert result.logp == pytest.approx(exact, rel=1e-10, abs=1e-8)
    else:
        assert abs(result.logp - exact) <= 4 * result.logp_se and result.logp_se > 0


def dense_newton(name, y, values, data, eta2, mean, observed):
    """An independent reference: Newton in ``f`` with dense ``K⁻¹ + W`` (no whitening, no CG)."""
    Kd = eta2 * K
    K_inv = np.linalg.inv(Kd)
    o = observed.ravel()
    f = np.full(y.size, mean)
    for _ in range(100):
        t = pointwise(name, f, y.ravel(), values, data)
        g = np.where(o, t.d1, 0.0) - K_inv @ (f - mean)
        H = K_inv + np.diag(np.where(o, -t.d2, 0.0))
        step = np.linalg.solve(H, g)
        f = f + step
        if g @ step < 1e-20:
            break
    t = pointwise(name, f, y.ravel(), values, data)
    w = np.where(o, -t.d2, 0.0)
    B = np.eye(y.size) + np.sqrt(w)[:, None] * Kd * np.sqrt(w)[None, :]
    logq = np.sum(t.logp[o]) - 0.5 * (f - mean) @ K_inv @ (f - mean) - 0.5 * np.linalg.slogdet(B)[1]
    return f.reshape(y.shape), logq


@pytest.mark.parametrize("name", list(DATA))
def test_newton_mode_and_marginal_equal_a_dense_newton_solve(name):
    y, values, data = DATA[name]
    observed = ~MISSING
    eta2, mean = 0.8, 0.2
    mode = newton_mode(terms_of(name, y, values, data), EIGEN, eta2, mean, observed)
    f_ref, logq_ref = dense_newton(name, y, values, data, eta2, mean, observed)
    assert mode.converged and mode.newton_steps < 30
    np.testing.assert_allclose(mode.f, f_ref, rtol=0, atol=1e-8 * max(1.0, np.abs(f_ref).max()))
    assert laplace_loglik(mode, EIGEN, eta2).logp == pytest.approx(logq_ref, rel=1e-10, abs=1e-8)


def test_stochastic_log_determinant_is_within_its_stated_error():
    """Over 20 probe seeds the SLQ estimates scatter about the dense value as their stated se says."""
    y, values, data = DATA["poisson"]
    mode = newton_mode(terms_of("poisson", y, values, data), EIGEN, 2.0, 0.0, ~MISSING)
    exact = laplace_loglik(mode, EIGEN, 2.0).logdet
    runs = [laplace_loglik(mode, EIGEN, 2.0, "slq", probes=16, seed=s) for s in range(20)]
    errors = np.array([r.logdet - exact for r in runs])
    stated = np.mean([2 * r.logp_se for r in runs])  # logp_se is half the log-determinant's se
    assert 0 < stated and abs(errors.mean()) < 4 * stated / np.sqrt(20)
    assert 0.5 * stated < errors.std() < 2.0 * stated


def test_whitened_root_is_a_kronecker_square_root_also_for_rank_deficient_factors():
    x = np.arange(5.0)
    cosine = np.cos(2 * np.pi * np.subtract.outer(x, x) / 5.0)  # rank 2
    w = Whitened(KronEigen.from_factors([cosine, FACTORS[2]]))
    R = w.dense()
    np.testing.assert_allclose(R @ R.T, np.kron(cosine, FACTORS[2]), atol=1e-12)
    np.testing.assert_allclose(np.diag(R.T @ R), w.spectrum.ravel(), atol=1e-12)
    v = RNG.normal(size=(3, 5, 4))
    np.testing.assert_allclose(w.root(v).reshape(3, -1), v.reshape(3, -1) @ R.T, atol=1e-12)
    np.testing.assert_allclose(w.root_t(v).reshape(3, -1), v.reshape(3, -1) @ R, atol=1e-12)


def test_student_t_mode_is_a_maximum_with_outliers():
    """Student-t is not log-concave: far outliers have ``W < 0``. Newton with ``max(W, 0)`` still reaches the
    mode: the gradient of ``ψ`` vanishes there (to about 1e-7) and every nearby point is lower."""
    y = RNG.normal(size=SHAPE) * 0.3
    y[0, 0, 0], y[3, 2, 1] = 8.0, -6.0
    values = {"noise": 0.3, "nu": 3.0}
    terms = terms_of("student_t", y, values, {})
    observed = ~MISSING
    observed[0, 0, 0] = observed[3, 2, 1] = True
    mode = newton_mode(terms, EIGEN, 1.0, 0.0, observed)
    assert mode.converged and np.any(mode.w < 0)
    whitened = Whitened(EIGEN)
    t = terms(mode.f)
    grad = whitened.root_t(np.where(observed, t.d1, 0.0)) - mode.v
    # Newton with max(W, 0) converges linearly here, and stops once the decrement reaches the rounding of ψ
    # (about 1e-12 nats): the gradient is then about 1e-7, where the log-concave likelihoods reach 1e-8 and better.
    assert np.abs(grad).max() < 1e-6

    def psi(v):
        f = whitened.root(v)
        return np.sum(pointwise("student_t", f, y, values, {}).logp[observed]) - 0.5 * np.sum(v * v)

    for _ in range(5):
        assert psi(mode.v + 1e-3 * RNG.normal(size=SHAPE)) < mode.psi
    assert mode.psi == pytest.approx(psi(mode.v), rel=1e-12)


# --- the gradient -------------------------------------------------------------------------------

from xkron.linalg.laplace_grad import laplace_gradient  # noqa: E402


def _matern_factors(ls):
    return [_matern52(n, s) for n, s in zip(SHAPE, ls, strict=True)]


def _logq(name, y, values, data, ls, eta2, mean, observed):
    factors = _matern_factors(ls)
    eigen = KronEigen.from_factors(factors)
    mode = newton_mode(terms_of(name, y, values, data), eigen, eta2, mean, observed)
    return laplace_loglik(mode, eigen, eta2).logp, mode, factors, eigen


def _d_matern52(n, ls):
    """``∂K/∂ls`` of :func:`_matern52`."""
    r = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) / ls
    # d/dr [(1 + √5 r + 5r²/3) e^{−√5 r}] = −(5/3) r (1 + √5 r) e^{−√5 r}; dr/dls = −r/ls
    return (5.0 / 3.0) * r * (1 + np.sqrt(5) * r) * np.exp(-np.sqrt(5) * r) * r / ls


@pytest.mark.parametrize("name", ["poisson", "bernoulli", "negative_binomial", "gamma"])
def test_gradient_equals_central_differences(name):
    """``∂ log q/∂θ`` through ``∂/∂K_i`` (chain rule over every entry) against central differences of the
    dense Laplace marginal, for each lengthscale, ``η²`` and the mean; missing cells included."""
    y, values, data = DATA[name]
    ls, eta2, mean, observed = [2.0, 1.5, 1.0], 0.8, 0.2, ~MISSING
    _, mode, factors, eigen = _logq(name, y, values, data, ls, eta2, mean, observed)
    grad = laplace_gradient(mode, factors, eigen, eta2)
    h = 1e-5
    for i in range(3):
        up, down = list(ls), list(ls)
        up[i] += h
        down[i] -= h
        fd = (_logq(name, y, values, data, up, eta2, mean, observed)[0]
              - _logq(name, y, values, data, down, eta2, mean, observed)[0]) / (2 * h)  # fmt: skip
        analytic = float(np.sum(grad.d_factors[i] * _d_matern52(SHAPE[i], ls[i])))
        assert analytic == pytest.approx(fd, rel=1e-6, abs=1e-7), f"ls {i}"
    fd = (_logq(name, y, values, data, ls, eta2 + h, mean, observed)[0]
          - _logq(name, y, values, data, ls, eta2 - h, mean, observed)[0]) / (2 * h)  # fmt: skip
    assert grad.d_eta2 == pytest.approx(fd, rel=1e-6, abs=1e-7)
    fd = (_logq(name, y, values, data, ls, eta2, mean + h, observed)[0]
          - _logq(name, y, values, data, ls, eta2, mean - h, observed)[0]) / (2 * h)  # fmt: skip
    assert grad.d_mean == pytest.approx(fd, rel=1e-6, abs=1e-7)


def test_gaussian_gradient_is_the_exact_marginals():
    y = RNG.normal(size=SHAPE)
    observed = ~MISSING
    eta2, noise, mean = 1.3, 0.5, -0.2
    mode = newton_mode(terms_of("gaussian", y, {"noise": noise}, {}), EIGEN, eta2, mean, observed)
    grad = laplace_gradient(mode, FACTORS, EIGEN, eta2)
    exact = DenseSystem(FACTORS, eta2, noise**2, observed).loglik(y, mean, gradient=True)
    for a, b in zip(grad.d_factors, exact.d_factors, strict=True):
        np.testing.assert_allclose(a, 0.5 * (b + b.T), rtol=1e-8, atol=1e-9)
    assert grad.d_eta2 == pytest.approx(exact.d_eta2, rel=1e-8)
    assert grad.d_mean == pytest.approx(exact.d_mean, rel=1e-8)


def test_hutchinson_gradient_is_unbiased_with_a_stated_spread():
    """With Rademacher probes the trace and diagonal terms are Hutchinson estimates: over 30 seeds their mean
    is within 4 standard errors of the exact gradient."""
    y, values, data = DATA["poisson"]
    mode = newton_mode(terms_of("poisson", y, values, data), EIGEN, 0.8, 0.2, ~MISSING)
    exact = laplace_gradient(mode, FACTORS, EIGEN, 0.8)
    runs = [laplace_gradient(mode, FACTORS, EIGEN, 0.8, probes=8, seed=s) for s in range(30)]
    for i in range(3):
        values_i = np.array([r.d_factors[i] for r in runs])
        se = values_i.std(axis=0) / np.sqrt(len(runs)) + 1e-12
        assert np.all(np.abs(values_i.mean(axis=0) - exact.d_factors[i]) <= 4 * se + 1e-9)
    eta = np.array([r.d_eta2 for r in runs])
    assert abs(eta.mean() - exact.d_eta2) <= 4 * eta.std() / np.sqrt(len(runs))


PARAM_CASES = {
    "gaussian": (RNG.normal(size=SHAPE), {"noise": 0.6}, {}),
    "student_t": (RNG.normal(size=SHAPE) * 0.5, {"noise": 0.5, "nu": 4.0}, {}),
    "negative_binomial": DATA["negative_binomial"],
    "gamma": DATA["gamma"],
}


@pytest.mark.parametrize("name", list(PARAM_CASES))
def test_likelihood_parameter_gradient_equals_central_differences(name):
    """``∂ log q/∂φ`` for each likelihood parameter (explicit, through ``W`` and through the mode) against central
    differences of the dense Laplace marginal; with the Gaussian it is also the exact marginal's ``∂/∂noise``."""
    from xkron.spec.pointwise import pointwise_params

    y, values, data = PARAM_CASES[name]
    observed, eta2, mean = ~MISSING, 0.8, 0.1

    def logq(vals):
        mode = newton_mode(terms_of(name, y, vals, data), EIGEN, eta2, mean, observed)
        return laplace_loglik(mode, EIGEN, eta2).logp, mode

    _, mode = logq(values)
    grad = laplace_gradient(mode, FACTORS, EIGEN, eta2, pointwise_params(name, mode.f, y, values, data))
    assert set(grad.d_params) == set(values)
    for param, value in values.items():
        h = 1e-5 * value
        fd = (logq({**values, param: value + h})[0] - logq({**values, param: value - h})[0]) / (2 * h)
        assert grad.d_params[param] == pytest.approx(fd, rel=1e-6, abs=1e-7), param
    if name == "gaussian":
        exact = DenseSystem(FACTORS, eta2, values["noise"] ** 2, observed).loglik(y, mean, gradient=True)
        assert grad.d_params["noise"] == pytest.approx(2 * values["noise"] * exact.d_sigma2, rel=1e-8)


@pytest.mark.parametrize("trace", [None, 8], ids=["pairs", "trace-probes"])
def test_gradient_from_the_log_determinants_probes_is_unbiased(trace):
    """The stochastic log-determinant's own CG solutions give unbiased trace and diagonal terms
    (``LaplaceResult.pairs``), and so does the trace estimated whole (``trace_probes``): over 40 seeds the
    gradient's mean is within 4 standard errors of the exact one."""
    y, values, data = DATA["negative_binomial"]
    mode = newton_mode(terms_of("negative_binomial", y, values, data), EIGEN, 0.8, 0.2, ~MISSING)
    from xkron.spec.pointwise import pointwise_params

    params = pointwise_params("negative_binomial", mode.f, y, values, data)
    exact = laplace_gradient(mode, FACTORS, EIGEN, 0.8, params)
    runs = []
    for s in range(40):
        result = laplace_loglik(mode, EIGEN, 0.8, "slq", probes=8, seed=s)
        runs.append(laplace_gradient(mode, FACTORS, EIGEN, 0.8, params, pairs=result.pairs, trace_probes=trace, seed=s))
    for i in range(3):
        values_i = np.array([r.d_factors[i] for r in runs])
        se = values_i.std(axis=0) / np.sqrt(len(runs))
        assert np.all(np.abs(values_i.mean(axis=0) - exact.d_factors[i]) <= 4 * se + 1e-9)
    for get in (lambda r: r.d_eta2, lambda r: r.d_mean, lambda r: r.d_params["dispersion"]):
        v = np.array([get(r) for r in runs])
        assert abs(v.mean() - get(exact)) <= 4 * v.std() / np.sqrt(len(runs)) + 1e-9


def test_mode_search_ends_where_rounding_hides_progress_and_fails_loudly_elsewhere():
    """A log-density that is rough at 1e-7 per cell (rounding of a sum over a large grid behaves so) hides
    the gain of the last Newton steps (decrement 7e-8 here): the search then ends at the mode to that
    resolution instead of raising. A direction that is no ascent at all, far from the mode, still raises."""
    y, values, data = DATA["poisson"]
    clean = terms_of("poisson", y, values, data)

    def rough(f):
        t = clean(f)
        return t._replace(logp=t.logp + 1e-7 * np.sin(1e9 * f))

    exact = newton_mode(clean, EIGEN, 0.8, 0.3, ~MISSING)
    mode = newton_mode(rough, EIGEN, 0.8, 0.3, ~MISSING)
    assert mode.converged
    np.testing.assert_allclose(mode.f, exact.f, atol=1e-3)

    def wrong_sign(f):  # a log-density that falls along the gradient of the terms Newton is given
        t = clean(f)
        return t._replace(logp=-t.logp)

    with pytest.raises(RuntimeError, match="no ascent"):
        newton_mode(wrong_sign, EIGEN, 0.8, 0.3, ~MISSING)
