"""Additive parts of a combined kernel, for the posterior mean of each part (``predict(components=...)``)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernel_base import Combination, Kernel, Path, Sum

__all__ = ["Part", "additive_parts"]


class Part(Kernel):
    """One part of a combined kernel, with the whole kernel's parameter names: ``k_j`` of ``k = Σ_j k_j``.

    A factor with this kernel gives the cross-covariance of one additive part of the field with
    the whole of it, which is all the posterior mean of that part needs
    (``predict(components=...)``).
    """

    decaying: ClassVar[bool] = False

    def __init__(self, whole: Combination, path: Path) -> None:
        object.__setattr__(self, "whole", whole)
        object.__setattr__(self, "path", tuple(path))

    @property
    def per_dim(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.whole.per_dim

    @property
    def stationary(self) -> bool:  # type: ignore[override]
        return self.whole.node(self.path).stationary

    @property
    def name(self) -> str:
        return self.whole.node(self.path).name

    def param_specs(self) -> dict[str, Any]:
        return self.whole.param_specs()

    def param_label(self, key: str) -> tuple[str, str]:
        return self.whole.param_label(key)

    def evaluate(self, left, right, diffs, params, xp=np):
        return self.whole.evaluate_part(self.path, left, right, diffs, params, xp)

    def max_distance(self, params):
        return self.whole.max_distance(params)

    def __eq__(self, other) -> bool:
        return isinstance(other, Part) and (self.whole, self.path) == (other.whole, other.path)

    def __hash__(self) -> int:
        return hash(("Part", self.whole, self.path))

    def __repr__(self) -> str:
        return f"Part({self.whole!r}, {self.path})"


def additive_parts(kernel: Kernel) -> list[Part]:
    """The additive parts of a sum (each with the sum's parameter names); ``[]`` for any other kernel.

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad, Periodic
    >>> [p.name for p in additive_parts(Periodic() + ExpQuad())]
    ['Periodic', 'c*ExpQuad']
    """
    if not isinstance(kernel, Sum):
        return []
    return [Part(kernel, (i,)) for i in range(len(kernel.parts))]
