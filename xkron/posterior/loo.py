"""Exact leave-one-out moments of a Gaussian GP conditioned at one draw of its hyperparameters.

:func:`leave_one_out` reads the factorisation the conditioned posterior already holds (the
Kronecker eigenbasis of :class:`~xkron.posterior.conditional.KronPosterior`, or the system of
:class:`~xkron.posterior.observed.ObservedPosterior`: the dense Cholesky factor, or an iterative
system's grid eigenbasis, block-inverted exactly by :func:`xkron.linalg.loo.system_loo`) and
applies the closed form of :mod:`xkron.linalg.loo`: no refit, nothing factorised twice.
"""

from __future__ import annotations

import numpy as np

from xkron.linalg.loo import LooMoments, kron_inverse_diagonal, loo_moments, system_loo
from xkron.posterior.conditional import KronPosterior
from xkron.posterior.observed import ObservedPosterior
from xkron.posterior.whitened import WhitenedPosterior

__all__ = ["leave_one_out"]


def leave_one_out(posterior, y) -> LooMoments:
    """Leave-one-out predictive moments of every observed cell of ``y`` (one axis per factor).

    The predictive is that of the observation ``y_i`` (the noise of cell ``i`` included) given
    every other observed cell, at the posterior's hyperparameters.

    Parameters
    ----------
    posterior : KronPosterior, ObservedPosterior or WhitenedPosterior
        The Gaussian GP conditioned on ``y`` (:func:`xkron.results.conditioned.posterior_at`).
    y : ndarray
        The data it was conditioned on, NaN at unobserved cells.

    Examples
    --------
    >>> from xkron.spec.grid import Factor
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 3),)), Factor(("b",), ExpQuad(), (np.linspace(0, 1, 2),)))
    >>> values = {"ls_a": 0.5, "ls_b": 0.5, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> y = np.array([[0.1, 0.2], [0.3, 0.1], [0.0, -0.2]])
    >>> m = leave_one_out(KronPosterior.condition(y, f, values), y)
    >>> y_gap = y.copy(); y_gap[1, 1] = np.nan   # the same on the observed cells, by the dense system
    >>> g = leave_one_out(ObservedPosterior.condition(y_gap, f, values), y_gap)
    >>> bool(np.isnan(g.mean[1, 1])), g.mean.shape
    (True, (3, 2))
    """
    if isinstance(posterior, WhitenedPosterior):  # the whitened GP's moments, scaled back by each label's τ
        along = [-1 if k == posterior.axis else 1 for k in range(len(posterior.factors))]
        sd = posterior.sd.reshape(along)
        y = np.asarray(y, dtype=float).reshape([f.size for f in posterior.factors])
        white = leave_one_out(posterior.inner, (y - posterior.values["mean"]) / sd)
        return LooMoments(posterior.values["mean"] + sd * white.mean, sd**2 * white.var, white.log_density - np.log(sd))
    y = np.asarray(y, dtype=float)
    if isinstance(posterior, KronPosterior):
        if posterior.lazy_data is not None:
            raise NotImplementedError(
                "leave-one-out of dask-backed data would read them all: load the data first (fit.data.load()) and "
                "condition on them"
            )
        y = y.reshape(posterior.inv_diag.shape)
        h = kron_inverse_diagonal(posterior.eigen, posterior.inv_diag)
        alpha = posterior.eigen.from_eigenbasis(posterior.alpha_tilde)
        return loo_moments(y, alpha, h)
    if isinstance(posterior, ObservedPosterior) and posterior.system_noise is None:
        y = y.reshape(posterior.alpha.shape)
        if posterior.solver.name == "dense":  # α from the posterior's own Cholesky solve
            return loo_moments(y, posterior.alpha, posterior.system.inverse_diagonal())
        # The iterative solver's α is CG's, to its tol: solved again exactly, with h, from the whole grid.
        return loo_moments(y, *system_loo(posterior.system, y - posterior.values["mean"]))
    raise ValueError(
        f"exact leave-one-out applies to Gaussian marginal posteriors, not a {type(posterior).__name__}: the "
        "closed form needs the data's Gaussian covariance"
    )
