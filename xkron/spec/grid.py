"""Kernel factors placed on grid dims, and their covariance matrices.

A :class:`Factor` ties a kernel to one or more grid dims and holds the numeric training
coordinates of those dims. Its inputs are the Cartesian product of the dims' coordinates in
row-major order (the first dim varies slowest), as ``pm.math.cartesian`` and
``xarray.DataArray.stack`` order them. Nothing here knows of xarray or PyMC; covariances are
built with either numpy or ``pytensor.tensor`` through the ``xp`` argument.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xkron.settings import PHASE_TOLERANCE
from xkron.spec.kernels import Kernel

__all__ = ["Factor", "cartesian", "distinct_inputs", "hull_factors", "restrict", "union_size"]


def cartesian(coords: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Row-major Cartesian product of 1-D coordinate arrays, one flat array per dim.

    Examples
    --------
    >>> [c.tolist() for c in cartesian([np.array([0, 1]), np.array([5, 6, 7])])]
    [[0, 0, 0, 1, 1, 1], [5, 6, 7, 5, 6, 7]]
    """
    mesh = np.meshgrid(*coords, indexing="ij")
    return [m.ravel() for m in mesh]


@dataclass(frozen=True)
class Factor:
    """One Kronecker factor: a kernel over ``dims`` with training coordinates ``coords``.

    Parameters
    ----------
    dims : tuple of str
        Grid dims the factor spans, in data order.
    kernel : Kernel
        The kernel's formula and hyperparameter specs.
    coords : tuple of ndarray
        Numeric training coordinates, one 1-D array per dim.
    subset : ndarray of int, optional
        Keep only these inputs (flat indices into the Cartesian product): the factor of an
        observed set that is not a full grid in its dims, such as the ocean points of a
        ``(latitude, longitude)`` factor under a static land mask.
    """

    dims: tuple[str, ...]
    kernel: Kernel
    coords: tuple[np.ndarray, ...]
    subset: np.ndarray | None = None

    @property
    def name(self) -> str:
        """Label used in parameter names: the dims joined by ``_``."""
        return "_".join(self.dims)

    @property
    def full_size(self) -> int:
        """Number of points of the full Cartesian product of the coordinates."""
        return int(np.prod([len(c) for c in self.coords]))

    @property
    def size(self) -> int:
        """Number of training inputs (the kept ones if there is a subset)."""
        return self.full_size if self.subset is None else len(self.subset)

    def param_names(self) -> dict[str, list[str] | str]:
        """Model variable names of this factor's hyperparameters, by the kernel's key.

        Per-dim parameters (``ls``) get one name per dim (``ls_<dim>``); the others one
        name per factor (``alpha_<factor>``, ``period_<factor>``). Inside a combined kernel a
        kind that occurs more than once is numbered: ``ls_<dim>_1``, ``scale_<factor>_2``
        (:mod:`xkron.spec.kernel_base`).
        """
        names: dict[str, list[str] | str] = {}
        for key in self.kernel.param_specs():
            base, suffix = self.kernel.param_label(key)
            end = f"_{suffix}" if suffix else ""
            if key in self.kernel.per_dim:
                names[key] = [f"{base}_{dim}{end}" for dim in self.dims]
            else:
                names[key] = f"{base}_{self.name}{end}"
        return names

    def inputs(self) -> list[np.ndarray]:
        """Training inputs, one flat array per dim (Cartesian product, then the subset)."""
        inputs = cartesian(self.coords)
        return inputs if self.subset is None else [x[self.subset] for x in inputs]

    def covariance(self, params: Mapping[str, Any], test: Sequence | None = None, xp=np):
        """Kernel matrix ``k(test, train)``; ``k(train, train)`` when ``test`` is None.

        ``test`` holds one array per dim, all of one shape ``s``; the result has shape
        ``s + (size,)``.
        """
        train = self.inputs()
        return self.kernel_matrix(params, train if test is None else test, train, xp=xp)

    def kernel_matrix(self, params: Mapping[str, Any], left: Sequence, right: Sequence, xp=np):
        """Kernel values ``k(left, right)`` (shape ``left shape + right shape``), one array per dim each.

        With numpy, distances that a periodic kernel cannot resolve (its phase lost to rounding,
        :meth:`xkron.spec.kernels.Kernel.max_distance`) are an error naming the dim, not noise.
        """
        if xp is np and self.kernel.max_distance(params) is not None:
            with np.errstate(over="ignore"):  # overflowing differences are inf: the kernels handle them
                diffs = [np.subtract.outer(np.asarray(a, dtype=float), b) for a, b in zip(left, right, strict=True)]
            self._check_distances(diffs, params)
        return self.kernel.matrix(left, right, params, xp=xp)

    def _check_distances(self, diffs, params) -> None:
        limits = self.kernel.max_distance(params)
        if limits is None:
            return
        for dim, d, limit in zip(self.dims, diffs, limits, strict=True):
            far = np.size(d) and np.nanmax(np.where(np.isnan(d), np.inf, np.abs(d)), initial=0.0)
            if far > limit:
                raise ValueError(
                    f"the {self.kernel.name} kernel along {dim!r} cannot compare coordinates {far:.3g} apart: its "
                    f"period is {limit * np.finfo(float).eps / PHASE_TOLERANCE:.6g}, and beyond {limit:.3g} float64 "
                    "rounding loses the phase within the period, so the correlation would be noise. Predict or "
                    "sample closer to the data (or re-centre the coordinates near the points of interest)."
                )

    def variance(self, params: Mapping[str, Any], test: Sequence) -> np.ndarray:
        """Prior variance ``k(x, x)`` at test points (one array per dim, all one shape)."""
        return self.kernel.diag(test, params)


def restrict(y: np.ndarray, factors: Sequence[Factor]) -> np.ndarray:
    """Data over the full grid (any shape of that size) as a tensor over the factors' kept inputs."""
    y = np.asarray(y).reshape([f.full_size for f in factors])
    for axis, f in enumerate(factors):
        if f.subset is not None:
            y = np.take(y, f.subset, axis=axis)
    return y


def hull_factors(observed: np.ndarray, factors: Sequence[Factor]) -> tuple[Factor, ...]:
    """Factors restricted to the inputs that are observed somewhere (the smallest grid holding every observed cell).

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("t",), ExpQuad(), (np.arange(3.0),)), Factor(("s",), ExpQuad(), (np.arange(4.0),)))
    >>> observed = np.array([[1, 0, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]], dtype=bool)
    >>> [g.size for g in hull_factors(observed, f)]
    [3, 2]
    """
    observed = np.asarray(observed, dtype=bool).reshape([f.full_size for f in factors])
    keep = [observed.any(axis=tuple(k for k in range(observed.ndim) if k != i)) for i in range(observed.ndim)]
    return tuple(
        f if k.all() else Factor(f.dims, f.kernel, f.coords, np.flatnonzero(k))
        for f, k in zip(factors, keep, strict=True)
    )


def union_size(train: Sequence[np.ndarray], test: Sequence[np.ndarray]) -> int:
    """Number of distinct inputs among the training and the test inputs of a factor (one array per dim)."""
    return len(distinct_inputs(train, test)[0])


def distinct_inputs(train, test):
    """Distinct rows of ``[train; test]`` and, for every row, the index of its distinct row."""
    rows = np.column_stack(
        [np.concatenate([np.asarray(a, float), np.asarray(b, float)]) for a, b in zip(train, test, strict=True)]
    )
    return np.unique(rows, axis=0, return_inverse=True)
