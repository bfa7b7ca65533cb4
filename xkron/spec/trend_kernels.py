"""Kernels that are not functions of distance: ``Linear`` and ``Polynomial`` trends, ``WhiteNoise``.

They follow ``pymc.gp.cov`` (same parameterisations):

============  ==============================================
Linear        ``Σ_k (x_k − c_k)(x'_k − c_k)``
Polynomial    ``(offset + Σ_k (x_k − c_k)(x'_k − c_k))^d``
WhiteNoise    ``σ_w²`` where ``x = x'``, else 0
============  ==============================================

``Linear`` and ``Polynomial`` are of low rank (1 per dim for ``Linear``): a factor of them alone
is singular, which the marginal likelihood (with its noise) and the latent model (with
:data:`~xkron.spec.modelspec.JITTER`) handle; they are meant as parts of a sum, ``Matern52() +
Linear()``, where the sum gives them a variance weight of their own (their values grow with the
coordinates, in squared coordinate units). ``WhiteNoise`` on a factor is a random effect per
coordinate value (one offset per day for a ``time`` factor, shared by every cell of that day):
it correlates equal coordinates, also between the training grid and a prediction grid, where
``pm.gp.cov.WhiteNoise`` gives 0 between distinct input sets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernels import Kernel

__all__ = ["Linear", "Polynomial", "WhiteNoise"]


def _dot(left, right, params, xp):
    """``Σ_k (x_k − c_k)(x'_k − c_k)`` from broadcasting coordinates."""
    return sum((a - c) * (b - c) for a, b, c in zip(left, right, params["c"], strict=True))


@dataclass(frozen=True)
class Linear(Kernel):
    """Linear trend, ``Σ_k (x_k − c_k)(x'_k − c_k)`` (``pm.gp.cov.Linear``).

    Parameters
    ----------
    c : float, Prior, sequence, dict or None
        The pivot, one per dim, in coordinate units (for times: days since the encoding's
        reference). Default: fixed at the middle of the coordinate; give a Prior to fit it.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1.0, 2.0])
    >>> Linear(c=1.0).matrix([x], [x], {"c": [1.0]}).tolist()
    [[1.0, 0.0, -1.0], [0.0, 0.0, 0.0], [-1.0, 0.0, 1.0]]
    """

    ls: Any = None
    c: Any = None

    per_dim: ClassVar[tuple[str, ...]] = ("c",)
    stationary: ClassVar[bool] = False
    decaying: ClassVar[bool] = False

    def param_specs(self) -> dict[str, Any]:
        return {"c": self.c}

    def evaluate(self, left, right, diffs, params, xp=np):
        return _dot(left, right, params, xp)

    def __post_init__(self) -> None:
        if self.ls is not None:
            raise TypeError("Linear has no lengthscale: its hyperparameter is the pivot c, e.g. Linear(c=2000.0)")


@dataclass(frozen=True)
class Polynomial(Kernel):
    """Polynomial kernel, ``(offset + Σ_k (x_k − c_k)(x'_k − c_k))^d`` (``pm.gp.cov.Polynomial``).

    Parameters
    ----------
    d : int
        The degree, a fixed positive integer (2: quadratic trends).
    c : see :class:`Linear`
    offset : float, Prior or None
        Added before the power, ``≥ 0`` (it keeps the kernel positive semi-definite). Default prior:
        ``LogNormal`` with 98% of its mass between 1% and 100 times the coordinate's variance.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1.0])
    >>> Polynomial(d=2).matrix([x], [x], {"c": [0.0], "offset": 1.0}).tolist()
    [[1.0, 1.0], [1.0, 4.0]]
    """

    ls: Any = None
    d: int = 2
    c: Any = None
    offset: Any = None

    per_dim: ClassVar[tuple[str, ...]] = ("c",)
    stationary: ClassVar[bool] = False
    decaying: ClassVar[bool] = False

    def __post_init__(self) -> None:
        if self.ls is not None:
            raise TypeError(
                "Polynomial has no lengthscale: give its hyperparameters d, c and offset by name, e.g. Polynomial(d=2)"
            )
        if isinstance(self.d, bool) or not isinstance(self.d, int | np.integer) or self.d < 1:
            raise ValueError(f"Polynomial's degree d={self.d!r} must be a fixed positive integer, e.g. d=2")

    def param_specs(self) -> dict[str, Any]:
        return {"c": self.c, "offset": self.offset}

    def evaluate(self, left, right, diffs, params, xp=np):
        return (params["offset"] + _dot(left, right, params, xp)) ** int(self.d)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "d": int(self.d)}


@dataclass(frozen=True)
class WhiteNoise(Kernel):
    """White noise on a factor, ``σ_w²`` for equal coordinates and 0 otherwise: a random effect per coordinate value.

    Parameters
    ----------
    sigma : float, Prior or None
        Its sd, relative to the factor's other parts (the amplitude multiplies it). Default
        prior: ``HalfNormal(sigma=1)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([0.0, 1.0])
    >>> WhiteNoise().matrix([x], [x], {"sigma": 0.5}).tolist()
    [[0.25, 0.0], [0.0, 0.25]]
    """

    ls: Any = None
    sigma: Any = None

    per_dim: ClassVar[tuple[str, ...]] = ()
    decaying: ClassVar[bool] = False
    has_variance: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.ls is not None:
            raise TypeError("WhiteNoise has no lengthscale: its hyperparameter is its sd, sigma")

    def param_specs(self) -> dict[str, Any]:
        return {"sigma": self.sigma}

    def correlation(self, diffs, params, xp=np):
        same = np.logical_and.reduce([np.asarray(d) == 0 for d in diffs])  # differences are numpy arrays
        return params["sigma"] ** 2 * same.astype(float)
