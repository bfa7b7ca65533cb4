"""Prior draws on large factors from anchors, for sampling onto big new grids with exact marginals.

Matheron's rule (:mod:`xkron.posterior.fields`) needs a *prior* draw jointly over the training
and the new inputs of each factor, and takes it from a square root of ``k(U, U)`` on their union
``U``: for a ``(latitude, longitude)`` factor sampled onto a new 72 × 144 grid that is an
eigendecomposition of 10,000+ inputs (minutes, gigabytes). Here the draw is split instead
(the pathwise idea of Wilson et al. 2020, "Efficiently sampling functions from Gaussian process
posteriors", with anchors in place of random features):

- the **anchors** ``A``: every training input and a spread of the new ones (farthest-point
  sampling in lengthscale units), at most :data:`~xkron.settings.SAMPLE_EXACT_UNION` in all, get
  an exact joint draw from the root of ``k(A, A)``;
- every **new input** gets the draw's conditional mean ``k(x*, A) k(A, A)⁺ f_A`` plus its own
  independent residual, of variance ``k(x*, x*) − k(x*, A) k(A, A)⁺ k(A, x*)``.

So every prior variance, every covariance with the training inputs and every covariance among
the anchors is exact: the Matheron update, which reads only those for each new input, gives
**exact marginal posterior distributions** (mean and sd of every cell). What is approximate is
the covariance *between* two new inputs that are not anchors, which misses the product of
their residuals: at most the largest residual variance, which anchors spread at a fraction of a
lengthscale keep small. It is reported with the fields (:func:`anchored_roots`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from xkron.linalg.kronecker import symmetric_eigh
from xkron.settings import ANCHOR_RANK_CUTOFF
from xkron.spec.grid import Factor

__all__ = ["anchored_roots", "spread_points"]


def spread_points(points: np.ndarray, start: np.ndarray, n: int) -> np.ndarray:
    """Indices of ``n`` rows of ``points`` chosen farthest first from ``start`` and each other (greedy).

    Examples
    --------
    >>> spread_points(np.arange(10.0)[:, None], np.array([[0.0]]), 2).tolist()
    [9, 4]
    """
    nearest = np.full(len(points), np.inf)
    for p in start:
        nearest = np.minimum(nearest, np.sum((points - p) ** 2, axis=1))
    chosen = []
    for _ in range(min(n, len(points))):
        i = int(np.argmax(nearest))
        chosen.append(i)
        nearest = np.minimum(nearest, np.sum((points - points[i]) ** 2, axis=1))
    return np.asarray(chosen, dtype=int)


def anchored_roots(factor: Factor, params, test: Sequence[np.ndarray], max_anchors: int):
    """Rows of a prior root for the training and the new inputs, the new inputs' residual sd, and its largest share.

    Returns
    -------
    train, new : ndarray
        ``R_X`` (``n × a``) with ``R_X R_Xᵀ = k(X, X)``, and ``R_*`` (``m × a``) with
        ``R_* R_Xᵀ = k(X*, X)`` and ``R_* R_*ᵀ + diag(d²) ≈ k(X*, X*)``, exact on the diagonal.
    residual_sd : ndarray
        ``d``, the sd of each new input's independent residual (0 at anchors).
    share : float
        The largest residual variance over the new inputs' prior variances: a bound on the
        error of a covariance between two new inputs, relative to their variances.

    Examples
    --------
    >>> from xkron.spec.kernels import Matern52
    >>> f = Factor(("a", "b"), Matern52(), (np.linspace(0, 1, 5), np.linspace(0, 1, 4)))
    >>> new = [np.linspace(0, 1, 30), np.linspace(1, 0, 30)]
    >>> R, Rs, d, share = anchored_roots(f, {"ls": [0.5, 0.5]}, new, 35)
    >>> bool(np.allclose(Rs @ R.T, f.kernel_matrix({"ls": [0.5, 0.5]}, new, f.inputs())))
    True
    """
    train = [np.asarray(x, dtype=float) for x in factor.inputs()]
    test = [np.asarray(x, dtype=float).ravel() for x in test]
    ls = np.broadcast_to(np.asarray(params.get("ls", 1.0), dtype=float), (len(train),))
    scaled = np.column_stack(test) / ls
    picked = spread_points(scaled, np.column_stack(train) / ls, max(0, max_anchors - len(train[0])))
    anchors = [np.concatenate([x, t[picked]]) for x, t in zip(train, test, strict=True)]
    lam, Q, _ = symmetric_eigh(factor.kernel_matrix(params, anchors, anchors))
    lam = np.clip(lam, 0.0, None)
    keep = lam > ANCHOR_RANK_CUTOFF * float(lam.max())
    R_A = Q * np.sqrt(lam)
    weights = np.zeros_like(Q)
    weights[:, keep] = Q[:, keep] / np.sqrt(lam[keep])  # k(x*, A) Q λ^{-1/2}: the conditional mean's root
    R_new = factor.kernel_matrix(params, test, anchors) @ weights
    prior = factor.variance(params, test)
    residual = np.clip(prior - np.sum(R_new * R_new, axis=1), 0.0, None)
    share = float(np.max(residual / np.where(prior > 0, prior, 1.0), initial=0.0))
    return R_A[: len(train[0])], R_new, np.sqrt(residual), share
