"""Exact leave-one-out predictive moments of a Gaussian model at fixed hyperparameters.

With ``C`` the covariance of the observed cells (signal plus noise), ``α = C⁻¹(y − μ)`` and
``h = diag(C⁻¹)``, the predictive distribution of cell ``i`` given every other observed cell is
Gaussian with (Rasmussen & Williams 2006, eq. 5.12)

- mean ``μ_{−i} = y_i − α_i / h_i``,
- variance ``σ²_{−i} = 1 / h_i``,
- log density ``log p(y_i | y_{−i}) = −½ log 2π + ½ log h_i − ½ α_i² / h_i``,

so no refit is needed, only ``h``. On a complete grid with one noise variance the Kronecker
eigenbasis gives it exactly in ``O(N Σ n_i)`` (:func:`kron_inverse_diagonal`). On the observed
cells of a gappy grid, or with per-cell noise, the dense system's Cholesky factor does
(:meth:`xkron.linalg.dense.DenseSystem.inverse_diagonal`, exact, up to
:data:`xkron.settings.DENSE_MAX_CELLS` observed cells by default). Above it, the iterative
systems' fits with one noise variance for every cell get ``h`` and ``α`` exactly from the
whole grid (:func:`schur_loo`): ``A = η² ⊗K_i + σ² I`` has an exact inverse in the eigenbasis,
``C = A_oo``, and the block inverse
``C⁻¹ = (A⁻¹)_oo − (A⁻¹)_om S⁻¹ (A⁻¹)_mo`` with ``S = (A⁻¹)_mm`` needs one Cholesky factor of
the missing cells' ``m × m`` matrix and ``2m`` Kronecker products (:func:`schur_estimate`).
Per-cell noise above the dense limit is refused: ``A``'s inverse is then no longer exact in the
eigenbasis, and a stochastic diagonal estimate ``Σ_k z_k ∘ C⁻¹z_k / Σ_k z_k ∘ z_k`` has a per-cell
error of ``(Σ_{j≠i} [C⁻¹]_ij² / p)^½`` for ``p`` probes; a GP's inverse covariance has heavy
off-diagonals (neighbouring cells explain each other), so affordable probe counts leave errors of
tens of percent in each ``1/h_i``, which is no leave-one-out to compare fits by.

References
----------
Rasmussen, C. E. & Williams, C. K. I. (2006). *Gaussian Processes for Machine Learning*, §5.4.2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg

from xkron.linalg.cost import Estimate, check
from xkron.linalg.kronecker import KronEigen, kron_matvec
from xkron.settings import BLOCK_BYTES, DENSE_MAX_CELLS, FLOP_RATE, LOO_MAX_SECONDS

__all__ = [
    "LooMoments",
    "check_schur_cost",
    "inverse_diagonal",
    "kron_inverse_diagonal",
    "loo_moments",
    "schur_estimate",
    "schur_loo",
    "system_loo",
]


class LooMoments(NamedTuple):
    """Leave-one-out predictive mean, variance and log density per cell (NaN at unobserved cells)."""

    mean: np.ndarray
    var: np.ndarray
    log_density: np.ndarray


def kron_inverse_diagonal(eigen: KronEigen, inv_diag) -> np.ndarray:
    """``diag((η² ⊗K_i + σ² I)⁻¹)`` on the grid, exactly, from the factors' eigenbasis.

    With ``⊗K_i = Q Λ Qᵀ`` (``Q = ⊗Q_i``) and ``W = 1 / (η² Λ + σ²)`` (``inv_diag``, a tensor
    over the grid), ``diag(Q diag(W) Qᵀ)_j = Σ_k Q_jk² W_k``, i.e.
    ``(Q_1∘Q_1 ⊗ ... ⊗ Q_D∘Q_D) vec(W)``: ``D`` mode products, ``O(N Σ n_i)``, no ``N × N`` matrix.

    Examples
    --------
    >>> import numpy as np
    >>> x1, x2 = np.linspace(0, 1, 4), np.linspace(0, 2, 3)
    >>> K1 = np.exp(-0.5 * np.subtract.outer(x1, x1) ** 2 / 0.3**2)
    >>> K2 = np.exp(-np.abs(np.subtract.outer(x2, x2)))
    >>> eigen = KronEigen.from_factors([K1, K2])
    >>> W = 1.0 / (1.5 * np.multiply.outer(*eigen.values) + 0.1)
    >>> h = kron_inverse_diagonal(eigen, W)
    >>> bool(np.allclose(h.ravel(), np.diag(np.linalg.inv(1.5 * np.kron(K1, K2) + 0.1 * np.eye(12)))))
    True
    """
    return kron_matvec(np.asarray(inv_diag, dtype=float), [Q * Q for Q in eigen.vectors])


def inverse_diagonal(system) -> np.ndarray:
    """``diag(A⁻¹)`` of a system on the observed cells (:func:`xkron.linalg.systems.make_system`), NaN elsewhere.

    Exact: the dense system's Cholesky factor, or for the iterative ones (one noise variance for
    every cell) the block inverse of the whole grid (:func:`schur_loo`); per-cell noise there is
    refused (see the module docstring for why no stochastic estimate is offered).
    """
    if hasattr(system, "inverse_diagonal"):
        return system.inverse_diagonal()
    return system_loo(system, np.zeros(system.shape))[1]


def system_loo(system, resid) -> tuple[np.ndarray, np.ndarray]:
    """``α = A⁻¹ resid`` and ``h = diag(A⁻¹)`` of a system from :func:`xkron.linalg.systems.make_system`.

    Both exact: by the dense system's Cholesky factor, or for the iterative systems by
    :func:`schur_loo` on the whole grid (no conjugate gradients, so independent of their ``tol``),
    after :func:`check_schur_cost`. ``resid`` is over the grid, ignored at unobserved cells; ``α``
    is zero and ``h`` NaN there.
    """
    resid = np.where(system.observed, np.asarray(resid, dtype=float).reshape(system.shape), 0.0)
    if hasattr(system, "inverse_diagonal"):
        return system.solve(resid), system.inverse_diagonal()
    if not system.equal_noise:
        n = int(np.count_nonzero(system.observed))
        raise ValueError(
            f"exact leave-one-out with per-cell noise needs diag(C⁻¹) of the {n:,} observed cells' covariance, which "
            "only the dense solver gives exactly above a Kronecker eigenbasis with one noise variance (a stochastic "
            "estimate of it is off by tens of percent per cell). Condition with solver='dense' where the observed "
            f"cells fit in memory (up to about {DENSE_MAX_CELLS:,} by default; fit.condition(...) on a window or "
            "refit a subset), or score held-out cells with xkron.cross_validate"
        )
    check_schur_cost(system.shape, int(np.count_nonzero(~system.observed)))
    return schur_loo(system.eigen, 1.0 / system.f_diag, system.observed, resid)


def schur_estimate(shape, n_missing: int, draws: int = 1) -> Estimate:
    """The cost of :func:`schur_loo` on a grid of ``shape`` with ``n_missing`` missing cells, ``draws`` times.

    ``m`` missing cells of ``N`` cost ``m`` Kronecker products for ``S`` (one rotation each: the
    first is a row of the eigenvectors), ``m`` more for the correction (two rotations each), about
    ``3 m N Σ n_i`` multiply-adds, and ``⅔ m³`` for the Cholesky factor of ``S`` and its inverse,
    which take ``8 m²`` bytes. The products are counted at a quarter of
    :data:`~xkron.settings.FLOP_RATE`: over factors of tens of inputs each mode product is bound by
    the copies of its operand, not by ``gemm`` (measured: 500 of 144,000 cells missing, 15 s on two
    busy cores).

    Examples
    --------
    >>> e = schur_estimate((100, 100, 50), 2000)
    >>> round(e.seconds), f"{e.nbytes:.2g}"
    (150, '2.6e+08')
    """
    n, m = int(np.prod(shape)), int(n_missing)
    seconds = draws * (4 * 3.0 * m * n * sum(shape) + 2.0 * m**3 / 3.0) / FLOP_RATE
    nbytes = 8.0 * m * m + 3.0 * min(BLOCK_BYTES, 8.0 * n * max(m, 1)) + 48.0 * n
    each = f", at each of {draws:,} draws" if draws > 1 else ""
    return Estimate(
        "exact leave-one-out (fit.loo())",
        seconds,
        nbytes,
        [
            f"the Cholesky factor of the {m:,} missing cells' {m:,} × {m:,} block of the inverse covariance and "
            f"{2 * m:,} Kronecker products over the {n:,}-cell grid{each}"
        ],
        [
            "score held-out cells with xkron.cross_validate",
            "fit.loo() of a fit on a window with fewer missing cells (the cost grows as missing cells × grid cells)",
        ],
    )


def check_schur_cost(shape, n_missing: int, draws: int = 1) -> None:
    """Refuse :func:`schur_loo` estimated to take longer than :data:`~xkron.settings.LOO_MAX_SECONDS` or more
    memory than is available (``ValueError``, :class:`~xkron.errors.CostError`); warn where it is costly."""
    estimate = schur_estimate(shape, n_missing, draws)
    if estimate.seconds > LOO_MAX_SECONDS:
        raise ValueError(estimate.message(None).replace("is estimated to", "would", 1) + " Nothing was computed.")
    check(estimate, stacklevel=4)


def schur_loo(eigen: KronEigen, inv_diag, observed, resid) -> tuple[np.ndarray, np.ndarray]:
    """``α = C⁻¹ r`` and ``h = diag(C⁻¹)`` for ``C = A_oo``, ``A = Q diag(W) Qᵀ`` on the whole grid, exactly.

    ``A = η² ⊗K_i + σ² I`` (``Q = ⊗Q_i`` the factors' eigenvectors, ``W = 1/(η²λ + σ²)``: ``inv_diag``,
    a tensor over the grid) is inverted exactly in the eigenbasis, and ``C = A_oo``, its block on the
    ``observed`` cells ``o``, by the block inverse (Schur complement) on the missing cells ``m``:
    ``C⁻¹ = (A⁻¹)_oo − (A⁻¹)_om S⁻¹ (A⁻¹)_mo`` with ``S = (A⁻¹)_mm = L Lᵀ``. So
    ``h = diag(A⁻¹)_o − rowsumsq(A⁻¹ E_m L⁻ᵀ)_o`` and ``α = t_o − (A⁻¹ E_m S⁻¹ t_m)_o`` with
    ``t = A⁻¹ r̃`` (``r̃``: ``r`` at observed cells, zero elsewhere). ``A⁻¹ E_m L⁻ᵀ`` is applied in
    column chunks of at most :data:`~xkron.settings.BLOCK_BYTES` by mode products: no ``N × N`` or
    ``N × m`` matrix is formed; cost in :func:`schur_estimate`. Rounding loses about
    ``log10(1 + η²/σ²)`` digits to the subtraction.

    Returns ``α`` (zero at missing cells) and ``h`` (NaN there) over the grid.

    Examples
    --------
    >>> x = np.linspace(0, 1, 5)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.3**2)
    >>> eigen = KronEigen.from_factors([K, K])
    >>> W = 1.0 / (np.multiply.outer(*eigen.values) + 0.1)
    >>> observed = np.ones((5, 5), dtype=bool); observed[1:3, 2] = False
    >>> r = np.cos(np.arange(25.0)).reshape(5, 5)
    >>> alpha, h = schur_loo(eigen, W, observed, r)
    >>> o = observed.ravel()
    >>> P = np.linalg.inv((np.kron(K, K) + 0.1 * np.eye(25))[np.ix_(o, o)])
    >>> bool(np.allclose(h[observed], np.diag(P))), bool(np.allclose(alpha[observed], P @ r[observed]))
    (True, True)
    """
    observed = np.asarray(observed, dtype=bool)
    shape, W = observed.shape, np.asarray(inv_diag, dtype=float).ravel()
    vectors = eigen.vectors
    h = kron_inverse_diagonal(eigen, np.asarray(inv_diag, dtype=float).reshape(shape)).ravel()
    t = _a_inverse(np.where(observed, resid, 0.0).reshape(1, -1), vectors, W, shape)[0]
    missing = np.flatnonzero(~observed.ravel())
    if missing.size:
        chunk = max(1, BLOCK_BYTES // (8 * W.size))
        root_inv = _missing_root_inverse(vectors, W, shape, missing, chunk)
        c = root_inv.T @ (root_inv @ t[missing])
        t = t - _a_inverse(_embed(c[None], missing, W.size), vectors, W, shape)[0]
        for start in range(0, missing.size, chunk):
            rows = _a_inverse(_embed(root_inv[start : start + chunk], missing, W.size), vectors, W, shape)
            h -= np.einsum("ij,ij->j", rows, rows)
    seen = observed.ravel()
    return np.where(seen, t, 0.0).reshape(shape), np.where(seen, h, np.nan).reshape(shape)


def _a_inverse(v: np.ndarray, vectors, W: np.ndarray, shape) -> np.ndarray:
    """``A⁻¹ v = Q (W ∘ Qᵀ v)`` for rows ``v`` over the grid."""
    return _rotate(_rotate(v, [Q.T for Q in vectors], shape) * W, vectors, shape)


def _rotate(v: np.ndarray, matrices, shape) -> np.ndarray:
    """``(⊗M_i) v_p`` for rows ``v_p`` over the grid: one ``tensordot`` (a single ``gemm``) per axis."""
    return kron_matvec(v.reshape(len(v), *shape), [None, *matrices]).reshape(len(v), -1)


def _embed(rows: np.ndarray, cells: np.ndarray, size: int) -> np.ndarray:
    """Rows over ``cells`` as rows over the grid, zero elsewhere."""
    full = np.zeros((len(rows), size))
    full[:, cells] = rows
    return full


def _missing_root_inverse(vectors, W: np.ndarray, shape, missing: np.ndarray, chunk: int) -> np.ndarray:
    """``L⁻¹`` for ``S = (A⁻¹)_mm = L Lᵀ``, ``S`` built ``chunk`` columns at a time: ``Qᵀ e_j`` is row ``j``
    of ``Q``, the outer product of the factors' rows, so each column costs one rotation."""
    S = np.empty((missing.size, missing.size))
    for start in range(0, missing.size, chunk):
        index = np.unravel_index(missing[start : start + chunk], shape)
        rows = np.ones((len(index[0]), 1))
        for Q, j in zip(vectors, index, strict=True):
            rows = (rows[:, :, None] * Q[j][:, None, :]).reshape(len(rows), -1)
        S[start : start + chunk] = _rotate(rows * W, vectors, shape)[:, missing]
    L = scipy.linalg.cholesky(S, lower=True, overwrite_a=True, check_finite=False)
    root_inv, info = scipy.linalg.lapack.dtrtri(L, lower=1, overwrite_c=1)
    if info != 0:  # pragma: no cover - L has a positive diagonal
        raise np.linalg.LinAlgError(f"the missing cells' Cholesky factor is singular (LAPACK dtrtri info {info})")
    return root_inv


