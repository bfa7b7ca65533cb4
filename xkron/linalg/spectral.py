"""A preconditioner for CG on the observed cells from the leading Kronecker modes: :class:`SpectralPreconditioner`.

On the observed cells ``o`` the covariance is ``A = η² E_oᵀ (⊗K_i) E_o + D`` (``D`` the noise
variances). Split the full-grid eigendecomposition ``⊗K_i = Q Λ Qᵀ`` into the ``r`` leading
modes (largest eigenvalue products ``λ_m``) and the rest, and keep the leading ones:

``M = D + η² V Λ_r Vᵀ``, ``V = E_oᵀ Q_r`` (the modes' values at the observed cells).

Then ``A − M = η² E_oᵀ Q_rest Λ_rest Q_restᵀ E_o`` lies between 0 and ``η² λ_{r+1} I`` (the rows
of an orthogonal matrix have norm at most 1), and ``M ⪰ D ⪰ d₀ I``, so the eigenvalues of
``M⁻¹ᐟ² A M⁻¹ᐟ²`` lie in ``[1, 1 + η² λ_{r+1} / d₀]``: keeping every mode above ``c·d₀/η²``
bounds the condition number by ``1 + c``, whatever the pattern of the gaps. ``M`` is inverted
by the Woodbury identity with one ``r × r`` Cholesky factor of ``C = Λ_r⁻¹/η² + Vᵀ D⁻¹ V``, and
``log|M| = log|D| + log|Λ_r| + log η²ʳ + log|C|`` (the matrix determinant lemma): CG, the
stochastic log-determinant and the trace estimates of :class:`xkron.linalg.observed_cg.ObservedSystem`
all run on the well-conditioned ``M⁻¹ᐟ² A M⁻¹ᐟ²``.

This is the deflation/Nyström family of preconditioners (Frangella, Tropp & Udell 2023,
*Randomized Nyström preconditioning*), with the exact eigenvectors of the complete grid in
place of a random sketch. Cost: ``n_o r`` memory and ``n_o r²`` flops to build, ``4 n_o r``
flops per application; :data:`~xkron.settings.SPECTRAL_MAX_RANK` and
:data:`~xkron.settings.SPECTRAL_BYTES` cap ``r`` (the bound then becomes
``1 + η² λ_{r+1} / d₀``, reported as :attr:`SpectralPreconditioner.bound`).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from xkron.linalg.cg import rademacher
from xkron.linalg.kronecker import KronEigen, outer
from xkron.settings import SPECTRAL_BYTES, SPECTRAL_CUTOFF, SPECTRAL_MAX_RANK

__all__ = ["SpectralPreconditioner", "cheapest_rank", "spectral_rank"]


def cheapest_rank(ratios: np.ndarray, n_observed: int, n_grid: int, sum_sizes: int, rows: int) -> int:
    """The rank ``r`` that minimises the modelled flops of building ``M`` and running CG with it.

    ``ratios`` are ``η² λ_m / d₀`` in decreasing order (at least the candidates, plus one). The
    model: the build costs ``n_o r²``; CG needs about ``0.35 √κ · ln(2/tol)`` iterations with
    ``κ = 1 + ratio_{r+1}`` (the textbook rate, a factor 2 below the worst case as measured
    here); each iteration costs, per right-hand side, one Kronecker product (``2 N Σ n_i``) and
    one application of ``M⁻¹`` (``4 n_o r``). ``tol`` is taken as 1e-6: the choice is not
    sensitive to it.

    Examples
    --------
    >>> ratios = 1e4 * 0.5 ** np.arange(40.0)  # a fast-decaying spectrum: a few modes pay off
    >>> 0 < cheapest_rank(ratios, 5000, 20000, 100, 9) < 39
    True
    """
    ratios = np.asarray(ratios, dtype=float)
    r = np.arange(ratios.size)
    kappa = 1.0 + ratios
    iterations = 0.35 * np.sqrt(kappa) * np.log(2e6)
    cost = n_observed * r.astype(float) ** 2 + iterations * rows * (2.0 * n_grid * sum_sizes + 4.0 * n_observed * r)
    return int(np.argmin(cost))


def spectral_rank(
    lam,
    order,
    floor: float,
    n_observed: int,
    sum_sizes: int,
    rows: int,
    cutoff=SPECTRAL_CUTOFF,
    max_rank=SPECTRAL_MAX_RANK,
):
    """``(rank, bound)`` of :class:`SpectralPreconditioner` for the modes ``lam`` (``η² λ_m``, ``order``: decreasing).

    At most ``max_rank``, a quarter of the observed cells and :data:`~xkron.settings.SPECTRAL_BYTES`;
    below these caps the cheapest rank (:func:`cheapest_rank`) among the modes above ``cutoff · floor``.
    Needs no build, so a caller can weigh this preconditioner against another one first.
    """
    max_rank = min(max_rank, SPECTRAL_BYTES // (16 * n_observed), n_observed // 4)
    rank = min(int(np.count_nonzero(lam > cutoff * floor)), max_rank)
    rank = cheapest_rank(lam[order[: rank + 1]] / floor, n_observed, lam.size, sum_sizes, rows)
    rest = order[rank:]
    return rank, 1.0 + (float(lam[rest[0]]) / floor if rest.size else 0.0)


class SpectralPreconditioner:
    """``M = D + η² V Λ_r Vᵀ ≈ A`` on the observed cells (module docstring).

    Parameters
    ----------
    eigen : KronEigen
        The factors' eigendecompositions.
    eta2 : float
        ``η²``.
    noise : ndarray
        Noise variance at each observed cell (row-major order), all positive.
    observed : ndarray of bool
        The grid's observed cells.
    cutoff : float
        Keep the modes with ``η² λ_m > cutoff · min(noise)`` (condition number at most ``1 + cutoff``).
    max_rank : int
        Most modes kept; also at most :data:`~xkron.settings.SPECTRAL_BYTES` for the two
        ``n_o × r`` matrices, and at most a quarter of the observed cells. Below these caps the
        rank is the cheapest one for ``rows`` right-hand sides solved together (:func:`cheapest_rank`).
    rows : int
        Right-hand sides per CG run (the data and the probes).

    Examples
    --------
    >>> x = np.arange(8.0)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 2.0**2)
    >>> observed = np.random.default_rng(0).random((8, 8)) > 0.6
    >>> o = observed.ravel()
    >>> A = np.kron(K, K)[o][:, o] + 0.01 * np.eye(o.sum())
    >>> M = SpectralPreconditioner(KronEigen.from_factors([K, K]), 1.0, np.full(o.sum(), 0.01), observed)
    >>> L = np.linalg.cholesky(M.dense())
    >>> w = np.linalg.eigvalsh(np.linalg.solve(L, np.linalg.solve(L, A).T))  # of L⁻¹ A L⁻ᵀ
    >>> bool(w.min() > 1 - 1e-9 and w.max() < M.bound + 1e-9)
    True
    """

    def __init__(
        self,
        eigen: KronEigen,
        eta2: float,
        noise: np.ndarray,
        observed: np.ndarray,
        cutoff: float = SPECTRAL_CUTOFF,
        max_rank: int = SPECTRAL_MAX_RANK,
        rows: int = 1,
    ):
        self.noise = np.asarray(noise, dtype=float)
        lam = eta2 * outer(eigen.values).ravel()
        order = np.argsort(lam)[::-1]
        floor, n_observed = float(self.noise.min()), self.noise.size
        self.rank, self.bound = spectral_rank(lam, order, floor, n_observed, sum(eigen.shape), rows, cutoff, max_rank)
        keep = order[: self.rank]
        cells = np.unravel_index(np.flatnonzero(observed), observed.shape)
        modes = np.unravel_index(keep, observed.shape)
        V = np.ones((self.noise.size, self.rank))
        for Q, at, mode in zip(eigen.vectors, cells, modes, strict=True):
            V *= Q[np.ix_(at, mode)]
        self.V = V
        self.scale = np.sqrt(lam[keep])  # η λ_m^{1/2}
        W = V * (self.scale / np.sqrt(self.noise)[:, None])  # D^{-1/2} V η Λ^{1/2}
        core = W.T @ W
        core[np.diag_indices_from(core)] += 1.0  # I + η²Λ^{1/2} Vᵀ D⁻¹ V Λ^{1/2} = L Lᵀ
        L = scipy.linalg.cholesky(core, lower=True, check_finite=False)
        # Woodbury: M⁻¹ = D⁻¹ − U Uᵀ with U = D^{-1/2} W L⁻ᵀ, one n_o × r matrix applied twice.
        self.U = scipy.linalg.solve_triangular(L, W.T, lower=True, check_finite=False).T / np.sqrt(self.noise)[:, None]
        self._logdet = float(np.sum(np.log(self.noise))) + 2.0 * float(np.sum(np.log(np.diag(L))))

    name = "spectral"

    def inverse(self, r: np.ndarray) -> np.ndarray:
        """``M⁻¹ r`` for rows ``r`` over the observed cells (Woodbury).

        Always in float64, also for the probes' float32 solves: the two terms nearly cancel on
        smooth rows, and in float32 that moved a small fit's optimum by 5%.
        """
        return r / self.noise - (r @ self.U) @ self.U.T

    def logdet(self) -> float:
        """``log|M|``."""
        return self._logdet

    def probes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` rows ``z = D^{1/2} g₁ + η V Λ_r^{1/2} g₂`` with Rademacher ``g``: ``E[z zᵀ] = M``.

        ``M^{-1/2} z`` then has identity covariance, as a probe of the preconditioned operator
        needs (``[D^{1/2}, η V Λ^{1/2}]`` is a square root of ``M`` with extra columns).
        """
        g1, g2 = rademacher(rng, (count, self.noise.size)), rademacher(rng, (count, self.rank))
        return g1 * np.sqrt(self.noise) + (g2 * self.scale) @ self.V.T

    def dense(self) -> np.ndarray:
        """``M`` as a dense matrix (for tests on small grids)."""
        return np.diag(self.noise) + (self.V * self.scale**2) @ self.V.T
