"""diag(C⁻¹) and leave-one-out moments at the array level, against dense inverses and brute-force conditioning."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import norm

from xkron.linalg import loo as loo_module
from xkron.linalg.dense import DenseSystem
from xkron.linalg.kronecker import KronEigen, outer
from xkron.linalg.loo import (
    check_schur_cost,
    inverse_diagonal,
    kron_inverse_diagonal,
    loo_moments,
    schur_estimate,
    schur_loo,
)
from xkron.linalg.systems import make_system
from xkron.posterior.conditional import KronPosterior
from xkron.posterior.loo import leave_one_out
from xkron.posterior.observed import ObservedPosterior
from xkron.settings import LOO_MAX_SECONDS
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, ExpQuad, Matern32
from xkron.spec.modelspec import factor_params
from xkron.spec.solver import Solver


def _factors():
    """Three factors, one of them rank-deficient (Cosine: rank 2), as plain matrices."""
    x1, x2, x3 = np.linspace(0, 1, 5), np.linspace(0, 3, 4), np.linspace(-1, 1, 3)
    K1 = np.exp(-0.5 * np.subtract.outer(x1, x1) ** 2 / 0.4**2)
    K2 = np.cos(2 * np.pi * np.subtract.outer(x2, x2) / 2.5)
    r = np.abs(np.subtract.outer(x3, x3)) / 0.7
    K3 = (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r)
    return [K1, K2, K3]


def _dense(factors):
    out = np.ones((1, 1))
    for K in factors:
        out = np.kron(out, K)
    return out


def _rel(a, b):
    return float(np.max(np.abs(a - b) / np.abs(b)))


def test_kron_inverse_diagonal_matches_dense_inverse():
    factors = _factors()
    eigen = KronEigen.from_factors(factors)
    eta2, sigma2 = 1.7, 0.05
    W = 1.0 / (eta2 * outer(eigen.values) + sigma2)
    h = kron_inverse_diagonal(eigen, W)
    C = eta2 * _dense(factors) + sigma2 * np.eye(60)
    assert h.shape == (5, 4, 3)
    assert _rel(h.ravel(), np.diag(np.linalg.inv(C))) < 1e-10


@pytest.mark.parametrize("gappy", [False, True])
def test_dense_inverse_diagonal_with_per_cell_noise(gappy):
    rng = np.random.default_rng(3)
    factors = _factors()
    noise = rng.uniform(0.02, 0.3, size=(5, 4, 3))
    observed = rng.uniform(size=(5, 4, 3)) > (0.3 if gappy else -1.0)
    o = observed.ravel()
    A = 0.8 * _dense(factors)[np.ix_(o, o)] + np.diag(noise.ravel()[o])
    h = DenseSystem(factors, 0.8, noise, observed).inverse_diagonal()
    assert _rel(h[observed], np.diag(np.linalg.inv(A))) < 1e-10
    assert np.isnan(h[~observed]).all() and (gappy == (~observed).any())


def test_dense_and_kronecker_agree_on_a_complete_grid_with_one_noise():
    factors = _factors()
    eigen = KronEigen.from_factors(factors)
    W = 1.0 / (1.3 * outer(eigen.values) + 0.1)
    dense = DenseSystem(factors, 1.3, 0.1, np.ones((5, 4, 3), dtype=bool)).inverse_diagonal()
    assert _rel(kron_inverse_diagonal(eigen, W), dense) < 1e-10


@pytest.mark.parametrize("formulation", ["missing", "observed"])
def test_iterative_systems_give_the_dense_inverse_diagonal(formulation):
    """Both iterative formulations: h by the whole grid's block inverse, equal to the dense inverse."""
    rng = np.random.default_rng(4)
    factors = _factors()
    observed = rng.uniform(size=(5, 4, 3)) > 0.4
    o = observed.ravel()
    system = make_system(Solver("iterative", formulation=formulation), factors, 0.9, 0.07, observed)
    A = 0.9 * _dense(factors)[np.ix_(o, o)] + 0.07 * np.eye(o.sum())
    h = inverse_diagonal(system)
    assert _rel(h[observed], np.diag(np.linalg.inv(A))) < 1e-10
    assert np.isnan(h[~observed]).all()


@pytest.mark.parametrize("block_bytes", [None, 8 * 60 * 3])
def test_schur_loo_matches_the_dense_inverse_with_one_d_factors(monkeypatch, block_bytes):
    """h and α of C = A_oo against np.linalg.inv, a rank-deficient factor included; chunks of 3 columns too."""
    if block_bytes is not None:
        monkeypatch.setattr(loo_module, "BLOCK_BYTES", block_bytes)
    rng = np.random.default_rng(5)
    factors = _factors()
    eigen = KronEigen.from_factors(factors)
    eta2, sigma2 = 1.4, 0.02
    observed = rng.uniform(size=(5, 4, 3)) > 0.35
    observed[:, 1, :] = False  # a contiguous gap: a whole slice missing
    resid = rng.normal(size=(5, 4, 3))
    alpha, h = schur_loo(eigen, 1.0 / (eta2 * outer(eigen.values) + sigma2), observed, resid)
    o = observed.ravel()
    P = np.linalg.inv(eta2 * _dense(factors)[np.ix_(o, o)] + sigma2 * np.eye(o.sum()))
    assert _rel(h[observed], np.diag(P)) < 1e-10
    assert np.max(np.abs(alpha[observed] - P @ resid[observed])) < 1e-10 * np.max(np.abs(P @ resid[observed]))
    assert np.isnan(h[~observed]).all() and (alpha[~observed] == 0).all()