def loo_moments(y, alpha, h) -> LooMoments:
    """Leave-one-out moments from the data ``y``, ``α = C⁻¹(y − μ)`` and ``h = diag(C⁻¹)`` on one grid.

    Cells where ``y`` is not finite are unobserved and get NaN.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import norm
    >>> C = np.array([[1.0, 0.5, 0.2], [0.5, 1.0, 0.5], [0.2, 0.5, 1.0]])
    >>> y = np.array([0.3, -0.1, 0.8])
    >>> P = np.linalg.inv(C)
    >>> m = loo_moments(y, P @ y, np.diag(P))
    >>> rest = [1, 2]   # cell 0 given cells 1 and 2, by the conditional Gaussian
    >>> mean = C[0, rest] @ np.linalg.solve(C[np.ix_(rest, rest)], y[rest])
    >>> var = C[0, 0] - C[0, rest] @ np.linalg.solve(C[np.ix_(rest, rest)], C[rest, 0])
    >>> bool(np.allclose([m.mean[0], m.var[0], m.log_density[0]], [mean, var, norm(mean, var**0.5).logpdf(y[0])]))
    True
    """
    y, alpha, h = (np.asarray(a, dtype=float) for a in (y, alpha, h))
    seen = np.isfinite(y)
    h = np.where(seen, h, np.nan)
    resid = np.where(seen, alpha, np.nan) / h
    log_density = -0.5 * np.log(2 * np.pi) + 0.5 * np.log(h) - 0.5 * resid * resid * h
    return LooMoments(y - resid, 1.0 / h, log_density)
