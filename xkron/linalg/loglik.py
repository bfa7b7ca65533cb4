"""The one result type of every Gaussian log-likelihood evaluation: :class:`Loglik`.

The exact Kronecker eigenbasis (:func:`xkron.linalg.kronecker.marginal_loglik`), the dense
Cholesky system and the iterative one (:mod:`xkron.linalg.systems`) all return it, so the PyMC
Op (:mod:`xkron.models.ops`) reads the value and the gradient the same way whatever the solver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Loglik"]


@dataclass(frozen=True)
class Loglik:
    """``log N(y_o | mean, A)`` on the observed cells ``o`` and, optionally, its gradient.

    ``A = eta2 (⊗K_i)_oo + diag(noise_var_o)``; for the Kronecker solver every cell is observed
    and ``noise_var = sigma2``. The gradient fields are ``None`` unless asked for.

    Attributes
    ----------
    logp : float
        The log-likelihood (an unbiased-in-spirit estimate for the iterative solver).
    d_factors : tuple of ndarray or None
        ``∂ logp / ∂K_i`` as full ``n_i × n_i`` matrices (every entry treated as free).
    d_eta2, d_sigma2, d_mean : float or None
        Derivatives with respect to ``eta2``, a variance ``sigma2`` added to every observed
        cell, and a constant mean (``Σ α``).
    alpha : ndarray or None
        ``A⁻¹ (y_o − mean)`` on the full grid, 0 at unobserved cells (dense and iterative
        solvers; the Kronecker solver keeps it in the eigenbasis, ``alpha_tilde``).
    d_noise : ndarray or None
        ``∂ logp / ∂noise_var`` per cell on the full grid, 0 at unobserved cells (dense solver).
    cg : xkron.linalg.cg.CGReport or None
        The conjugate-gradient report (iterative solver).
    logp_se : float
        Standard error of ``logp`` (the stochastic log-determinant's Monte Carlo error; 0 when exact).
    formulation : str
        Which system ran: ``"kronecker"``, ``"dense"``, or the iterative solver's ``"missing"``
        (Schur complement on the missing cells) or ``"observed"`` (CG on the observed cells).
    preconditioner : str
        CG on the observed cells: ``"slices"`` (:mod:`xkron.linalg.slices`) or ``"spectral"``
        (:mod:`xkron.linalg.spectral`); empty otherwise.
    eigen, alpha_tilde, inv_diag : optional
        Kronecker solver: the factors' :class:`~xkron.linalg.kronecker.KronEigen`,
        ``(K + σ²I)⁻¹ (y − mean)`` in the eigenbasis (``eigen.from_eigenbasis`` gives α), and
        ``W = 1 / (eta2 λ + sigma2)``, the eigenvalues of ``(K + σ²I)⁻¹``.
    """

    logp: float
    d_factors: tuple[np.ndarray, ...] | None = None
    d_eta2: float | None = None
    d_sigma2: float | None = None
    d_mean: float | None = None
    alpha: np.ndarray | None = None
    d_noise: np.ndarray | None = None
    cg: Any = None
    eigen: Any = None
    alpha_tilde: np.ndarray | None = None
    inv_diag: np.ndarray | None = None
    logp_se: float = 0.0
    formulation: str = ""
    preconditioner: str = ""
