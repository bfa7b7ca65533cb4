"""The iterative solver (CG + stochastic Lanczos) against the exact dense one on the observed cells.

Tolerances are the documented accuracy of :class:`xkron.linalg.iterative.IterativeSystem`: CG solves to
their relative residual; the log-determinant and trace terms to a Monte Carlo error that falls
as ``1/√(probes · N)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from xkron.linalg.cg import pcg
from xkron.linalg.dense import DenseSystem
from xkron.linalg.iterative import IterativeSystem
from xkron.linalg.observed_cg import ObservedSystem

RNG = np.random.default_rng(11)


def _expquad(n, ls):
    x = np.arange(n, dtype=float)
    return np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / ls**2)


def _cosine(n, period):
    x = np.arange(n, dtype=float)
    return np.cos(2 * np.pi * np.subtract.outer(x, x) / period)


SHAPE = (14, 12, 10)
FACTORS = [_expquad(14, 3.0), _cosine(12, 7.0) * 0.5 + 0.5 * _expquad(12, 2.0), _expquad(10, 2.5)]


def _patterns():
    random = RNG.random(SHAPE) > 0.3
    block = np.ones(SHAPE, dtype=bool)
    block[3:7, 2:6, :] = False
    static = np.ones(SHAPE, dtype=bool)
    static[:, RNG.random(12) < 0.3, :] = False
    static &= RNG.random(SHAPE) > 0.1
    return {"random": random, "block": block, "static+random": static, "complete": np.ones(SHAPE, dtype=bool)}


PATTERNS = _patterns()
NOISE = {"equal": 0.05, "per-cell": 0.03 + 0.05 * RNG.random(SHAPE)}


@pytest.mark.parametrize("noise", list(NOISE))
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_solve_logp_and_gradient_agree_with_the_dense_path(pattern, noise):
    observed, noise_var = PATTERNS[pattern], NOISE[noise]
    y = RNG.normal(size=SHAPE)
    dense = DenseSystem(FACTORS, 1.7, noise_var, observed)
    iterative = IterativeSystem(FACTORS, 1.7, noise_var, observed, probes=32)
    exact = dense.loglik(y, 0.3, gradient=True)
    approx = iterative.loglik(y, 0.3, gradient=True)
    assert approx.cg.converged
    # Solves: to the CG tolerance (1e-8 relative residual).
    np.testing.assert_allclose(approx.alpha, exact.alpha, rtol=0, atol=1e-6 * np.abs(exact.alpha).max())
    np.testing.assert_allclose(approx.d_mean, exact.d_mean, rtol=1e-6)
    # Log-likelihood: the stochastic log-determinant, to 2e-4 relative on 1,200-1,700 cells.
    assert approx.logp == pytest.approx(exact.logp, rel=2e-4)
    # Gradient: Hutchinson's trace estimate; compare along the directions a fit moves in.
    for d_a, d_e, K in zip(approx.d_factors, exact.d_factors, FACTORS, strict=True):
        direction = K * np.subtract.outer(np.arange(len(K)), np.arange(len(K))) ** 2  # ∂K/∂log ls ∝ this
        assert np.sum(d_a * direction) == pytest.approx(np.sum(d_e * direction), rel=0.02, abs=0.5)
    assert approx.d_eta2 == pytest.approx(exact.d_eta2, rel=0.02, abs=0.5)
    assert approx.d_sigma2 == pytest.approx(float(np.sum(exact.d_noise)), rel=0.02, abs=2.0)


def test_logdet_error_falls_with_probes():
    observed = PATTERNS["random"]
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.0, NOISE["per-cell"], observed).loglik(y).logp
    errors = []
    for probes in (2, 64):
        runs = [IterativeSystem(FACTORS, 1.0, NOISE["per-cell"], observed, probes=probes, seed=s) for s in range(6)]
        errors.append(np.sqrt(np.mean([(r.loglik(y).logp - exact) ** 2 for r in runs])))
    assert errors[1] < errors[0] / 2


@pytest.mark.parametrize("kind", [IterativeSystem, ObservedSystem])
def test_estimate_is_a_fixed_function_of_the_seed(kind):
    observed = PATTERNS["block"]
    y = RNG.normal(size=SHAPE)
    first = kind(FACTORS, 1.0, 0.05, observed, seed=3).loglik(y, gradient=True)
    again = kind(FACTORS, 1.0, 0.05, observed, seed=3).loglik(y, gradient=True)
    other = kind(FACTORS, 1.0, 0.05, observed, seed=4).loglik(y)
    assert first.logp == again.logp and np.array_equal(first.d_factors[0], again.d_factors[0])
    assert first.logp != other.logp


def test_complete_grid_with_equal_noise_is_exact():
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.2, 0.05, PATTERNS["complete"]).loglik(y, gradient=True)
    approx = IterativeSystem(FACTORS, 1.2, 0.05, PATTERNS["complete"], probes=1).loglik(y, gradient=True)
    assert approx.logp == pytest.approx(exact.logp, rel=1e-12)
    assert approx.cg.iterations == 0


def test_pcg_reports_non_convergence():
    M = np.diag(np.logspace(0, 8, 200))
    _, report = pcg(lambda v: v @ M, np.ones((1, 200)), tol=1e-12, max_iter=5)
    assert not report.converged and report.iterations == 5


def test_bad_noise_is_rejected():
    with pytest.raises(ValueError, match="positive at observed cells; 1 are not"):
        noise = np.full(SHAPE, 0.1)
        noise[0, 0, 0] = np.nan
        IterativeSystem(FACTORS, 1.0, noise, PATTERNS["complete"])
    with pytest.raises(ValueError, match="no cell is observed"):
        IterativeSystem(FACTORS, 1.0, 0.1, np.zeros(SHAPE, dtype=bool))


def test_static_gap_preconditioner_is_an_exact_model_of_the_gap_block():
    from xkron.linalg.gaps import StaticGapPreconditioner
    from xkron.linalg.kronecker import KronEigen

    observed = PATTERNS["block"]  # a block missing at every step of the last axis
    eigen = KronEigen.from_factors(FACTORS)
    pre = StaticGapPreconditioner.build(eigen, 1.3, 0.05, observed, cutoff=0.0)
    assert pre is not None and pre.axis == 2
    F = 1.3 * np.kron(np.kron(FACTORS[0], FACTORS[1]), FACTORS[2]) + 0.05 * np.eye(observed.size)
    m = ~observed.ravel()
    S = np.linalg.inv(F)[m][:, m]
    identity = np.eye(m.sum())
    C = pre.root(identity).T  # rows are mapped: root(I) holds the columns of C as rows
    P = C @ C.T
    # With every column kept (cutoff 0, within the rank budget) P is S itself.
    np.testing.assert_allclose(P, S, rtol=0, atol=1e-8 * np.abs(S).max())
    np.testing.assert_allclose(pre.solve(S), identity, atol=1e-6)
    np.testing.assert_allclose(
        pre.root_inv_t(identity).T, np.linalg.inv(C).T, atol=1e-6 * np.abs(np.linalg.inv(C)).max()
    )
    assert pre.logdet() == pytest.approx(np.linalg.slogdet(S)[1], rel=1e-8)
    default = StaticGapPreconditioner.build(eigen, 1.3, 0.05, observed)
    C = default.root(identity).T
    np.testing.assert_allclose(C @ C.T, S, rtol=0, atol=1e-3 * np.abs(S).max())  # small δ left out
    # The model's solve, root and log-determinant stay consistent when columns are left out.
    np.testing.assert_allclose(default.solve(C @ C.T), identity, atol=1e-6)
    assert default.logdet() == pytest.approx(np.linalg.slogdet(C @ C.T)[1], rel=1e-8)
    assert StaticGapPreconditioner.build(eigen, 1.3, 0.05, PATTERNS["random"]) is None
    # solve() applies the per-component blocks H where they are cheaper; the factored path agrees.
    r = np.random.default_rng(3).normal(size=(3, m.sum()))
    for model in (pre, default):
        assert model.H is not None
        fast = model.solve(r)
        model.H = None
        np.testing.assert_allclose(fast, model.solve(r), rtol=1e-10, atol=1e-12 * np.abs(fast).max())


@pytest.mark.parametrize("kind", [IterativeSystem, ObservedSystem])
@pytest.mark.parametrize("noise", list(NOISE))
def test_solve_stops_at_the_tolerance_of_the_call(kind, noise):
    """``solve(b, tol=)`` (the Monte Carlo variance draws' looser solves) takes fewer iterations and
    its solution's error is of the order of that tolerance; the default stays at the system's ``tol``."""
    observed, noise_var = PATTERNS["static+random"], NOISE[noise]
    system = kind(FACTORS, 1.3, noise_var, observed)
    b = RNG.normal(size=(3, *SHAPE))
    exact = DenseSystem(FACTORS, 1.3, noise_var, observed).solve(b)
    tight = system.solve(b)
    tight_iterations = system.report.iterations
    loose = system.solve(b, tol=1e-3)
    assert system.report.iterations < tight_iterations
    scale = np.abs(exact).max()
    np.testing.assert_allclose(tight, exact, rtol=0, atol=1e-6 * scale)
    error = np.abs(loose - exact).max() / scale
    assert 1e-7 < error < 1e-2  # measured 1.4e-4 to 3.7e-4: the error follows the residual asked for


@pytest.mark.parametrize("kind", [IterativeSystem, ObservedSystem])
def test_float32_products_of_the_loose_solves_change_the_estimates_far_below_their_error(monkeypatch, kind):
    """Probe solves (PROBE_TOL) run their Kronecker products in float32: the log-likelihood and its gradient
    move by far less than the stated Monte Carlo error against the same probes in float64."""
    import sys

    observed, y = PATTERNS["static+random"], RNG.normal(size=SHAPE)
    system = kind(FACTORS, 1.7, NOISE["equal"], observed)
    v = RNG.normal(size=(4, observed.size))
    for single, double in [
        (system.f_power(v, -1.0, single=True), system.f_power(v, -1.0)),
        (system.k_apply(v, single=True), system.k_apply(v)),
    ]:
        assert single.dtype == np.float64
        np.testing.assert_allclose(single, double, rtol=0, atol=1e-5 * np.abs(double).max())
    fast = system.loglik(y, 0.3, gradient=True)
    monkeypatch.setattr(sys.modules[kind.__module__], "SINGLE_PRECISION_TOL", np.inf)  # every product in float64
    slow = kind(FACTORS, 1.7, NOISE["equal"], observed).loglik(y, 0.3, gradient=True)
    assert fast.logp != slow.logp  # the float32 path did run
    assert abs(fast.logp - slow.logp) < 0.01 * slow.logp_se
    for a, b in zip(fast.d_factors, slow.d_factors, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * np.abs(b).max())
    np.testing.assert_allclose(fast.alpha, slow.alpha, rtol=0, atol=1e-7 * np.abs(slow.alpha).max())
