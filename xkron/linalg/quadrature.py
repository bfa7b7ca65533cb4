"""Design points for integrating over a few hyperparameters: the central composite design of INLA.

Rue, Martino & Chopin (2009, Sec. 6.5) integrate the hyperparameters' posterior on a central
composite design (CCD) in standardised coordinates ``t`` (``θ = θ̂ + V Λ^{-1/2} t`` from the
Hessian at the mode): the centre, ``2d`` axial points at radius ``r = f₀√d`` and the corners of a
two-level (fractional) factorial design scaled to the same radius. :func:`ccd` returns the points
and the weights ``a_k`` of a quadrature rule for ``∫ h(t) φ(t) dt`` (``φ`` the standard normal):
one weight for the centre and one shared by the other points, chosen so that the rule integrates
1 and every ``t_i t_j`` exactly (the corners' columns are orthogonal, so the cross moments vanish;
by symmetry the odd moments do too):

    ``a_other = 1 / ((n − 1) f₀²)``,  ``a_centre = 1 − 1/f₀²``.

A posterior that is not Gaussian in ``t`` is integrated by importance weights on the same points,
``w_k ∝ a_k π(t_k) / φ(t_k)`` (:func:`xkron.inference.inla.explore`).
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import numpy as np

from xkron.settings import INLA_CCD_F0

__all__ = ["Design", "ccd"]


class Design(NamedTuple):
    """Points ``t`` (``n × d``) and quadrature weights ``a`` (``n``, summing to 1) for ``∫ h(t) φ(t) dt``."""

    points: np.ndarray
    weights: np.ndarray


def _corners(d: int) -> np.ndarray:
    """±1 corners with orthogonal columns: the full factorial up to ``d = 4``, else the half fraction
    whose last column is the product of the others (resolution ``d`` ≥ 5: main effects and two-factor
    interactions are not aliased, so every pair of columns is orthogonal)."""
    if d <= 4:
        return np.array(list(itertools.product((-1.0, 1.0), repeat=d)))
    base = np.array(list(itertools.product((-1.0, 1.0), repeat=d - 1)))
    return np.column_stack([base, np.prod(base, axis=1)])


def ccd(d: int, f0: float = INLA_CCD_F0) -> Design:
    """The central composite design in ``d`` standardised dimensions (module docstring).

    Examples
    --------
    >>> design = ccd(3)
    >>> design.points.shape, round(float(design.weights.sum()), 12)
    ((15, 3), 1.0)
    >>> second = (design.weights[:, None, None] * design.points[:, :, None] * design.points[:, None, :]).sum(0)
    >>> bool(np.allclose(second, np.eye(3)))
    True
    """
    if d < 1:
        raise ValueError(f"a design needs at least one dimension, got d={d}")
    if f0 <= 1.0:
        raise ValueError(f"f0 must exceed 1 (the centre's weight is 1 - 1/f0^2), got {f0}")
    radius = f0 * np.sqrt(d)
    axial = radius * np.vstack([np.eye(d), -np.eye(d)])
    corners = f0 * _corners(d) if d > 1 else np.empty((0, 1))
    points = np.vstack([np.zeros((1, d)), axial, corners])
    others = len(points) - 1
    weights = np.full(len(points), 1.0 / (others * f0**2))
    weights[0] = 1.0 - 1.0 / f0**2
    return Design(points, weights)
