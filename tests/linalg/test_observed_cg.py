"""CG on the observed cells (:class:`xkron.linalg.observed_cg.ObservedSystem`) against the exact dense system.

Solves are exact to the CG tolerance; the log-likelihood and its gradient carry a Monte Carlo
error that the system states (``Loglik.logp_se``), checked here against the dense answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from xkron.linalg.dense import DenseSystem
from xkron.linalg.iterative import IterativeSystem
from xkron.linalg.observed_cg import ObservedSystem
from xkron.linalg.systems import choose_formulation, make_system
from xkron.spec.solver import Solver

RNG = np.random.default_rng(5)
SHAPE = (8, 14, 16)


def _matern52(n, ls):
    r = np.abs(np.subtract.outer(np.arange(n, dtype=float), np.arange(n, dtype=float))) / ls
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


FACTORS = [_matern52(8, 2.0), _matern52(14, 3.0), _matern52(16, 4.0)]


def _coast_and_clouds():
    """Land on a fixed quarter of the plane at every time, and a cloud box that moves each step."""
    seen = np.ones(SHAPE, dtype=bool)
    seen[:, :, 10:] = False
    for t in range(SHAPE[0]):
        seen[t, t : t + 7, 2 : 2 + t] = False
    return seen & (RNG.random(SHAPE) > 0.3)


PATTERNS = {"mostly missing": RNG.random(SHAPE) > 0.75, "coast and clouds": _coast_and_clouds()}
NOISE = {"equal": 0.05, "per-cell": 0.03 + 0.05 * RNG.random(SHAPE)}


@pytest.mark.parametrize("noise", list(NOISE))
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_solve_logp_and_gradient_agree_with_the_dense_path(pattern, noise):
    observed, noise_var = PATTERNS[pattern], NOISE[noise]
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.3, noise_var, observed).loglik(y, 0.2, gradient=True)
    approx = ObservedSystem(FACTORS, 1.3, noise_var, observed, probes=64).loglik(y, 0.2, gradient=True)
    assert approx.cg.converged and approx.formulation == "observed"
    np.testing.assert_allclose(approx.alpha, exact.alpha, rtol=0, atol=1e-6 * np.abs(exact.alpha).max())
    assert approx.d_mean == pytest.approx(exact.d_mean, rel=1e-6)
    # The stated standard error covers the log-likelihood's actual error.
    assert 0 < approx.logp_se < 0.01 * abs(exact.logp)
    assert abs(approx.logp - exact.logp) < 4 * approx.logp_se
    for d_a, d_e, K in zip(approx.d_factors, exact.d_factors, FACTORS, strict=True):
        direction = K * np.subtract.outer(np.arange(len(K)), np.arange(len(K))) ** 2  # ∝ ∂K/∂log ls
        assert np.sum(d_a * direction) == pytest.approx(np.sum(d_e * direction), rel=0.05, abs=1.0)
    assert approx.d_eta2 == pytest.approx(exact.d_eta2, rel=0.05, abs=1.0)
    assert approx.d_sigma2 == pytest.approx(float(np.sum(exact.d_noise)), rel=0.05, abs=5.0)


@pytest.mark.parametrize("kind", [ObservedSystem, IterativeSystem])
def test_stated_standard_error_matches_the_spread_over_seeds(kind):
    observed = PATTERNS["coast and clouds"]
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.0, 0.05, observed).loglik(y).logp
    runs = [kind(FACTORS, 1.0, 0.05, observed, probes=8, seed=s).loglik(y) for s in range(12)]
    rms = np.sqrt(np.mean([(r.logp - exact) ** 2 for r in runs]))
    stated = np.sqrt(np.mean([r.logp_se**2 for r in runs]))
    assert stated / 3 < rms < 3 * stated


def test_formulation_is_the_smaller_set_unless_asked():
    mostly_missing, few_missing = PATTERNS["mostly missing"], RNG.random(SHAPE) > 0.2
    assert choose_formulation("auto", mostly_missing) == "observed"
    assert choose_formulation("auto", few_missing) == "missing"
    assert choose_formulation("missing", mostly_missing) == "missing"
    for formulation, kind in [("auto", ObservedSystem), ("observed", ObservedSystem), ("missing", IterativeSystem)]:
        system = make_system(Solver("iterative", formulation=formulation), FACTORS, 1.0, 0.1, mostly_missing)
        assert type(system) is kind


def test_batched_solve_keeps_rows_apart_and_zeroes_missing_cells():
    observed = PATTERNS["coast and clouds"]
    b = RNG.normal(size=(3, *SHAPE))
    o = observed.ravel()
    dense = DenseSystem(FACTORS, 0.7, 0.02, observed)
    x = ObservedSystem(FACTORS, 0.7, 0.02, observed).solve(b)
    assert x.shape == b.shape and np.all(x[:, ~observed] == 0)
    for row, got in zip(b, x, strict=True):
        np.testing.assert_allclose(got.ravel()[o], dense.solve(row).ravel()[o], rtol=0, atol=1e-6)
