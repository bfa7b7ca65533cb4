"""The MAP optimiser's ceiling: trial points whose log posterior is bounded far below the best are not evaluated.

A model whose log-likelihood term is at most 0 (as the Laplace marginal of counts or yes/no data is)
and nearly linear in ``log a`` far from its optimum: L-BFGS-B's curvature estimate is then tiny,
and its second line search tries amplitudes of thousands, where the prior alone puts the log
posterior hundreds of nats below the best point. With ``loglik_max=0`` those points are skipped (the
model's function never sees them), and the optimum is the same.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import xkron.inference.optimize as optimize
from xkron.settings import MAP_CEILING_NATS

SIGMA = 100.0  # the prior's scale: its log density is -a²/(2 SIGMA²) + const


def _model():
    with pm.Model() as model:
        a = pm.HalfNormal("a", SIGMA)
        z = pt.log(a)
        # max over z of 3z - exp(2(z - 4)) is 11.108 (at z = 4 + log(1.5)/2): the potential is below 0
        pm.Potential("loglik", 3 * z - pt.exp(2 * (z - 4)) - 11.2)
    return model


def _fit(monkeypatch, loglik_max):
    seen = []
    compile_density = optimize.compile_log_density

    def recording(model, jacobian=False):
        fn, to_u = compile_density(model, jacobian)

        def wrapped(u):
            seen.append(float(np.exp(u)))  # the value variable is log a
            return fn(u)

        return wrapped, to_u

    monkeypatch.setattr(optimize, "compile_log_density", recording)
    values, report = optimize.fit_map(_model(), [{"a": 1e-3}], progressbar=False, loglik_max=loglik_max)
    return float(values["a"]), report, np.array(seen)


def test_points_below_the_ceiling_are_skipped_and_the_optimum_is_the_same(monkeypatch):
    a_free, plain, seen_free = _fit(monkeypatch, None)
    a_bound, bounded, seen_bound = _fit(monkeypatch, 0.0)
    # the optimum: d/dz [3z - exp(2(z-4)) - a²/(2σ²)] = 0
    z = np.log(a_free)
    assert 3 - 2 * np.exp(2 * (z - 4)) - a_free**2 / SIGMA**2 == pytest.approx(0.0, abs=1e-4)
    assert a_bound == pytest.approx(a_free, rel=1e-7)
    assert bounded["logp"] == pytest.approx(plain["logp"], abs=1e-9)
    # Without the ceiling the optimiser evaluates a point whose prior alone is far below the optimum ...
    wild = 0.5 * seen_free**2 / SIGMA**2 > MAP_CEILING_NATS + abs(plain["logp"])
    assert wild.any() and plain["n_skipped"] == 0
    # ... with it, no such point reaches the model, fewer are evaluated, and the skipped ones are counted.
    assert not (0.5 * seen_bound**2 / SIGMA**2 > MAP_CEILING_NATS + abs(plain["logp"]) + 20).any()
    assert bounded["n_skipped"] > 0
    assert bounded["n_eval"] < plain["n_eval"]
    assert len(seen_bound) < len(seen_free)


def test_no_ceiling_without_a_bound_of_the_likelihood():
    """A density (Gaussian data) has no bound: ``loglik_max`` stays unset, and nothing is skipped."""
    from xkron.spec.likelihoods import Bernoulli, Binomial, Gamma, Gaussian, NegativeBinomial, Poisson, StudentT

    assert [lik.log_density_max for lik in (Poisson, NegativeBinomial, Bernoulli, Binomial)] == [0.0] * 4
    assert [lik.log_density_max for lik in (Gaussian, StudentT, Gamma)] == [None] * 3
