"""The spectral mixture kernel (Wilson & Adams 2013) and its oscillating part, ``Wave``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernel_base import Kernel, Sum
from xkron.spec.kernels import ExpQuad, cosine_product, phase_limits

__all__ = ["SpectralMixture", "Wave"]


@dataclass(frozen=True)
class Wave(Kernel):
    """``∏_k cos(2π (x_k − x'_k) / period_k)``: :class:`~xkron.spec.kernels.Cosine` with its period named ``period``.

    The oscillating part of each :class:`SpectralMixture` component.
    """

    period: Any = None

    per_dim: ClassVar[tuple[str, ...]] = ("period",)
    decaying: ClassVar[bool] = False

    def param_specs(self) -> dict[str, Any]:
        return {"period": self.period}

    def correlation(self, diffs, params, xp=np):
        return cosine_product(diffs, params["period"], xp)

    def max_distance(self, params):
        return phase_limits(params["period"])


class SpectralMixture(Sum):
    """Spectral mixture of ``q`` components (Wilson & Adams 2013), the kernel of GPatt (Wilson et al. 2014).

    ``Σ_j w_j ∏_k exp(−2π² τ_k² v_jk) cos(2π τ_k μ_jk)``, written as the sum of ``q`` parts
    ``ExpQuad(ls_j) * Wave(period_j)`` with ``ℓ = 1 / (2π √v)`` and ``period = 1 / μ``; the first
    component's weight is the amplitude's, the others' are ``scale_<factor>_<j>`` relative to it.
    Any stationary covariance is a limit of such mixtures. The MAP starts its periods at the
    data's strongest periodogram peaks and each envelope at two of its periods.

    Examples
    --------
    >>> k = SpectralMixture(2)
    >>> k.name, list(k.param_specs())
    ('SpectralMixture(2)', ['ls_1', 'period_1', 'scale', 'ls_2', 'period_2'])
    """

    def __init__(self, q: int = 2, parts: Sequence[Kernel] | None = None) -> None:
        if isinstance(q, bool) or not isinstance(q, int | np.integer) or q < 1:
            raise ValueError(f"SpectralMixture needs a positive integer number of components q, got {q!r}")
        object.__setattr__(self, "q", int(q))
        if parts is None:
            parts = [ExpQuad() * Wave() for _ in range(q)]
        if q == 1:
            object.__setattr__(self, "parts", (parts[0],))
            self._build()
            return
        super().__init__(parts)

    @property
    def name(self) -> str:
        return f"SpectralMixture({self.q})"

    def __repr__(self) -> str:
        return f"SpectralMixture({self.q})"

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": "SpectralMixture", "q": self.q, "parts": [p.to_dict() for p in self.parts]}
