"""Starting values of the MAP for the parts of combined kernels (:mod:`xkron.spec.kernel_base`).

A single kernel's lengthscales start from its dim's semivariogram (:mod:`xkron.spec.priors`); a
sum's parts share that variogram, so their starts come from the grid and the periodogram instead,
part by part:

- a periodic part (``Periodic``, ``Cosine``, ``Wave``) starts at the data's candidate periods
  (:func:`xkron.spec.variogram.period_candidates`); the ``j``-th ``Wave`` (a spectral mixture's
  ``j``-th component) at the ``j``-th candidate, so the components start apart;
- a decaying part multiplied by a periodic one is its envelope: it starts at
  :data:`~xkron.settings.ENVELOPE_PERIODS` of the period (within the extent), so a quasi-periodic
  part starts as a slowly changing cycle;
- the other decaying parts climb :func:`xkron.spec.variogram.start_ladder`, the ``j``-th of them
  offset by ``j`` rungs so that two equal kernels in a sum do not start equal (where the
  optimiser could never tell them apart);
- a trend's pivot, weights, offsets and white-noise sds start at their prior medians.
"""

from __future__ import annotations

import numpy as np

from xkron.settings import ENVELOPE_PERIODS, PERIODIC_LS_START
from xkron.spec.kernel_base import Product
from xkron.spec.spectral_mixture import Wave
from xkron.spec.variogram import grid_scales, period_candidates, start_ladder

__all__ = ["combined_starts", "combined_steps", "uses_parts"]

PERIODIC = ("Cosine", "Periodic", "Wave")


def uses_parts(kernel) -> bool:
    """Whether a factor's starts are found part by part here (combined kernels, and a ``Wave`` alone)."""
    return hasattr(kernel, "leaf_paths") or isinstance(kernel, Wave)


def combined_starts(factor, view, n: int) -> list[dict[str, float]]:
    """``n`` starts of one factor's kernel parameters by model variable name.

    ``view`` holds the data with the factor's dims first (``len(coords)`` axes, then one for the
    rest), missing cells at the mean; ``None`` when the factor keeps a subset (no periodogram).
    """
    names = factor.param_names()
    q = sum(leaf.name == "Wave" for leaf, _ in factor.kernel.leaves())
    periods = [_periods(view, k, c, n + q) for k, c in enumerate(factor.coords)]
    starts = [{} for _ in range(n)]
    waves = decaying = 0
    leaves = _leaf_paths(factor.kernel)
    ladders = [start_ladder(*grid_scales(c), n) for c in factor.coords]
    for _, leaf, binding in leaves:  # periods first: envelopes start from them
        if leaf.name == "Cosine":
            _set(starts, names[binding["ls"]], lambda i, k: periods[k][i % len(periods[k])])
        elif leaf.name == "Periodic":
            _set(starts, names[binding["ls"]], lambda i, k: PERIODIC_LS_START)
            _set(starts, names[binding["period"]], lambda i, k: float(np.median([p[i] for p in periods])))
        elif leaf.name == "Wave":
            _set(starts, names[binding["period"]], lambda i, k, j=waves: periods[k][(i + j) % len(periods[k])])
            waves += 1
    for path, leaf, binding in leaves:
        if not (leaf.decaying and "ls" in binding):
            continue
        partner = _periodic_partner(factor.kernel, path)
        if partner is not None:
            _set(starts, names[binding["ls"]], _envelope(factor, names, partner, starts))
        else:
            _set(starts, names[binding["ls"]], lambda i, k, j=decaying: ladders[k][(i + j) % n])
            decaying += 1
    return starts


def _envelope(factor, names, partner, starts):
    """Start of an envelope's lengthscale: :data:`ENVELOPE_PERIODS` of its partner's period, within the extent."""
    leaf, binding = partner
    key = binding["ls"] if leaf.name == "Cosine" else binding["period"]
    period_names = names[key] if isinstance(names[key], list) else [names[key]] * len(factor.dims)

    def value(i, k):
        extent = grid_scales(factor.coords[k])[1]
        return min(ENVELOPE_PERIODS * starts[i][period_names[k]], extent)

    return value


def _set(starts, names, value) -> None:
    """``starts[i][name] = value(i, k)`` for the name of each dim ``k`` (one name: a per-factor parameter)."""
    for i, start in enumerate(starts):
        for k, name in enumerate(names if isinstance(names, list) else [names]):
            start[name] = float(value(i, k))


def _leaf_paths(kernel):
    if hasattr(kernel, "leaf_paths"):
        return kernel.leaf_paths()
    return [((), kernel, {key: key for key in kernel.param_specs()})]


def _periodic_partner(kernel, path):
    """The periodic leaf multiplied with the leaf at ``path`` (its parent is a product), or ``None``."""
    if not path or not hasattr(kernel, "node"):
        return None
    parent = kernel.node(path[:-1])
    if not isinstance(parent, Product):
        return None
    for p, leaf, binding in kernel.leaf_paths():
        if p[:-1] == path[:-1] and leaf.name in PERIODIC:
            return leaf, binding
    return None


def _periods(view, k: int, coord, n: int) -> list[float]:
    if view is None:
        return [float(np.ptp(coord)) / 4 or 1.0] * n
    return period_candidates(view, k, coord, n)


def combined_steps(factor, view) -> dict[str, float]:
    """Relative optimiser steps of every period of a combined kernel (see :func:`xkron.spec.priors.period_steps`)."""
    from xkron.spec.variogram import dominant_period

    names = factor.param_names()
    extents = [grid_scales(c)[1] for c in factor.coords]
    rel = [min(1.0, dominant_period(view, k, c) / (4 * extents[k])) for k, c in enumerate(factor.coords)]
    steps: dict[str, float] = {}
    for _, leaf, binding in _leaf_paths(factor.kernel):
        if leaf.name in ("Cosine", "Wave"):
            steps.update(zip(names[binding["ls" if leaf.name == "Cosine" else "period"]], rel, strict=True))
        elif leaf.name == "Periodic":
            steps[names[binding["period"]]] = float(min(rel))
    return steps
