"""The linear system of a Gaussian marginal model on its observed cells, for a chosen solver.

:func:`make_system` is the one place that turns a :class:`~xkron.spec.solver.Solver` into a
system: :class:`~xkron.linalg.dense.DenseSystem` (exact Cholesky) or an iterative one (conjugate
gradients, stochastic log-determinants) in one of two formulations,
:class:`~xkron.linalg.iterative.IterativeSystem` (the Schur complement on the missing cells) or
:class:`~xkron.linalg.observed_cg.ObservedSystem` (CG on the observed cells), picked by
:func:`choose_formulation`. All solve ``A x = b``, evaluate the log-likelihood
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
from xkron.linalg.observed_cg import ObservedSystem
from xkron.settings import CG_PROBES, OBSERVED_PROBES, SLICE_MIN_MISSING, SLICE_MIN_MISSING_SOLVES
from xkron.spec.solver import Solver

__all__ = ["choose_formulation", "make_system"]


def choose_formulation(
    requested: str, observed: np.ndarray, slices: bool = False, min_missing: float = SLICE_MIN_MISSING
) -> str:
    """The iterative solver's formulation: ``requested``, or for ``"auto"`` the smaller system.

    The Schur complement works on the missing cells and CG on the observed ones; each
    iteration of either costs a few Kronecker products on the full grid, so the smaller set
    is the cheaper one to iterate on, and the Schur form's exact ``log|G|`` keeps its
    Monte Carlo error small when few cells are missing. But where the observed cells can be
    preconditioned by slices (``slices``: :func:`xkron.linalg.slices.slice_axis` takes them, or
    for a posterior :func:`xkron.linalg.slices.solve_axis`),
    CG on them needs a few dozen iterations whatever the clouds, and it is taken once
    ``min_missing`` of the grid is missing (:data:`~xkron.settings.SLICE_MIN_MISSING` for a
    likelihood, :data:`~xkron.settings.SLICE_MIN_MISSING_SOLVES` for a posterior): on twelve
    cloudy months of OSTIA's Pacific (49% of the cells missing) one log-likelihood and gradient
    took 4.7 s and 26 CG iterations there against 14 s and 1,754 iterations for the Schur
    complement, whose Monte Carlo error was 5 times larger. Measured on the benchmark grids in
    ``tests/benchmarks/README.md`` (``bench_missing.py``).

    Examples
    --------
    >>> [choose_formulation("auto", np.array(seen)) for seen in ([1, 1, 0], [1, 0, 0])]
    ['missing', 'observed']
    >>> choose_formulation("auto", np.array([1, 1, 0]), slices=True)  # a third missing: Schur
    'missing'
    >>> choose_formulation("auto", np.array([1, 1, 0, 0, 1]), slices=True)
    'observed'
    """
    if requested != "auto":
        return requested
    observed = np.asarray(observed, dtype=bool)
    n_observed = int(np.count_nonzero(observed))
    if slices and observed.size - n_observed >= min_missing * observed.size:
        return "observed"
    return "observed" if observed.size - n_observed > n_observed else "missing"


def make_system(
    solver: Solver,
    factors: Sequence[np.ndarray],
    eta2: float,
    noise_var,
    observed: np.ndarray,
    solves_only: bool = False,
) -> DenseSystem | IterativeSystem | ObservedSystem:
    """``A = eta2 (⊗K_i)_oo + diag(noise_var_o)`` on the ``observed`` cells, by ``solver``.

    Parameters
    ----------
    solver : Solver
        ``"dense"`` or ``"iterative"`` (with its ``tol``, ``probes``, ``seed``, ``max_iter`` and
        ``formulation``: :func:`choose_formulation`).
    factors : sequence of ndarray
        The factor matrices ``K_i``.
    eta2 : float
        The amplitude ``η²``.
    noise_var : array_like
        Noise variance per cell, broadcastable to the grid.
    observed : ndarray of bool
        The grid's observed cells.
    solves_only : bool
        For a posterior, which solves but needs no log-determinant: ``formulation="auto"`` then
        takes the observed cells wherever slices precondition their solves
        (:func:`xkron.linalg.slices.solve_axis`) and :data:`~xkron.settings.SLICE_MIN_MISSING_SOLVES`
        of the grid is missing.

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
        options = {"tol": solver.tol, "seed": solver.seed, "max_iter": solver.max_iter}
        if solver.formulation != "missing":
            # Built first: with "auto" its own choice of slices decides the formulation (no work done twice).
            cells = ObservedSystem(
                factors, eta2, noise_var, observed, probes=solver.probes or OBSERVED_PROBES, **options
            )
            axis = cells.solve_axis if solves_only else cells.slice_axis
            least = SLICE_MIN_MISSING_SOLVES if solves_only else SLICE_MIN_MISSING
            if choose_formulation(solver.formulation, observed, axis is not None, least) == "observed":
                return cells
        return IterativeSystem(factors, eta2, noise_var, observed, probes=solver.probes or CG_PROBES, **options)
    raise ValueError(f"solver={solver.name!r} builds no system on the observed cells: it needs 'dense' or 'iterative'")
