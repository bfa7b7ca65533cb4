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
error of ``(Σ_{j≠i} [C⁻¹]_ij² / m)^½`` for ``m`` probes; a GP's inverse covariance has heavy
off-diagonals (neighbouring cells explain each other), so affordable probe counts leave errors of
tens of percent in each ``1/h_i``, which is no leave-one-out to compare fits by.

References
----------
Rasmussen, C. E. & Williams, C. K. I. (2006). *Gaussian Processes for Machine Learning*, §5.4.2.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from xkron.linalg.kronecker import KronEigen, kron_matvec
from xkron.settings import DENSE_MAX_CELLS

__all__ = ["LooMoments", "inverse_diagonal", "kron_inverse_diagonal", "loo_moments"]


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

    Exact for the dense system; the iterative ones are refused with the alternatives (see the
    module docstring for why no stochastic estimate is offered).
    """
    if not hasattr(system, "inverse_diagonal"):
        n = int(np.count_nonzero(system.observed))
        raise ValueError(
            f"exact leave-one-out needs diag(C⁻¹) of the {n} observed cells' covariance, which the iterative "
            "solver cannot give exactly (a stochastic estimate of it is off by tens of percent per cell). Condition "
            f"with solver='dense' where the observed cells fit in memory (up to about {DENSE_MAX_CELLS:,} by "
            "default; fit.condition(...) on a window or refit a subset), or score held-out cells with "
            "xkron.cross_validate"
        )
    return system.inverse_diagonal()


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
