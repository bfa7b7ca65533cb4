"""Warn when a prediction lies far from the data: there a decaying kernel returns the prior.

The cross-covariance of a test input with the data is the product of its factors', so where one
factor's kernel has decayed (many lengthscales from every training input of that factor) the
posterior mean and sd are the prior's, whatever the data say. :func:`warn_if_far` measures, per
factor, the distance of every requested input to its nearest training input in lengthscale
units, and warns once per call (:class:`xkron.errors.ExtrapolationWarning`) where it exceeds
:data:`xkron.settings.EXTRAPOLATION_LENGTHSCALES`.

Which lengthscale: a factor whose kernel does not decay (``Periodic``, ``Linear``,
``Polynomial``, ``Cosine``, the sphere and label kernels, or a sum with such a part) never warns;
a product decays if one of its parts does, and a sum if all do. Each dim takes the longest
lengthscale of the decaying parts (the latest point where the data still matter); for fits with
posterior draws, the median over draws. A factor over several dims (latitude × longitude) uses
the Euclidean distance in lengthscale units to its nearest training input. Dask-backed
coordinates are not read (their factors are not checked).
"""

from __future__ import annotations

import warnings

import numpy as np

from xkron.errors import ExtrapolationWarning
from xkron.linalg.lazy import is_dask
from xkron.posterior.conditional import place_axes
from xkron.settings import EXTRAPOLATION_LENGTHSCALES
from xkron.spec.kernel_base import Product, Scaled, Sum
from xkron.spec.trend_kernels import WhiteNoise

__all__ = ["decays", "far_factors", "warn_if_far"]


def decays(kernel) -> bool:
    """Whether a kernel goes to 0 far from the data, so that a prediction there is the prior's.

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad, Matern52, Periodic
    >>> decays(Periodic() * Matern52()), decays(Periodic() + Matern52()), decays(2.0 * ExpQuad())
    (True, False, True)
    """
    if isinstance(kernel, Sum):
        return all(decays(part) for part in kernel.parts)
    if isinstance(kernel, Product):
        return any(decays(part) for part in kernel.parts)
    if isinstance(kernel, Scaled):
        return decays(kernel.kernel)
    return isinstance(kernel, WhiteNoise) or kernel.decaying  # white noise: no covariance between inputs


def _lengthscales(fit, factor) -> np.ndarray | None:
    """Per dim, the longest fitted lengthscale of the factor's decaying parts (``None``: none, or no decay)."""
    if not decays(factor.kernel):
        return None
    names = factor.param_names()
    longest = None
    for leaf, binding in factor.kernel.leaves():
        if not leaf.decaying or "ls" not in leaf.per_dim or binding.get("ls") not in names:
            continue
        ls = np.array([float(np.median(fit.params[name].values)) for name in names[binding["ls"]]])
        longest = ls if longest is None else np.maximum(longest, ls)
    return longest


def _nearest(train: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Distance of each of ``values`` to the nearest of the sorted 1-D ``train``."""
    if len(train) == 1:
        return np.abs(values - train[0])
    right = np.clip(np.searchsorted(train, values), 1, len(train) - 1)
    return np.minimum(np.abs(values - train[right - 1]), np.abs(values - train[right]))


def _worst(factor, ls, numeric, dim_labels) -> float:
    """The largest distance, in lengthscales, of the factor's requested inputs to its nearest training input."""
    labels = "".join(dict.fromkeys("".join(dim_labels[d] for d in factor.dims)))
    values = [np.asarray(numeric[d], dtype=float) for d in factor.dims]
    if factor.subset is None:  # a full grid: the nearest training input is the nearest value along each dim
        with np.errstate(over="ignore"):  # inputs at 1e300 are infinitely far: inf lengthscales
            squares = [
                place_axes((_nearest(np.unique(c), v) / ell) ** 2, dim_labels[d], labels)
                for d, c, v, ell in zip(factor.dims, factor.coords, values, ls, strict=True)
            ]
            return float(np.sqrt(np.max(sum(squares))))
    from scipy.spatial import cKDTree

    placed = np.broadcast_arrays(
        *(place_axes(v, dim_labels[d], labels) for d, v in zip(factor.dims, values, strict=True))
    )
    points = np.stack([p.ravel() for p in placed], axis=-1) / ls
    train = np.stack(factor.inputs(), axis=-1) / ls
    return float(cKDTree(train).query(points)[0].max())


def far_factors(fit, numeric, dim_labels, trained) -> list[tuple[tuple[str, ...], float]]:
    """``(dims, distance)`` of each factor with requested inputs more than
    :data:`~xkron.settings.EXTRAPOLATION_LENGTHSCALES` lengthscales from its data.

    ``numeric``: the encoded coordinates by dim, over the labels ``dim_labels`` (as in
    :func:`xkron.results.predict.predict_moments`; ``None``: a grid, one 1-D array per dim);
    ``trained``: the dims at their training coordinates.
    """
    if dim_labels is None:
        dim_labels = {dim: chr(ord("a") + i) for i, dim in enumerate(numeric)}
    far = []
    for factor in fit.spec.factors:
        if all(d in trained for d in factor.dims) or any(is_dask(numeric[d]) for d in factor.dims):
            continue
        ls = _lengthscales(fit, factor)
        if ls is None or not np.all(ls > 0):
            continue
        worst = _worst(factor, ls, numeric, dim_labels)
        if worst > EXTRAPOLATION_LENGTHSCALES:
            far.append((factor.dims, worst))
    return far


def warn_if_far(fit, numeric, dim_labels, trained, stacklevel: int = 2) -> None:
    """One :class:`~xkron.errors.ExtrapolationWarning` naming every factor found by :func:`far_factors`."""
    far = far_factors(fit, numeric, dim_labels, trained)
    if far:
        how = {d: f"up to {d:.1f}" if np.isfinite(d) else "infinitely many" for _, d in far}
        where = "; ".join(f"{', '.join(dims)}: {how[d]} lengthscales beyond the data" for dims, d in far)
        warnings.warn(
            f"{where}; the prediction there returns to the prior mean and sd (the data matter only within about "
            f"{EXTRAPOLATION_LENGTHSCALES:g} lengthscales)",
            ExtrapolationWarning,
            stacklevel=stacklevel + 1,
        )