def _joint_factors():
    """A joint (a, b) factor keeping 10 of its 12 inputs (a static land mask) and a time factor."""
    xa, xb, t = np.linspace(0, 1, 4), np.linspace(0, 2, 3), np.linspace(0, 3, 5)
    keep = np.array([0, 1, 2, 3, 5, 6, 7, 9, 10, 11])
    return (Factor(("a", "b"), Matern32(), (xa, xb), subset=keep), Factor(("time",), ExpQuad(), (t,)))


def test_posterior_leave_one_out_iterative_equals_dense_inverse_on_a_joint_factor():
    """The iterative posterior's leave-one-out on a joint 2-D factor with a subset: moments from np.linalg.inv."""
    rng = np.random.default_rng(6)
    factors = _joint_factors()
    values = {"ls_a": 0.6, "ls_b": 1.1, "ls_time": 0.9, "amplitude": 1.3, "noise": 0.1, "mean": 0.4}
    y = rng.normal(size=(10, 5)) + 0.4
    y[rng.uniform(size=y.shape) < 0.3] = np.nan
    y[3, :] = np.nan  # an input of the joint factor missing at every time
    observed = np.isfinite(y)
    got = leave_one_out(ObservedPosterior.condition(y, factors, values, solver=Solver("iterative")), y)
    Ks = [f.covariance(factor_params(f, values)) for f in factors]
    o = observed.ravel()
    C = 1.3**2 * np.kron(*Ks)[np.ix_(o, o)] + 0.01 * np.eye(o.sum())
    P = np.linalg.inv(C)
    alpha = P @ (y[observed] - 0.4)
    expected = loo_moments(np.where(observed, y, np.nan), _grid(alpha, observed), _grid(np.diag(P), observed))
    for a, b in zip(got, expected, strict=True):
        assert np.array_equal(np.isnan(a), ~observed)
        assert _rel(a[observed], b[observed]) < 1e-10
    dense = leave_one_out(ObservedPosterior.condition(y, factors, values), y)
    for a, b in zip(got, dense, strict=True):
        assert _rel(a[observed], b[observed]) < 1e-10


def _grid(values, observed):
    out = np.full(observed.shape, np.nan)
    out[observed] = values
    return out


def test_per_cell_noise_above_the_dense_limit_is_refused_with_the_alternatives():
    factors = _factors()[:2]
    observed = np.ones((5, 4), dtype=bool)
    observed[1, 2] = False
    noise = np.full((5, 4), 0.1)
    noise[0, 0] = 0.2
    system = make_system(Solver("iterative"), factors, 1.0, noise, observed)
    with pytest.raises(ValueError, match=r"per-cell noise.*solver='dense'.*cross_validate"):
        inverse_diagonal(system)


def test_costly_schur_loo_is_refused_before_any_compute():
    """Half a 100 × 100 × 100 grid missing: hours of products (and a 2 TB matrix) are refused, with the way out."""
    with pytest.raises((ValueError, MemoryError), match=r"missing cells.*cross_validate"):
        check_schur_cost((100, 100, 100), 500_000)
    assert schur_estimate((100, 100, 100), 500_000).seconds > LOO_MAX_SECONDS
    assert schur_estimate((20, 20), 40, draws=10).seconds == pytest.approx(10 * schur_estimate((20, 20), 40).seconds)


def test_loo_moments_against_conditioning_on_the_other_cells():
    rng = np.random.default_rng(0)
    factors = _factors()[:2]
    observed = rng.uniform(size=(5, 4)) > 0.25
    noise = rng.uniform(0.05, 0.2, size=(5, 4))
    y = np.where(observed, rng.normal(size=(5, 4)), np.nan)
    mu = 0.3
    system = DenseSystem(factors, 1.1, noise, observed)
    alpha = system.solve(np.where(observed, y - mu, 0.0))
    m = loo_moments(y, alpha, system.inverse_diagonal())
    o = observed.ravel()
    C = (1.1 * _dense(factors) + np.diag(noise.ravel()))[np.ix_(o, o)]
    yo = y[observed]
    for i in range(len(yo)):
        rest = np.arange(len(yo)) != i
        w = np.linalg.solve(C[np.ix_(rest, rest)], C[rest, i])
        mean, var = mu + w @ (yo[rest] - mu), C[i, i] - C[i, rest] @ w
        got = [m.mean[observed][i], m.var[observed][i], m.log_density[observed][i]]
        assert np.allclose(got, [mean, var, norm(mean, np.sqrt(var)).logpdf(yo[i])], rtol=1e-10, atol=1e-12)
    assert all(np.isnan(a[~observed]).all() for a in m)


def _grid_factors():
    return (
        Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
        Factor(("b",), Matern32(), (np.linspace(0, 2, 4),)),
    )


def test_posterior_leave_one_out_kronecker_equals_dense():
    """The Kronecker eigenbasis and the dense system give the same leave-one-out on a complete grid."""
    rng = np.random.default_rng(1)
    factors = _grid_factors()
    values = {"ls_a": 0.3, "ls_b": 0.8, "amplitude": 1.2, "noise": 0.15, "mean": -0.2}
    y = rng.normal(size=(5, 4))
    kron = leave_one_out(KronPosterior.condition(y, factors, values), y)
    dense = leave_one_out(ObservedPosterior.condition(y, factors, values), y)
    for a, b in zip(kron, dense, strict=True):
        assert np.allclose(a, b, rtol=1e-10, atol=1e-12)


def test_posterior_leave_one_out_refuses_dask_backed_data():
    da = pytest.importorskip("dask.array")
    factors = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),)), Factor(("b",), Cosine(), (np.linspace(0, 1, 3),)))
    values = {"ls_a": 0.3, "ls_b": 0.8, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    y = da.zeros((4, 3), chunks=2)
    with pytest.raises(NotImplementedError, match="load the data first"):
        leave_one_out(KronPosterior.condition(y, factors, values), y)
