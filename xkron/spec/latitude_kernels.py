"""Kernels of latitude alone on a ``(latitude, longitude)`` factor: anisotropy and a latitude-dependent amplitude.

A :class:`~xkron.spec.sphere_kernels.Spherical` kernel is isotropic and of one amplitude
everywhere. Climate fields are neither: zonally banded (they decorrelate faster north-south
than east-west) and most variable near the poles (polar amplification). Two kernels of latitude
alone, multiplied with or added to ``Spherical`` in the kernel algebra, follow that and keep the
factor positive semi-definite and continuous on the sphere (at a pole every longitude is one
point, and both depend on latitude only):

- :class:`Meridional`: a radial kernel of the north-south arc ``R |φ − φ'|`` (km), ``ls`` in km.
  ``Spherical() * Meridional()`` decorrelates faster north-south than east-west (a product of
  positive semi-definite kernels is one: the Schur product theorem).
- :class:`PolarWeight`: ``g(φ) g(φ')`` with ``g = |sin φ|^p``, a rank-1 kernel without free
  parameters. ``Spherical() + Spherical() * PolarWeight()`` is a global part plus a part whose
  variance grows poleward as ``sin^{2p} φ``, with its own weight and lengthscale (the sum gives
  it a variance weight with a default prior): variance ``η² (1 + c sin^{2p} φ)``. With
  ``hemisphere="north"`` or ``"south"`` the weight is 0 in the other hemisphere: one polar part
  per hemisphere, each with its own weight and lengthscale.

Examples
--------
>>> from xkron.spec.sphere_kernels import Spherical
>>> (Spherical() * Meridional() + Spherical() * PolarWeight()).name
'Spherical(Matern52)*Meridional(Matern52) + c*Spherical(Matern52)*PolarWeight'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernel_base import Kernel
from xkron.spec.sphere_kernels import EARTH_RADIUS_KM, _OnManifold

__all__ = ["Meridional", "PolarWeight"]

_DIMS_HINT = "latitude then longitude, in degrees: kernels={('latitude', 'longitude'): ...}"


def _latitudes(kernel: Kernel, left, right) -> tuple[np.ndarray, np.ndarray]:
    """The latitudes (degrees) of a ``(latitude, longitude)`` factor's two sets of points, checked."""
    if len(left) != 2:
        raise ValueError(f"{kernel.name} spans a (latitude, longitude) factor in degrees, got {len(left)} dim(s): "
                         f"kernels={{('latitude', 'longitude'): ...}}")  # fmt: skip
    lat = np.asarray(left[0], dtype=float), np.asarray(right[0], dtype=float)
    if np.nanmax(np.abs(np.concatenate([lat[0].ravel(), lat[1].ravel()])), initial=0.0) > 90:
        raise ValueError(f"{kernel.name}'s first dim must be latitude in degrees (within ±90): order the factor's "
                         "dims as ('latitude', 'longitude')")  # fmt: skip
    return lat


class Meridional(_OnManifold):
    """A radial kernel of the north-south distance ``R |φ − φ'|`` (km) on a ``(latitude, longitude)`` factor.

    Multiplied with :class:`~xkron.spec.sphere_kernels.Spherical` it makes the factor
    anisotropic: correlations fall faster north-south than east-west.

    Parameters
    ----------
    kernel : radial kernel, default ``Matern52()``
        Its formula (its own ``ls`` is not used: give ``ls`` here).
    ls : float, Prior or None
        Lengthscale in km along a meridian (default prior: ``LogNormal`` with 98% of its mass
        between the grid's latitude spacing and its latitude extent, in km).
    radius : float
        The sphere's radius in km (the Earth's mean radius).

    Examples
    --------
    >>> import numpy as np
    >>> k = Meridional(ls=1000.0)
    >>> row = k.matrix([np.array([10.0]), np.array([0.0])],
    ...                [np.array([10.0, 10.0, 20.0]), np.array([0.0, 150.0, 0.0])], {"ls": 1000.0})[0]
    >>> [round(float(v), 4) for v in row]  # the same latitude is 1 at any longitude
    [1.0, 1.0, 0.4616]
    """

    stationary: ClassVar[bool] = False
    n_dims: ClassVar[int] = 2
    per_dim: ClassVar[tuple[str, ...]] = ()
    shape_name: ClassVar[str] = "radius"
    dims_hint: ClassVar[str] = _DIMS_HINT
    length_units: ClassVar[str] = "km"

    def __init__(self, kernel: Kernel | None = None, ls: Any = None, radius: float = EARTH_RADIUS_KM) -> None:
        if not np.isfinite(radius) or radius <= 0:
            raise ValueError(f"Meridional's radius={radius} must be a positive number of km")
        super().__init__(kernel, ls, radius=float(radius))

    @property
    def name(self) -> str:
        return f"Meridional({self.kernel.name})"

    def evaluate(self, left, right, diffs, params, xp=np):
        lat, lat2 = _latitudes(self, left, right)
        return self._radial(self.radius * np.radians(np.abs(lat - lat2)), params, xp)

    def ls_range(self, coords) -> tuple[float, float]:
        """The default prior's 98% range of ``ls``: the latitude spacing to the latitude extent, in km."""
        lat = np.asarray(coords[0], dtype=float)
        spacing = self.radius * np.radians(np.min(np.abs(np.diff(lat))) if len(lat) > 1 else 1.0)
        extent = self.radius * np.radians(np.ptp(lat))
        return float(spacing), max(float(extent), 2 * float(spacing))


