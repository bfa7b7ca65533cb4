"""The spectral preconditioner of CG on the observed cells, against its dense definition."""

from __future__ import annotations

import numpy as np
import pytest

from xkron.linalg.kronecker import KronEigen
from xkron.linalg.spectral import SpectralPreconditioner, cheapest_rank

RNG = np.random.default_rng(8)
SHAPE = (6, 9, 11)


def _factors():
    out = []
    for n, ls in zip(SHAPE, (2.0, 3.0, 2.5), strict=True):
        x = np.arange(n, dtype=float)
        out.append(np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / ls**2))
    return out


def _dense_a(factors, eta2, noise, observed):
    o = observed.ravel()
    K = factors[0]
    for F in factors[1:]:
        K = np.kron(K, F)
    return eta2 * K[np.ix_(o, o)] + np.diag(noise)


@pytest.mark.parametrize("cutoff", [0.5, 4.0, 100.0])
@pytest.mark.parametrize("equal", [True, False])
def test_preconditioned_spectrum_lies_in_the_stated_bound(cutoff, equal):
    factors, observed = _factors(), RNG.random(SHAPE) > 0.6
    n = int(observed.sum())
    noise = np.full(n, 0.02) if equal else 0.02 + 0.05 * RNG.random(n)
    M = SpectralPreconditioner(KronEigen.from_factors(factors), 1.5, noise, observed, cutoff=cutoff, rows=50)
    assert M.rank > 0
    A, dense_m = _dense_a(factors, 1.5, noise, observed), M.dense()
    L = np.linalg.cholesky(dense_m)
    w = np.linalg.eigvalsh(np.linalg.solve(L, np.linalg.solve(L, A).T))
    assert w.min() > 1 - 1e-9 and w.max() < M.bound * (1 + 1e-9)
    r = RNG.normal(size=(3, n))
    np.testing.assert_allclose(M.inverse(r), np.linalg.solve(dense_m, r.T).T, rtol=1e-9, atol=1e-9)
    assert M.logdet() == pytest.approx(np.linalg.slogdet(dense_m)[1], rel=1e-10)


def test_probes_have_the_preconditioner_as_covariance():
    factors, observed = _factors(), RNG.random(SHAPE) > 0.6
    n = int(observed.sum())
    M = SpectralPreconditioner(KronEigen.from_factors(factors), 1.0, np.full(n, 0.05), observed, rows=50)
    z = M.probes(np.random.default_rng(0), 40_000)
    empirical = z.T @ z / len(z)
    scale = np.sqrt(np.outer(np.diag(M.dense()), np.diag(M.dense())))
    assert np.max(np.abs(empirical - M.dense()) / scale) < 0.05


def test_cheapest_rank_keeps_modes_only_where_they_pay():
    flat = np.full(100, 0.5)  # no mode is far above the noise: CG converges at once
    assert cheapest_rank(flat, 5000, 20000, 100, 33) == 0
    steep = 1e5 * 0.7 ** np.arange(100.0)  # a few dominant modes make CG slow
    assert 0 < cheapest_rank(steep, 5000, 20000, 100, 33) < 99
    # The build cost n_o r² grows against the per-iteration cost: fewer rows, fewer modes.
    assert cheapest_rank(steep, 5000, 20000, 100, 1) <= cheapest_rank(steep, 5000, 20000, 100, 33)
