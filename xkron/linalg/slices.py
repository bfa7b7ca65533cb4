"""Block-Jacobi by slices of one dim: a preconditioner for per-step gaps (clouds) on the observed cells.

When each time step has its own gaps (clouds move), no Kronecker eigenbasis fits the observed
cells. But within one step the cells are coupled through the other factors only. Keep, of
``A = η² E_oᵀ (⊗K_i) E_o + D``, the blocks of the cells that share their index along one dim
``a`` (one slice each) and drop the couplings between slices:

``M = η² E_oᵀ (diag(K_a) ⊗ K_rest) E_o + D``, each slice's block a dense matrix over its
observed cells, factored by Cholesky.

With the factor's diagonal ``k₀`` (a stationary kernel's variance), ``λ_min(K_a) I ⪯ K_a/k₀ ⪯
λ_max(K_a) I``, and a Kronecker product of positive semidefinite matrices keeps the order, so the
kernel parts satisfy ``c_min M_k ⪯ A_k ⪯ c_max M_k`` with ``c = λ(K_a)/k₀``, on any subset of cells.
With the noise added to both, the eigenvalues of ``M⁻¹ᐟ² A M⁻¹ᐟ²`` lie in ``[min(c_min, 1),
max(c_max, 1)]``: the condition number is at most :func:`slice_bound`, **whatever the gaps**.
For a factor whose lengthscale is about its spacing (monthly means a month apart, daily fields
with a two-day lengthscale) that is 10 to 50, and CG needs 15 to 30 iterations where the other
preconditioners need hundreds: it is the "block-Jacobi by time slice" candidate of issue 13.

``log|M|`` is the sum of the slices' log-determinants and ``z = L g`` (``g`` Rademacher, ``L``
each slice's Cholesky factor) has ``E[z zᵀ] = M``: everything the stochastic log-likelihood of
:class:`xkron.linalg.observed_cg.ObservedSystem` needs from a preconditioner. Cost: ``Σ s³/3``
flops to factor slices of ``s`` observed cells, ``Σ s²`` memory, ``4 Σ s²`` flops per right-hand
side and iteration: cheap for slices of a few thousand cells, too dear for large ones (an
OSTIA band month of 3,400 ocean cells: measured in ``tests/benchmarks/README.md``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.linalg

from xkron.linalg.cg import rademacher
from xkron.linalg.kronecker import outer
from xkron.linalg.spectral import spectral_rank
from xkron.settings import SLICE_COST_RATIO, SLICE_MAX_BOUND, SPECTRAL_BYTES

__all__ = ["SlicePreconditioner", "fallback_cap", "slice_axis", "slice_bound", "solve_axis"]


def slice_bound(K: np.ndarray) -> float:
    """The condition-number bound of :class:`SlicePreconditioner` along a dim with factor ``K``.

    ``max(λ_max, 1) / min(λ_min, 1)`` of ``K`` scaled to a unit diagonal (module docstring).

    Examples
    --------
    >>> slice_bound(np.eye(4))  # independent slices: M = A
    1.0
    >>> x = np.arange(12.0)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.7**2)  # lengthscale 0.7 steps
    >>> round(slice_bound(K), 2)
    5.24
    """
    d = np.sqrt(np.diag(K))
    w = np.linalg.eigvalsh(K / np.outer(d, d))
    low = min(float(w[0]), 1.0)
    return np.inf if low <= 0 else max(float(w[-1]), 1.0) / low


class SlicePreconditioner:
    """``M ≈ A``: the observed cells' covariance with the couplings between slices along ``axis`` dropped.

    Parameters
    ----------
    factors : sequence of ndarray
        The factor matrices ``K_i``.
    eta2, noise, observed
        As :class:`xkron.linalg.spectral.SpectralPreconditioner`.
    axis : int
        The dim whose slices are the blocks.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.arange(6.0)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 1.5**2)
    >>> observed = rng.random((6, 6)) > 0.4
    >>> o = observed.ravel()
    >>> A = np.kron(K, K)[o][:, o] + 0.01 * np.eye(o.sum())
    >>> M = SlicePreconditioner([K, K], 1.0, np.full(o.sum(), 0.01), observed, axis=0)
    >>> w = scipy.linalg.eigh(A, M.dense(), eigvals_only=True)  # of M⁻¹A
    >>> bool(w.max() / w.min() < M.bound)
    True
    """

    name = "slices"

    def __init__(self, factors: Sequence[np.ndarray], eta2: float, noise: np.ndarray, observed: np.ndarray, axis: int):
        self.noise = np.asarray(noise, dtype=float)
        self.axis = int(axis)
        cells = np.argwhere(observed)
        along = cells[:, axis]
        K = factors[axis]
        self.bound = slice_bound(K)
        self.groups, self.factors = [], []
        for t in np.unique(along):
            at = np.flatnonzero(along == t)
            c = cells[at]
            B = np.full((at.size, at.size), eta2 * K[t, t])
            for i, F in enumerate(factors):
                if i != axis:
                    B *= F[np.ix_(c[:, i], c[:, i])]
            B[np.diag_indices_from(B)] += self.noise[at]
            self.groups.append(at)
            self.factors.append(scipy.linalg.cholesky(B, lower=True, check_finite=False))
        self._logdet = sum(2.0 * float(np.sum(np.log(np.diag(L)))) for L in self.factors)
        # Slices along the first dim are runs of consecutive observed cells: views, not copies.
        self._spans = [slice(at[0], at[-1] + 1) if at[-1] - at[0] + 1 == at.size else at for at in self.groups]
        self._inverses = None
        if 16.0 * sum(at.size**2 for at in self.groups) <= SPECTRAL_BYTES:
            self._inverses = [_inverse_of_root(L) for L in self.factors]

    def inverse(self, r: np.ndarray) -> np.ndarray:
        """``M⁻¹ r`` for rows ``r`` over the observed cells.

        Each slice's block inverse is kept explicitly where the factors and the inverses together
        fit in :data:`~xkron.settings.SPECTRAL_BYTES` (one matrix product per slice: 2.9 times
        faster than two triangular solves for 64 rows of 534-cell slices), and applied from the
        Cholesky factor otherwise. Always in float64: ``log|M|`` is that of the float64 factors,
        and the stochastic log-determinant assumes CG ran with exactly this ``M``.
        """
        out = np.empty(r.shape)
        if self._inverses is not None:
            for at, B_inv in zip(self._spans, self._inverses, strict=True):
                out[:, at] = r[:, at] @ B_inv
            return out
        for at, L in zip(self._spans, self.factors, strict=True):
            out[:, at] = scipy.linalg.cho_solve((L, True), r[:, at].T, check_finite=False).T
        return out

    @property
    def explicit(self) -> bool:
        """Whether ``M⁻¹`` is applied from explicit block inverses (see :meth:`inverse`)."""
        return self._inverses is not None

    def logdet(self) -> float:
        """``log|M|``: the sum of the slices' log-determinants."""
        return self._logdet

    def probes(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` rows ``z = L g`` slice by slice, ``g`` Rademacher: ``E[z zᵀ] = M``."""
        z = np.empty((count, self.noise.size))
        for at, L in zip(self.groups, self.factors, strict=True):
            z[:, at] = rademacher(rng, (count, at.size)) @ L.T
        return z

    def dense(self) -> np.ndarray:
        """``M`` as a dense matrix (for tests on small grids)."""
        out = np.zeros((self.noise.size, self.noise.size))
        for at, L in zip(self.groups, self.factors, strict=True):
            out[np.ix_(at, at)] = L @ L.T
        return out

    @staticmethod
    def apply_flops(observed: np.ndarray, axis: int) -> float:
        """Flops to apply ``M⁻¹`` to one row, slices along ``axis``: ``4 Σ s²`` (the factors take ``8 Σ s²`` bytes).

        That is the cost from the factors; the explicit inverses, kept where memory allows, halve
        it, and the choice of preconditioner does not count on them.
        """
        sizes = np.count_nonzero(observed, axis=tuple(i for i in range(observed.ndim) if i != axis)).astype(float)
        return float(4.0 * np.sum(sizes**2))


def _inverse_of_root(L: np.ndarray) -> np.ndarray:
    """``(L Lᵀ)⁻¹`` from the lower Cholesky factor ``L`` (LAPACK ``potri``), both triangles filled."""
    inv, info = scipy.linalg.lapack.dpotri(L, lower=True)
    if info:
        raise np.linalg.LinAlgError(f"potri failed on a slice block (info={info})")
    return np.tril(inv) + np.tril(inv, -1).T


def slice_axis(
    factors: Sequence[np.ndarray], eigenvalues, eta2: float, floor: float, observed: np.ndarray, rows: int
) -> int | None:
    """The dim whose slices precondition CG on the observed cells, or ``None`` for the spectral preconditioner.

    Slices are taken where they are the better bet: their condition-number bound
    (:func:`slice_bound`) is below :data:`~xkron.settings.SLICE_MAX_BOUND` and the spectral preconditioner's
    (:func:`xkron.linalg.spectral.spectral_rank`), one CG iteration with them (the application
    plus the Kronecker product) costs at most :data:`~xkron.settings.SLICE_COST_RATIO` times one
    with the spectral preconditioner, and their factors fit in
    :data:`~xkron.settings.SPECTRAL_BYTES`. Among such dims, the one with the fewest modelled
    flops, ``√bound`` × (application + product), wins. ``eigenvalues``: the factors' (for the
    spectral rank); ``floor``: the least noise variance; ``rows``: right-hand sides per CG run.
    The spectral bound overstates its CG iterations where the spectrum clusters, so a slice
    preconditioner much dearer per iteration is not taken on its bound alone (on the OSTIA band, 6
    times dearer, it lost by 2×; measured in ``tests/benchmarks/README.md``). Where the spectral
    bound fails instead (gappy grids, tiny noise), :func:`fallback_cap` switches to the slices mid-run.

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> smooth = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 3.0**2)
    >>> rough = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.7**2)
    >>> clouds = np.random.default_rng(0).random((10, 10, 10)) > 0.5
    >>> factors = [rough, smooth, smooth]
    >>> values = [np.linalg.eigvalsh(K) for K in factors]
    >>> slice_axis(factors, values, 1.0, 1e-3, clouds, rows=33)  # slices along the rough dim
    0
    """
    observed = np.asarray(observed, dtype=bool)
    shape = observed.shape
    matvec = 2.0 * observed.size * sum(shape)
    lam = eta2 * outer(eigenvalues).ravel()
    n_observed = int(np.count_nonzero(observed))
    rank, bound = spectral_rank(lam, np.argsort(lam)[::-1], floor, n_observed, sum(shape), rows)
    budget = SLICE_COST_RATIO * (4.0 * n_observed * rank + matvec)
    return _cheapest_axis(factors, observed, min(bound, SLICE_MAX_BOUND), budget)


def solve_axis(factors: Sequence[np.ndarray], observed: np.ndarray) -> int | None:
    """The dim whose slices precondition solves without a log-determinant (posterior means and draws), or ``None``.

    Any dim whose :func:`slice_bound` is below :data:`~xkron.settings.SLICE_MAX_BOUND` and
    whose factors fit in :data:`~xkron.settings.SPECTRAL_BYTES`, the cheapest as in
    :func:`slice_axis`: no log-determinant is needed, so nothing is weighed against the
    spectral preconditioner. The alternatives, the full-grid inverse restricted to the observed
    cells and the Schur complement, need hundreds of iterations where slices need a few dozen
    (measured in ``tests/benchmarks/README.md``: 64 draws on the coarse field 9.0 s → 3.2 s; 8 on
    OSTIA's whole band 33 s → 12 s, forced: its factors, 1.1 GB, are just above the memory cap).

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> smooth = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 3.0**2)
    >>> rough = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.7**2)
    >>> grid = np.ones((10, 10, 10), dtype=bool)
    >>> solve_axis([rough, smooth, smooth], grid), solve_axis([smooth] * 3, grid)
    (0, None)
    """
    return _cheapest_axis(factors, np.asarray(observed, dtype=bool), SLICE_MAX_BOUND, np.inf)


def fallback_cap(factors: Sequence[np.ndarray], observed: np.ndarray, spectral_rank: int, tol: float):
    """``(axis, iterations)``: the slices to fall back on when the spectral preconditioner stalls, or ``None``.

    The spectral preconditioner is taken over slices that cost more per iteration
    (:func:`slice_axis`), on its condition-number bound. On a complete grid that bound holds; on
    the observed cells of a gappy one its eigenvectors are no longer orthogonal and it can fail by
    orders of magnitude: on OSTIA's band thinned in longitude, with clouds and a noise sd of 3% of
    the amplitude, CG ran into its 2,000-iteration cap where slices along time (bound 51) needed 79.
    The slices' bound is rigorous, so CG with them needs at most ``½ √bound ln(2/tol)`` iterations;
    ``iterations`` is that many in units of the spectral preconditioner's cheaper ones: a spectral
    run that has not converged by then is slower than the slices would have been.

    Examples
    --------
    >>> x = np.arange(10.0)
    >>> rough = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.7**2)
    >>> smooth = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 3.0**2)
    >>> clouds = np.random.default_rng(0).random((10, 10, 10)) > 0.5
    >>> axis, cap = fallback_cap([rough, smooth, smooth], clouds, spectral_rank=20, tol=1e-8)
    >>> axis, 20 < cap < 2000
    (0, True)
    """
    axis = _cheapest_axis(factors, observed, SLICE_MAX_BOUND, np.inf)
    if axis is None:
        return None
    matvec = 2.0 * observed.size * sum(observed.shape)
    n_observed = int(np.count_nonzero(observed))
    ratio = (SlicePreconditioner.apply_flops(observed, axis) + matvec) / (4.0 * n_observed * spectral_rank + matvec)
    iterations = 0.5 * np.sqrt(slice_bound(factors[axis])) * np.log(2.0 / tol)
    return axis, int(np.ceil(iterations * max(ratio, 1.0)))


def _cheapest_axis(factors, observed: np.ndarray, max_bound: float, budget: float) -> int | None:
    """The dim with the fewest ``√bound`` × (application + product) flops, within bound, budget and memory."""
    shape = observed.shape
    matvec = 2.0 * observed.size * sum(shape)
    best, best_cost = None, np.inf
    for axis, K in enumerate(factors):
        apply = SlicePreconditioner.apply_flops(observed, axis)
        if shape[axis] < 2 or apply + matvec > budget or 2.0 * apply > SPECTRAL_BYTES:
            continue
        b = slice_bound(K)
        cost = np.sqrt(b) * (apply + matvec)
        if b < max_bound and cost < best_cost:
            best, best_cost = axis, cost
    return best