@dataclass(frozen=True, init=False)
class PolarWeight(Kernel):
    """``g(φ) g(φ')`` with ``g = |sin φ|^power`` on a ``(latitude, longitude)`` factor: a weight growing poleward.

    A rank-1 kernel without free parameters, 0 at the equator and 1 at the poles. Multiplied with
    a kernel ``k`` it gives ``g(φ) g(φ') k``, positive semi-definite (a Schur product with a
    rank-1 kernel), of variance ``g(φ)²``; in a sum, ``Spherical() + Spherical() * PolarWeight()``,
    the polar part gets a variance weight of its own (the amplitude multiplies both parts).
    With ``hemisphere="north"`` (``"south"``), ``g`` is 0 in the other hemisphere, so that
    ``Spherical() + Spherical() * PolarWeight(hemisphere="north") + Spherical() *
    PolarWeight(hemisphere="south")`` gives each polar region its own weight and lengthscale.

    Parameters
    ----------
    power : float
        The fixed exponent ``p > 0`` (2: a variance ``sin⁴ φ``, which is small below 30°).
    hemisphere : {None, "north", "south"}
        ``None``: both (``g`` symmetric about the equator); ``"north"``: ``g = sin^p φ`` for
        ``φ > 0`` and 0 elsewhere; ``"south"``: ``g = |sin φ|^p`` for ``φ < 0`` and 0 elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> lat, lon = np.array([0.0, 30.0, -90.0]), np.zeros(3)
    >>> PolarWeight(power=1).matrix([lat, lon], [lat, lon], {}).round(3).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.25, 0.5], [0.0, 0.5, 1.0]]
    >>> PolarWeight(power=1, hemisphere="north").matrix([lat, lon], [lat, lon], {}).round(3).tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.25, 0.0], [0.0, 0.0, 0.0]]
    >>> PolarWeight(hemisphere="south").name
    'PolarWeight(south)'
    """

    ls: Any = None
    power: float = 2.0
    hemisphere: str | None = None

    per_dim: ClassVar[tuple[str, ...]] = ()
    stationary: ClassVar[bool] = False
    decaying: ClassVar[bool] = False
    n_dims: ClassVar[int] = 2
    dims_hint: ClassVar[str] = _DIMS_HINT

    def __init__(self, power: float = 2.0, hemisphere: str | None = None) -> None:
        if isinstance(power, bool) or not isinstance(power, int | float | np.number) or not 0 < power < np.inf:
            raise ValueError(f"PolarWeight's power={power!r} must be a fixed number > 0, e.g. power=2")
        if hemisphere not in (None, "north", "south"):
            raise ValueError(f"PolarWeight's hemisphere={hemisphere!r} must be None (both), 'north' or 'south'")
        object.__setattr__(self, "ls", None)
        object.__setattr__(self, "power", float(power))
        object.__setattr__(self, "hemisphere", hemisphere)

    @property
    def name(self) -> str:
        return "PolarWeight" if self.hemisphere is None else f"PolarWeight({self.hemisphere})"

    def param_specs(self) -> dict[str, Any]:
        return {}

    def evaluate(self, left, right, diffs, params, xp=np):
        lat, lat2 = _latitudes(self, left, right)
        return self._weight(lat) * self._weight(lat2)

    def _weight(self, lat) -> np.ndarray:
        """``g(φ)`` at latitudes ``lat`` (degrees): ``|sin φ|^power``, 0 outside :attr:`hemisphere`."""
        lat = np.asarray(lat, dtype=float)
        g = np.abs(np.sin(np.radians(lat))) ** self.power
        if self.hemisphere is None:
            return g
        return np.where(lat > 0 if self.hemisphere == "north" else lat < 0, g, 0.0)

    def to_dict(self) -> dict[str, Any]:
        side = {} if self.hemisphere is None else {"hemisphere": self.hemisphere}
        return {"kernel": "PolarWeight", "params": {}, "power": self.power, **side}
