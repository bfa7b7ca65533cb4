"""The posterior mean of each additive part of a factor: seasonal cycle, anomalies, trend.

A factor whose kernel is a sum, ``k = Σ_j k_j`` (``Periodic*Matern52 + ExpQuad + Linear`` on
time), splits the field into parts ``f = Σ_j f_j``, ``f_j ~ GP(0, η² k_j ⊗ (other factors))``,
independent a priori. The posterior mean of a part is linear in the data, with the part's
cross-covariance in place of the whole factor's: ``E[f_j(x*) | y] = η² (k_j(x*, X) ⊗ …) α`` for
the same ``α`` as the whole prediction, so it is exact on every solver and costs one more
mean per part. The parts' means add up to the mean of ``f`` less the constant mean.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xkron.spec.grid import Factor
from xkron.spec.kernel_parts import additive_parts

__all__ = ["component_factor", "component_labels", "component_means"]


def component_factor(factors, components) -> int:
    """Index of the factor whose additive parts ``components`` asks for (``True``: the only sum; a dim: its factor)."""
    sums = [i for i, f in enumerate(factors) if additive_parts(f.kernel)]
    if components is True:
        if len(sums) != 1:
            found = [factors[i].name for i in sums]
            raise ValueError(
                f"components=True needs exactly one factor whose kernel is a sum, found {len(sums)} ({found}); "
                "name the dim: components='time'"
            )
        return sums[0]
    for i, f in enumerate(factors):
        if components in f.dims:
            if i not in sums:
                raise ValueError(
                    f"components={components!r}: the {f.name!r} factor's kernel {f.kernel.name} is not a sum, so it "
                    "has no additive parts; give it one, e.g. Periodic(period=365.25)*Matern52() + ExpQuad()"
                )
            return i
    raise ValueError(f"components={components!r} is not a dim of the fit ({[d for f in factors for d in f.dims]})")


def component_labels(kernel) -> list[str]:
    """Readable labels of a sum's parts: their expressions, numbered where two are alike."""
    names = [p.name for p in additive_parts(kernel)]
    return [f"{n} ({j + 1})" if names.count(n) > 1 else n for j, n in enumerate(names)]


def component_means(posteriors, index: int, weights=None):
    """A function of test inputs giving every part's posterior mean, mixed over the posteriors, ``(parts, *out)``.

    ``posteriors`` are the fit's (one per draw, ``weights`` theirs or equal), ``index`` the factor
    whose kernel is the sum.
    """
    whole = posteriors[0].factors[index]
    parts = additive_parts(whole.kernel)
    swapped = [
        [replace(p, factors=_with_factor(p.factors, index, Factor(whole.dims, part, whole.coords, whole.subset)))
         for p in posteriors]
        for part in parts
    ]  # fmt: skip
    w = np.full(len(posteriors), 1.0 / len(posteriors)) if weights is None else np.asarray(weights, dtype=float)

    def evaluate(tests, out_order):
        out = []
        for group in swapped:
            means = [p.mean(tests, out_order) - p.values["mean"] for p in group]
            out.append(sum(wk * m for wk, m in zip(w, means, strict=True)))
        return np.stack(out)

    return evaluate


def _with_factor(factors, index: int, factor: Factor) -> tuple:
    return tuple(factor if i == index else f for i, f in enumerate(factors))
