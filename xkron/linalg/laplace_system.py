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
  events) ``P`` is far from ``H`` and that se can reach the variance itself; the estimate is then
  held within rigorous bounds, below by the exact variance for ``H ⪯ I + η² w_max Λ`` and above by
  the prior's, and :class:`xkron.posterior.laplace.LaplacePosterior` warns.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from xkron.linalg.cg import pcg, rademacher
from xkron.linalg.kronecker import KronEigen, kron_contract
from xkron.linalg.laplace import Whitened, divide_by, newton_matrix
from xkron.settings import CG_MAX_ITER, LAPLACE_CG_TOL, LAPLACE_PROBE_BATCH, LAPLACE_VARIANCE_PROBES, PROBE_TOL

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
        self._probes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def solve_h(self, rows: np.ndarray, tol: float | None = None) -> np.ndarray:
        """``H⁻¹`` applied to each row (a tensor of the grid's shape) by PCG."""
        flat = rows.reshape(-1, int(np.prod(self.shape)))
        x, _ = pcg(self.matvec, flat, divide_by(self.p), tol=self.tol if tol is None else tol, max_iter=CG_MAX_ITER)
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
    :func:`xkron.linalg.kronecker.kron_contract`; ``prior``: ``η² k**`` at the outputs.
    """
    eta2 = system.eta2
    rstar = whitened_cross(cross, system.eigen)
    squared = [r * r for r in rstar]
    ones = np.ones(system.shape)
    residual = np.clip(prior - eta2 * kron_contract(ones, squared, labels, out_order), 0.0, None)
    p = system.p.reshape(system.shape)
    exact = eta2 * kron_contract(1.0 / p, squared, labels, out_order)
    z, x = system.probe_solves(probes, seed)
    terms = np.stack([kron_contract(zi.astype(float), rstar, labels, out_order)
                      * kron_contract(xi.astype(float), rstar, labels, out_order)
                      for zi, xi in zip(z, x, strict=True)])  # fmt: skip
    correction = eta2 * terms.mean(axis=0)
    se = eta2 * terms.std(axis=0, ddof=1) / np.sqrt(probes)
    # Rigorous bounds hold the estimate: H ⪯ I + η² w_max Λ, so the variance is at least that diagonal
    # metric's (exact), and at most the prior's.
    p_max = 1.0 + eta2 * float(np.max(system.w, initial=0.0)) * system.whitened.spectrum
    lower = residual + eta2 * kron_contract(1.0 / p_max, squared, labels, out_order)
    upper = np.maximum(prior, lower)
    return LaplaceVariance(np.clip(residual + exact + correction, lower, upper), se, lower, upper)
