"""The linear system of a Gaussian marginal model on its observed cells, for a chosen solver.

:func:`make_system` is the one place that turns a :class:`~xkron.spec.solver.Solver` into a
system: :class:`~xkron.linalg.dense.DenseSystem` (exact Cholesky) or
:class:`~xkron.linalg.iterative.IterativeSystem` (conjugate gradients, stochastic
log-determinants). Both solve ``A x = b``, evaluate the log-likelihood
(:class:`~xkron.linalg.loglik.Loglik`) and share the Kronecker pieces of the posterior
variance. The PyMC Op (:mod:`xkron.models.ops`) and the conditioned posterior
(:mod:`xkron.posterior.observed`) both build theirs here. The Kronecker solver needs no system:
:func:`xkron.linalg.kronecker.marginal_loglik` diagonalises the whole covariance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xkron.linalg.dense import DenseSystem
from xkron.linalg.iterative import IterativeSystem
from xkron.spec.solver import Solver

__all__ = ["make_system"]


def make_system(
    solver: Solver, factors: Sequence[np.ndarray], eta2: float, noise_var, observed: np.ndarray
) -> DenseSystem | IterativeSystem:
    """``A = eta2 (⊗K_i)_oo + diag(noise_var_o)`` on the ``observed`` cells, by ``solver``.

    Parameters
    ----------
    solver : Solver
        ``"dense"`` or ``"iterative"`` (with its ``tol``, ``probes``, ``seed``, ``max_iter``).
    factors : sequence of ndarray
        The factor matrices ``K_i``.
    eta2 : float
        The amplitude ``η²``.
    noise_var : array_like
        Noise variance per cell, broadcastable to the grid.
    observed : ndarray of bool
        The grid's observed cells.

    Examples
    --------
    >>> K = np.exp(-np.subtract.outer(np.arange(3.0), np.arange(3.0)) ** 2)
    >>> observed = np.array([[True, False, True]] * 3)
    >>> type(make_system(Solver("dense"), [K, K], 1.0, 0.1, observed)).__name__
    'DenseSystem'
    """
    if solver.name == "dense":
        return DenseSystem(factors, eta2, noise_var, observed)
    if solver.name == "iterative":
        return IterativeSystem(
            factors,
            eta2,
            noise_var,
            observed,
            tol=solver.tol,
            probes=solver.probes,
            seed=solver.seed,
            max_iter=solver.max_iter,
        )
    raise ValueError(f"solver={solver.name!r} builds no system on the observed cells: it needs 'dense' or 'iterative'")
