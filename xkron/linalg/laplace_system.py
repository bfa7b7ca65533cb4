"""The Laplace posterior's linear algebra in whitened coordinates: solves and predictive variances.

The Laplace posterior of ``f`` is GP regression on pseudo-data with noise ``W⁻¹``
(:mod:`xkron.posterior.laplace`), whose system ``A = η² K_oo + W_o⁻¹`` on the cells with ``W > 0``
is badly conditioned for a general solver (the pseudo-noise spans orders of magnitude). By Woodbury
with ``K = R Rᵀ``, ``R = ⊗ Q_i Λ_i^{1/2}``, everything goes through the Newton matrix of the mode
search instead, ``H = I + η² Rᵀ W R ⪰ I``, whose CG with the diagonal ``P = I + η² w̄ Λ`` converges in a
few dozen steps (:func:`xkron.linalg.laplace.newton_matrix`):

- **solves** (:class:`LaplaceSystem`): ``A⁻¹ b = W b − η² W R H⁻¹ Rᵀ W b`` on the grid;
- **variances** (:func:`laplace_variance`): with ``R* = K* Q Λ^{-1/2}`` (so that ``K*ᵀ = R* Rᵀ``),
  ``f* = μ + η R* v + η e*`` where ``v | y ~ N(v̂, H⁻¹)`` and ``e*`` is the prior's residual given the
  whole training grid, so

      ``Var f* = η² (k** − diag R* R*ᵀ) + η² diag R* P⁻¹ R*ᵀ + η² diag R* (H⁻¹ − P⁻¹) R*ᵀ``.

  The first two terms are exact Kronecker contractions (``P`` is diagonal in the eigenbasis); the
  last, small where ``P`` is close to ``H``, is the unbiased diagonal estimator
  ``mean_z (R* z) ∘ (R* (H⁻¹ − P⁻¹) z)`` over Rademacher probes (Bekas, Kokiopoulou & Saad 2007),
  with its standard error per cell. Where ``W`` spans orders of magnitude (nearly certain yes/no
  events, large counts beside small ones) ``P`` is far from ``H`` and that se can reach the variance
  itself. So a second, independent estimate joins it: posterior draws ``s = R* H⁻¹ u``,
  ``u ~ N(0, H)``, whose ``mean s²`` has a relative se of at most ``√(2/n)`` whatever ``W``, with the
  control variate ``c = R* P⁻¹ ũ``, ``ũ ~ N(0, P)`` from the same normals (``E c²`` is the exact
  middle term) and its coefficient fitted per cell. The two are combined per cell with weights
  inverse to their estimated variances: where ``W`` is nearly constant the probes carry it, where it
  spans orders of magnitude the draws. On 3,840-cell grids against the dense variance (benchmarks
  README; 960-cell cases in ``tests/linalg/test_laplace_variance.py``) this cut the largest stated
  se from 0.50 to 0.21 of the variance (Bernoulli, amplitude 6) and from 6.5 to 0.23 (Poisson,
  curvature 0.01 to 180).
  The estimate is held within rigorous bounds, below by the exact variance for
  ``H ⪯ I + η² w_max Λ`` and above by the prior's, and
  :class:`xkron.posterior.laplace.LaplacePosterior` warns where its se stays large.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from xkron.linalg.cg import pcg, rademacher
from xkron.linalg.kronecker import KronEigen, kron_contract
from xkron.linalg.laplace import Whitened, divide_by, newton_matrix
from xkron.settings import (
    CG_MAX_ITER,
    LAPLACE_CG_TOL,
    LAPLACE_PROBE_BATCH,
    LAPLACE_VARIANCE_PROBES,
    PROBE_TOL,
    SINGLE_PRECISION_TOL,
)

__all__ = ["LaplaceSystem", "LaplaceVariance", "laplace_variance", "whitened_cross"]


class LaplaceSystem:
    """``A = η² K_oo + diag(W_o)⁻¹`` on the cells with ``W > 0``, solved through ``H`` (module docstring).

    The interface :func:`xkron.posterior.fields.posterior_fields` needs of a system: ``solve`` of
    grid tensors (with any leading batch axes) and ``observed``.

    Examples
    --------
    >>> x = np.linspace(0, 3, 5)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2)
    >>> w = np.random.default_rng(0).uniform(0.5, 2.0, (5, 5)); w[0, 0] = 0.0
    >>> system = LaplaceSystem(KronEigen.from_factors([K, K]), 0.7, w)
    >>> b = np.where(w > 0, 1.0, 0.0)
    >>> keep = (w > 0).ravel()
    >>> A = 0.7 * np.kron(K, K)[np.ix_(keep, keep)] + np.diag(1 / w.ravel()[keep])
    >>> bool(np.allclose(system.solve(b).ravel()[keep], np.linalg.solve(A, b.ravel()[keep])))
    True
    """

    def __init__(self, eigen: KronEigen, eta2: float, w: np.ndarray, tol: float = LAPLACE_CG_TOL):
        self.eigen, self.eta2, self.w, self.tol = eigen, float(eta2), np.asarray(w, dtype=float), tol
        self.shape = self.w.shape
        self.observed = self.w > 0
        self.whitened = Whitened(eigen)
        self.matvec, self.p = newton_matrix(self.whitened, self.eta2, self.w)
        self.matvec_single, _ = newton_matrix(self.whitened, self.eta2, self.w, single=True)
        self._probes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._draws: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def solve_h(self, rows: np.ndarray, tol: float | None = None) -> np.ndarray:
        """``H⁻¹`` applied to each row (a tensor of the grid's shape) by PCG; the Kronecker products in float32 for a
        ``tol`` of at least :data:`~xkron.settings.SINGLE_PRECISION_TOL` (the probes' and draws')."""
        flat, tol = rows.reshape(-1, int(np.prod(self.shape))), self.tol if tol is None else tol
        matvec = self.matvec_single if tol >= SINGLE_PRECISION_TOL else self.matvec
        x, _ = pcg(matvec, flat, divide_by(self.p), tol=tol, max_iter=CG_MAX_ITER)
        return x.reshape(rows.shape)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}  # a lock does not pickle (dask workers)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def probe_solves(self, probes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Rademacher probes ``z`` (int8) and ``(H⁻¹ − P⁻¹) z`` (float32), solved once per system and reused.

        They do not depend on where the variance is asked for, so the mean correction, every predict
        call and every chunk of one share them (and so share one Monte Carlo estimate). They are
        solved :data:`~xkron.settings.LAPLACE_PROBE_BATCH` at a time and kept compact: on 10⁶ cells
        64 probes take 320 MB, and CG's work arrays a quarter of what all 64 at once would.
        """
        with self._lock:
            if (probes, seed) not in self._probes:
                z = rademacher(np.random.default_rng(seed), (probes, *self.shape))
                p = self.p.reshape(self.shape)
                x = np.empty(z.shape, dtype=np.float32)  # solved to PROBE_TOL: float32 keeps all of it
                for start in range(0, probes, LAPLACE_PROBE_BATCH):  # CG's work arrays for a batch at a time
                    rows = z[start : start + LAPLACE_PROBE_BATCH]
                    x[start : start + LAPLACE_PROBE_BATCH] = self.solve_h(rows, tol=PROBE_TOL) - rows / p
                self._probes[probes, seed] = z.astype(np.int8), x
            return self._probes[probes, seed]

    def draw_solves(self, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Posterior draws ``H⁻¹ u``, ``u ~ N(0, H)``, and their control variates ``P⁻¹ ũ``, ``ũ ~ N(0, P)``
        (float32), in whitened coordinates, solved once per system and reused as :meth:`probe_solves`.

        From the same normals: ``u = ξ₁ + η Rᵀ W^½ ξ₂`` has covariance ``I + η² RᵀWR = H`` and
        ``ũ = ξ₁ + η √w̄ Rᵀ ξ₂`` has ``I + η² w̄ Λ = P`` (``RᵀR = Λ``, ``w̄`` the mean of ``W`` as in
        ``P``), so the two draws are close where ``W`` is close to its mean.
        """
        with self._lock:
            if (draws, seed) not in self._draws:
                rng = np.random.default_rng([seed, 1])  # independent of the probes of the same seed
                eta, p = np.sqrt(self.eta2), self.p.reshape(self.shape)
                a = np.empty((draws, *self.shape), dtype=np.float32)
                b = np.empty_like(a)
                for start in range(0, draws, LAPLACE_PROBE_BATCH):
                    n = min(LAPLACE_PROBE_BATCH, draws - start)
                    xi1, xi2 = rng.standard_normal((2, n, *self.shape))
                    u = xi1 + eta * self.whitened.root_t(np.sqrt(self.w) * xi2)
                    a[start : start + n] = self.solve_h(u, tol=PROBE_TOL)
                    b[start : start + n] = (xi1 + eta * np.sqrt(np.mean(self.w)) * self.whitened.root_t(xi2)) / p
                self._draws[draws, seed] = a, b
            return self._draws[draws, seed]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A⁻¹ b`` for grid tensors ``b`` (leading batch axes allowed; zero off the system's cells)."""
        b = np.asarray(b, dtype=float)
        single = b.shape == self.shape
        rows = b.reshape(-1, *self.shape)
        wb = self.w * rows
        inner = self.solve_h(self.whitened.root_t(wb))
        out = wb - self.eta2 * self.w * self.whitened.root(inner)
        return out[0] if single else out.reshape(b.shape)


def whitened_cross(cross: Sequence[np.ndarray], eigen: KronEigen, rcond: float = 1e-12) -> list[np.ndarray]:
    """``R*_i = K*_i Q_i Λ_i^{-1/2}`` per factor (``K*_i``: test shape + ``(n_i,)``), eigenvalues below
    ``rcond`` of the largest left out (their directions carry no prior variance)."""
    out = []
    for C, Q, lam in zip(cross, eigen.vectors, eigen.values, strict=True):
        keep = lam > rcond * max(float(np.max(lam)), 0.0)
        scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
        out.append((C @ Q) * scale)
    return out


class LaplaceVariance(NamedTuple):
    """:func:`laplace_variance`'s result: the variance, the Monte Carlo se of its estimated part, and the
    rigorous bounds it is held within."""

    variance: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray


def laplace_variance(
    system: LaplaceSystem,
    cross: Sequence[np.ndarray],
    labels: Sequence[str],
    out_order: str,
    prior: np.ndarray,
    probes: int = LAPLACE_VARIANCE_PROBES,
    seed: int = 0,
) -> LaplaceVariance:
    """``Var f*`` of the Laplace posterior at test inputs (module docstring).

    ``cross``: the unit-amplitude ``K*_i`` per factor; ``labels``/``out_order`` as for
    :func:`xkron.linalg.kronecker.kron_contract`; ``prior``: ``η² k**`` at the outputs; ``probes``:
    Rademacher probes, and as many posterior draws.
    """
    eta2 = system.eta2
    rstar = whitened_cross(cross, system.eigen)
    squared = [r * r for r in rstar]

    def contract(v):
        return kron_contract(np.asarray(v, dtype=float), rstar, labels, out_order)

    residual = np.clip(prior - eta2 * kron_contract(np.ones(system.shape), squared, labels, out_order), 0.0, None)
    known = kron_contract(1.0 / system.p.reshape(system.shape), squared, labels, out_order)  # diag R* P⁻¹ R*ᵀ
    z, x = system.probe_solves(probes, seed)
    correction, spread = _mean_and_var(contract(zi) * contract(xi) for zi, xi in zip(z, x, strict=True))
    inner, se = known + correction, np.sqrt(spread / probes)  # diag R* H⁻¹ R*ᵀ and its se
    a, b = system.draw_solves(probes, seed)
    pairs = ((contract(ai) ** 2, contract(bi) ** 2) for ai, bi in zip(a, b, strict=True))
    inner, se = _combine(inner, se, *_controlled_mean(pairs, known))
    # Rigorous bounds hold the estimate: H ⪯ I + η² w_max Λ, so the variance is at least that diagonal
    # metric's (exact), and at most the prior's.
    p_max = 1.0 + eta2 * float(np.max(system.w, initial=0.0)) * system.whitened.spectrum
    lower = residual + eta2 * kron_contract(1.0 / p_max, squared, labels, out_order)
    upper = np.maximum(prior, lower)
    return LaplaceVariance(np.clip(residual + eta2 * inner, lower, upper), eta2 * se, lower, upper)


def _mean_and_var(terms) -> tuple[np.ndarray, np.ndarray]:
    """Mean and variance (``ddof=1``) of a stream of arrays, by running sums (one array's memory)."""
    n, total, squares = 0, 0.0, 0.0
    for t in terms:
        n, total, squares = n + 1, total + t, squares + t * t
    mean = total / n
    return mean, np.clip((squares - n * mean * mean) / (n - 1), 0.0, None)


def _controlled_mean(pairs, expected_c) -> tuple[np.ndarray, np.ndarray]:
    """``E s`` per cell from a stream of ``(s, c)`` with a control variate ``c`` of known mean, and its se.

    The estimator ``mean s − β (mean c − E c)`` with the per-cell coefficient ``β = cov(s, c)/var(c)``
    (fitted on the same draws: a bias of order ``1/n``) has the se ``√((var s − β cov(s, c))/n)``.
    """
    n, sums = 0, [0.0] * 5
    for s, c in pairs:
        n += 1
        for k, term in enumerate((s, c, s * s, c * c, s * c)):
            sums[k] = sums[k] + term
    ms, mc = sums[0] / n, sums[1] / n
    vs, vc = (sums[2] - n * ms * ms) / (n - 1), (sums[3] - n * mc * mc) / (n - 1)
    cov = (sums[4] - n * ms * mc) / (n - 1)
    beta = np.where(vc > 0, cov / np.where(vc > 0, vc, 1.0), 0.0)
    return ms - beta * (mc - expected_c), np.sqrt(np.clip(vs - beta * cov, 0.0, None) / n)


def _combine(first, first_se, second, second_se):
    """Two independent unbiased estimates combined per cell with weights inverse to their variances."""
    v1, v2 = first_se**2, second_se**2
    total = v1 + v2
    weight = np.where(total > 0, v2 / np.where(total > 0, total, 1.0), 0.5)  # on the first
    return weight * first + (1 - weight) * second, np.sqrt(weight**2 * v1 + (1 - weight) ** 2 * v2)
