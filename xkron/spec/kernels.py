"""Stationary kernel factors, and the base class of every kernel.

The trend kernels (``Linear``, ``Polynomial``, ``WhiteNoise``) are in :mod:`xkron.spec.trend_kernels`,
the base class and sums, products and scales of kernels in :mod:`xkron.spec.kernel_base`, and the registry of names
in :mod:`xkron.spec.kernel_registry`.

A factor covers one or more dims of the grid. Its covariance is written once, as a function
of coordinate differences, against a small array namespace (``numpy`` for prediction,
``pytensor.tensor`` for the PyMC graph), so the model and the predictions evaluate the same
formula. Distances are built from exact coordinate differences, never from
``|x|² + |x'|² − 2 x·x'``, which loses digits to cancellation.

Every hyperparameter may be ``None`` (a weakly informative default prior, see
:mod:`xkron.spec.priors`), a number (fixed), or a :class:`pymc_extras.prior.Prior`. ``ls`` is one
value per dim of the factor: give one value for all dims, a sequence in dim order, or a
dict keyed by dim name.

The formulas follow ``pymc.gp.cov`` (same parameterisations), with
``r = sqrt(Σ_k ((x_k − x'_k) / ℓ_k)²)``:

============  ==============================================
ExpQuad       ``exp(−r²/2)``
Matern12      ``exp(−r)``
Matern32      ``(1 + √3 r) exp(−√3 r)``
Matern52      ``(1 + √5 r + 5r²/3) exp(−√5 r)``
RatQuad       ``(1 + r²/(2α))^(−α)``
Cosine        ``∏_k cos(2π (x_k − x'_k) / ℓ_k)`` (``ℓ`` is the period; rank ≤ 2 per dim)
Periodic      ``exp(−½ Σ_k (sin(π |x_k − x'_k| / T) / ℓ_k)²)``
============  ==============================================

Every one of them is positive semi-definite on any set of points in any number of dims: the
radial ones are valid in every dimension, and Cosine and Periodic are products of 1-D kernels.
(``cos(2π r)`` of the Euclidean distance, PyMC's multi-dim Cosine, is not: it is not used.)

Far from the data the radial kernels go to 0 (the prior), also for infinite or overflowing
distances. The periodic ones (Cosine, Periodic) never decay; their value depends on the phase
of ``x − x'`` within the period, which float64 rounding loses beyond
:func:`Kernel.max_distance` (:data:`PHASE_TOLERANCE`): :class:`xkron.spec.grid.Factor` refuses such
distances instead of returning noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xkron.settings import PHASE_TOLERANCE
from xkron.spec.kernel_base import Kernel, is_numpy

__all__ = [
    "Cosine",
    "ExpQuad",
    "Independent",
    "Kernel",
    "Matern12",
    "Matern32",
    "Matern52",
    "Periodic",
    "RatQuad",
    "cosine_product",
    "phase_limits",
]

R_MAX = 1e4
"""Scaled distances ``r`` beyond it are evaluated at ``R_MAX``: every Matérn value there is
below ``exp(−10⁴)``, exactly 0 in float64, and clipping keeps ``∞ · 0`` (NaN) out of
``poly(r) exp(−r)`` for infinite or overflowing distances."""


@dataclass(frozen=True)
class ExpQuad(Kernel):
    """Exponentiated quadratic (squared exponential) factor, ``exp(−r²/2)``.

    Examples
    --------
    >>> import numpy as np
    >>> k = ExpQuad(ls=2.0)
    >>> float(k.correlation([np.array(2.0)], {"ls": [2.0]}))
    0.6065306597126334
    """

    def _profile(self, r, r2, params, xp):
        return xp.exp(-0.5 * r2)


@dataclass(frozen=True)
class Matern12(Kernel):
    """Matérn ν=1/2 (exponential) factor, ``exp(−r)``."""

    def _profile(self, r, r2, params, xp):
        return xp.exp(-xp.minimum(r, R_MAX))


@dataclass(frozen=True)
class Matern32(Kernel):
    """Matérn ν=3/2 factor, ``(1 + √3 r) exp(−√3 r)``."""

    def _profile(self, r, r2, params, xp):
        s = np.sqrt(3.0) * xp.minimum(r, R_MAX)
        return (1.0 + s) * xp.exp(-s)


@dataclass(frozen=True)
class Matern52(Kernel):
    """Matérn ν=5/2 factor, ``(1 + √5 r + 5r²/3) exp(−√5 r)``.

    Examples
    --------
    >>> import numpy as np
    >>> k = Matern52(ls=1.0)
    >>> x = np.linspace(0, 1, 3)
    >>> K = k.correlation([np.subtract.outer(x, x)], {"ls": [1.0]})
    >>> K.shape, bool(np.allclose(np.diag(K), 1.0))
    ((3, 3), True)
    """

    def _profile(self, r, r2, params, xp):
        s = np.sqrt(5.0) * xp.minimum(r, R_MAX)
        return (1.0 + s + 5.0 / 3.0 * xp.minimum(r2, R_MAX**2)) * xp.exp(-s)


@dataclass(frozen=True)
class RatQuad(Kernel):
    """Rational quadratic factor, ``(1 + r²/(2α))^(−α)``.

    Parameters
    ----------
    ls : see :class:`Kernel`
    alpha : float, Prior or None
        Shape (scale mixture) parameter, one per factor. Default prior: ``Gamma(2, 1)``.
    """

    alpha: Any = None

    def _profile(self, r, r2, params, xp):
        alpha = params["alpha"]
        return (1.0 + 0.5 * r2 / alpha) ** (-alpha)


@dataclass(frozen=True)
class Cosine(Kernel):
    """Cosine factor, ``∏_k cos(2π (x_k − x'_k) / ℓ_k)``: ``ls`` is the period along each dim.

    On one dim this is ``cos(2π r)`` (PyMC's ``Cosine``). Over several dims it is the product
    of the per-dim cosines, a valid (positive semi-definite) covariance of rank ≤ 2 per dim;
    ``cos(2π r)`` of the Euclidean distance would not be one (its matrices have negative
    eigenvalues, and predictions from it are wrong).

    Its Kronecker factor has many zero eigenvalues; xkron's gradient stays exact there
    (it never differentiates eigenvectors).

    Examples
    --------
    >>> import numpy as np
    >>> d = [np.array(0.25), np.array(0.5)]
    >>> float(Cosine().correlation(d, {"ls": [1.0, 2.0]}))  # cos(π/2) · cos(π/2)
    3.749399456654644e-33
    """

    decaying: ClassVar[bool] = False

    def correlation(self, diffs, params, xp=np):
        return cosine_product(diffs, params["ls"], xp)

    def max_distance(self, params):
        return phase_limits(params["ls"])


def cosine_product(diffs, periods, xp=np):
    """``∏_k cos(2π d_k / period_k)``: :class:`Cosine`'s formula (and the wave of a spectral mixture's component)."""
    out = 1.0
    for d, period in zip(diffs, periods, strict=True):
        out = out * xp.cos(2.0 * np.pi * d / period)
    return out


def phase_limits(periods) -> list[float]:
    """Per dim, the largest distance at which float64 keeps the phase within ``period`` (:data:`PHASE_TOLERANCE`)."""
    return [PHASE_TOLERANCE * float(p) / np.finfo(float).eps for p in periods]


@dataclass(frozen=True)
class Periodic(Kernel):
    """Periodic factor, ``exp(−½ Σ_k (sin(π |x_k − x'_k| / T) / ℓ_k)²)`` (PyMC's scaling).

    Parameters
    ----------
    ls : see :class:`Kernel`
    period : float, Prior or None
        The period ``T``, one per factor, in coordinate units. Give it whenever it is known
        (365.25 days for a seasonal cycle); the default prior spans two grid spacings to
        the extent of the coordinate.
    """

    period: Any = None

    decaying: ClassVar[bool] = False
    relative: ClassVar[tuple[str, ...]] = ("ls",)

    def correlation(self, diffs, params, xp=np):
        period = params["period"]
        r2 = sum((xp.sin(np.pi * d / period) / ell) ** 2 for d, ell in zip(diffs, params["ls"], strict=True))
        return xp.exp(-0.5 * r2)

    def max_distance(self, params):
        return [PHASE_TOLERANCE * float(params["period"]) / np.finfo(float).eps] * len(params["ls"])


@dataclass(frozen=True)
class Independent(Kernel):
    """Independent replicates: ``1`` for the same coordinate, ``0`` otherwise; no hyperparameters.

    A factor over a batch dim (ensemble member, scenario) makes its slices independent fields
    that share every other hyperparameter: ``fit(..., batch_dims=["member"], shared=True)``.
    Its coordinates may be labels (strings); predicting at a new label gives the prior.

    Examples
    --------
    >>> import numpy as np
    >>> Independent().correlation([np.subtract.outer(np.arange(3.0), np.arange(3.0))], {}).tolist()
    [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    """

    per_dim: ClassVar[tuple[str, ...]] = ()
    decaying: ClassVar[bool] = False
    labelled: ClassVar[bool] = True

    def correlation(self, diffs, params, xp=np):
        same = 1.0
        for d in diffs:
            same = same * (xp.eq(d, 0) if not is_numpy(xp) else (np.asarray(d) == 0))
        return same * 1.0

    def param_specs(self) -> dict[str, Any]:
        return {}
