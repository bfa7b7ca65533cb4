"""Kernels on the circle and the sphere, by chordal distance: longitude that wraps, lengthscales in km.

A radial kernel that is positive definite in 3-D (``ExpQuad``, the Matérns, ``RatQuad``) stays
positive definite on any subset of 3-D space, so evaluated at the *chordal* (straight-line)
distance between points of a circle or a sphere it is a valid covariance there, and it is
continuous across the date line and at the poles, where degrees treated as flat coordinates
are not (Guinness & Fuentes 2016, "Isotropic covariance functions on spheres"):

- :class:`Circular` on one dim: ``k(c / ℓ)`` with ``c = (P/π) sin(π |x − x'| / P)``, the chord of
  a circle of circumference ``P`` (360 for longitude in degrees): ``c ≈ |x − x'|`` for nearby
  points, so ``ℓ`` keeps the coordinate's units, and ``x`` and ``x + P`` are the same point.
- :class:`Spherical` on a ``(latitude, longitude)`` factor in degrees: ``k(c / ℓ)`` with
  ``c = 2R √(sin²(Δφ/2) + cos φ cos φ' sin²(Δλ/2))`` (haversine), ``R`` the Earth's radius in km,
  one isotropic lengthscale ``ℓ`` in km.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernel_base import Kernel
from xkron.spec.kernels import Matern52
from xkron.spec.prior_types import spec_to_json

__all__ = ["EARTH_RADIUS_KM", "Circular", "Spherical", "chord_circle", "chord_sphere"]

EARTH_RADIUS_KM = 6371.0088
"""Mean Earth radius (IUGG), km."""

RADIAL = ("ExpQuad", "Matern12", "Matern32", "Matern52", "RatQuad")


def chord_circle(d, period: float, xp=np):
    """Chord between points ``d`` apart on a circle of circumference ``period``: ``(P/π) sin(π |d| / P)``."""
    return (period / np.pi) * xp.abs(xp.sin(np.pi * d / period))


def chord_sphere(lat1, lon1, lat2, lon2, radius: float = EARTH_RADIUS_KM):
    """Chord between points of a sphere of ``radius`` given in degrees (haversine form, exact near 0).

    Examples
    --------
    >>> round(float(chord_sphere(0.0, 0.0, 0.0, 180.0)), 3)  # antipodes: the diameter
    12742.018
    """
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    h = np.sin((phi1 - phi2) / 2) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(np.radians(lon1 - lon2) / 2) ** 2
    return 2 * radius * np.sqrt(np.clip(h, 0.0, 1.0))


def _spread(coord: np.ndarray, n: int = 20) -> np.ndarray:
    """At most ``n`` values of a coordinate, its ends included (for the largest chord of a grid)."""
    return coord[np.unique(np.linspace(0, len(coord) - 1, min(n, len(coord))).round().astype(int))]


def _manifold_dict(kernel) -> dict[str, Any]:
    return {"kernel": type(kernel).__name__, "params": {k: spec_to_json(v) for k, v in kernel.param_specs().items()},
            "part": kernel.kernel.to_dict()}  # fmt: skip


class _OnManifold(Kernel):
    """A radial kernel evaluated at a chordal distance (the base of :class:`Circular` and :class:`Spherical`)."""

    decaying: ClassVar[bool] = False

    def __init__(self, kernel: Kernel | None = None, ls: Any = None, **extra) -> None:
        kernel = Matern52() if kernel is None else kernel
        if kernel.name not in RADIAL:
            raise TypeError(
                f"{type(self).__name__} takes a radial kernel ({', '.join(RADIAL)}), positive definite in 3-D; "
                f"got {kernel.name}"
            )
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "ls", ls)
        for key, value in extra.items():
            object.__setattr__(self, key, value)

    def param_specs(self) -> dict[str, Any]:
        return {"ls": self.ls, **{k: v for k, v in self.kernel.param_specs().items() if k != "ls"}}

    def _radial(self, chord, params, xp):
        inner = {k: v for k, v in params.items() if k != "ls"}
        ls = params["ls"][0] if isinstance(params["ls"], list | tuple) else params["ls"]
        return self.kernel.correlation([chord], {"ls": [ls], **inner}, xp=xp)

    shape_name: ClassVar[str] = ""
    """The fixed attribute that sizes the manifold (``period`` of a circle, ``radius`` of a sphere)."""

    def _key(self):
        return (self.kernel, repr(self.ls), getattr(self, self.shape_name))

    def __repr__(self) -> str:
        shape = getattr(self, self.shape_name)
        return f"{type(self).__name__}({self.kernel!r}, ls={self.ls!r}, {self.shape_name}={shape!r})"

    def to_dict(self) -> dict[str, Any]:
        return {**_manifold_dict(self), self.shape_name: getattr(self, self.shape_name)}

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self._key())))


class Circular(_OnManifold):
    """A radial kernel on a periodic coordinate (longitude): chordal distance on a circle of circumference ``period``.

    Parameters
    ----------
    kernel : radial kernel, default ``Matern52()``
        Its formula (its own ``ls`` is not used: give ``ls`` here).
    ls : float, Prior or None
        Lengthscale in the coordinate's units (degrees of longitude).
    period : float
        The circumference, fixed: 360 for longitude in degrees.

    Examples
    --------
    >>> import numpy as np
    >>> k = Circular(ls=30.0)
    >>> a, b = k.matrix([np.array([1.0])], [np.array([359.0, 3.0])], {"ls": [30.0]})[0]
    >>> bool(np.isclose(a, b))  # 1° and 359° are as close as 1° and 3°
    True
    """

    per_dim: ClassVar[tuple[str, ...]] = ("ls",)
    shape_name: ClassVar[str] = "period"

    def __init__(self, kernel: Kernel | None = None, ls: Any = None, period: float = 360.0) -> None:
        if not np.isfinite(period) or period <= 0:
            raise ValueError(f"Circular's period={period} must be a positive number (360 for longitude in degrees)")
        super().__init__(kernel, ls, period=float(period))

    @property
    def name(self) -> str:
        return f"Circular({self.kernel.name})"

    def correlation(self, diffs, params, xp=np):
        if len(diffs) != 1:
            raise ValueError("Circular spans one dim (longitude); for a (latitude, longitude) factor use Spherical")
        return self._radial(chord_circle(diffs[0], self.period, xp), params, xp)


class Spherical(_OnManifold):
    """A radial kernel on a ``(latitude, longitude)`` factor in degrees: chordal distance on the sphere, ``ls`` in km.

    Parameters
    ----------
    kernel : radial kernel, default ``Matern52()``
    ls : float, Prior or None
        One isotropic lengthscale in km (default prior: ``LogNormal`` with 98% of its mass between
        the grid's smallest spacing and its largest chord).
    radius : float
        The sphere's radius in km (the Earth's mean radius).

    Examples
    --------
    >>> import numpy as np
    >>> k = Spherical(ls=1000.0)
    >>> pole = k.matrix([np.array([90.0, 90.0]), np.array([0.0, 120.0])],
    ...                 [np.array([90.0]), np.array([0.0])], {"ls": 1000.0})[:, 0]
    >>> pole.tolist()  # every longitude at the pole is one point
    [1.0, 1.0]
    """

    stationary: ClassVar[bool] = False
    n_dims: ClassVar[int] = 2
    shape_name: ClassVar[str] = "radius"
    dims_hint: ClassVar[str] = "latitude then longitude, in degrees: kernels={('latitude', 'longitude'): ...}"

    def __init__(self, kernel: Kernel | None = None, ls: Any = None, radius: float = EARTH_RADIUS_KM) -> None:
        if not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"Spherical's radius={radius} must be a positive number of km")
        super().__init__(kernel, ls, radius=float(radius))

    per_dim: ClassVar[tuple[str, ...]] = ()

    @property
    def name(self) -> str:
        return f"Spherical({self.kernel.name})"

    def evaluate(self, left, right, diffs, params, xp=np):
        if len(left) != 2:
            raise ValueError(
                f"Spherical spans a (latitude, longitude) factor in degrees, got {len(left)} dim(s): "
                "kernels={('latitude', 'longitude'): xkron.Spherical()}"
            )
        lat = np.asarray(left[0]), np.asarray(right[0])
        if np.nanmax(np.abs(np.concatenate([lat[0].ravel(), lat[1].ravel()])), initial=0.0) > 90:
            raise ValueError("Spherical's first dim must be latitude in degrees (within ±90): order the factor's dims "
                             "as ('latitude', 'longitude')")  # fmt: skip
        chord = chord_sphere(left[0], left[1], right[0], right[1], self.radius)
        return self._radial(chord, params, xp)

    length_units: ClassVar[str] = "km"
    """Units of its lengthscale, whatever the coordinates' (degrees)."""

    def ls_range(self, coords) -> tuple[float, float]:
        """The default prior's 98% range of ``ls``: the grid's smallest spacing to its largest chord, in km."""
        lat, lon = (np.asarray(c, dtype=float) for c in coords)
        steps = [np.min(np.abs(np.diff(c))) for c in (lat, lon) if len(c) > 1]
        spacing = np.radians(min(steps) if steps else 1.0) * self.radius
        sample = [m.ravel() for m in np.meshgrid(_spread(lat), _spread(lon), indexing="ij")]
        extent = float(np.max(chord_sphere(sample[0][:, None], sample[1][:, None], sample[0], sample[1], self.radius)))
        return float(spacing), max(float(extent), 2 * float(spacing))
