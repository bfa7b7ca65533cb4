"""The GP conditioned at each posterior draw of a fit, and a fit's hyperparameters on other data.

:class:`DrawPosteriors` conditions the GP at one draw when it is asked for (a NUTS fit may have
thousands); :func:`posterior_at` picks the posterior that matches the model and its solver
(decided when the fit was prepared, in ``spec.solver``). :func:`conditioned_on` is the check and
the new spec behind :meth:`xkron.KronFit.condition`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import xarray as xr

from xkron.linalg.lazy import is_dask
from xkron.posterior.conditional import KronPosterior, LatentPosterior
from xkron.posterior.observed import ObservedPosterior
from xkron.spec.coords import CoordEncoding
from xkron.spec.modelspec import ModelSpec, coord_factors
from xkron.spec.validation import check_coords

__all__ = ["DrawPosteriors", "conditioned_on", "draw_values", "posterior_at"]


def posterior_at(spec: ModelSpec, y, draw: Mapping[str, float], v: np.ndarray | None = None):
    """The GP conditioned at one draw of the hyperparameters.

    Latent models: on the draw's whitened field ``v``. Marginal models: on the data ``y`` with
    the spec's solver, exact Kronecker (equal known noise adds to ``σ²``) or on the observed cells.
    """
    if spec.latent:
        return LatentPosterior.condition(v, spec.factors, draw)
    if spec.solver.name == "kronecker":
        sigma = np.sqrt(draw["noise"] ** 2 + spec.equal_noise_var())
        return KronPosterior.condition(y, spec.factors, {**draw, "noise": sigma})
    return ObservedPosterior.condition(y, spec.factors, draw, spec.known_noise_var(), spec.solver)


class DrawPosteriors(Sequence):
    """Conditions the GP at each draw on access (:func:`posterior_at`), so large NUTS fits need not hold them all."""

    def __init__(self, y, spec: ModelSpec, draws: Sequence[Mapping[str, float]], latent: np.ndarray | None = None):
        self._y, self._spec, self._draws, self._latent = y, spec, draws, latent

    def __len__(self) -> int:
        return len(self._draws)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        v = None if self._latent is None else self._latent[i]
        return posterior_at(self._spec, self._y, self._draws[i], v)


def draw_values(params: xr.Dataset) -> list[dict[str, float]]:
    """Hyperparameter values of every draw (one for MAP), in (chain, draw) order."""
    if "chain" not in params.dims:
        return [{k: float(v) for k, v in params.items()}]
    stacked = params.stack(sample=("chain", "draw")).transpose("sample", ...)
    n = stacked.sizes["sample"]
    columns = {k: np.broadcast_to(v.values, (n,)) for k, v in stacked.items()}
    return [{k: float(c[i]) for k, c in columns.items()} for i in range(n)]


def conditioned_on(
    spec: ModelSpec, encodings: Mapping[str, CoordEncoding], data: xr.DataArray
) -> tuple[xr.DataArray, ModelSpec]:
    """The data (NaN checked, lazily for dask) and the spec of a Gaussian marginal fit conditioned on ``data``.

    The factors take ``data``'s coordinates through the fit's encodings; the whole grid is
    complete with equal noise, so the solver is the exact Kronecker one.
    """
    dims = spec.dims
    if spec.latent or spec.likelihood.name != "gaussian":
        raise ValueError("condition() applies to Gaussian marginal fits; latent fits keep their own draws of v")
    if not isinstance(data, xr.DataArray) or set(data.dims) != set(dims):
        raise ValueError(f"data must be a DataArray on the fit's dims {dims}")
    check_coords(data, dims)
    if spec.per_cell_noise:
        raise ValueError("condition() needs equal noise; this fit has per-cell noise_sd")
    factors = coord_factors([(f.dims, f.kernel, None) for f in spec.factors], data, encodings)
    if is_dask(data.data):
        data = data.copy(data=data.data.map_blocks(_require_finite, dtype=data.dtype))
    elif not bool(np.isfinite(data.values).all()):
        raise ValueError("condition() needs a complete grid; fit the gappy field with xkron.fit instead")
    return data, replace(spec, factors=factors, solver=replace(spec.solver, name="kronecker"))


def _require_finite(block: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(block)):
        raise ValueError(
            f"{int(np.sum(~np.isfinite(block)))} NaN/inf cells in a chunk of the data given to condition(): "
            "it needs a complete grid"
        )
    return block
