"""The GP conditioned at each posterior draw of a fit, and a fit's hyperparameters on other data.

:class:`DrawPosteriors` conditions the GP at one draw when it is asked for (a NUTS fit may have
thousands); :func:`posterior_at` picks the posterior that matches the model and its solver
(decided when the fit was prepared, in ``spec.solver``). :func:`conditioned_on` is the check and
the new spec behind :meth:`xkron.KronFit.condition`: on complete grids or on the observed cells of
gappy ones, with per-cell known noise, without computing dask-backed data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import xarray as xr

from xkron.linalg.lazy import is_dask
from xkron.linalg.threads import map_threads
from xkron.posterior.conditional import KronPosterior, LatentPosterior
from xkron.posterior.laplace import SharedWeights, laplace_mode, laplace_posterior
from xkron.posterior.observed import ObservedPosterior
from xkron.posterior.whitened import WhitenedPosterior
from xkron.settings import DENSE_MAX_CELLS
from xkron.spec.coords import CoordEncoding
from xkron.spec.grid import hull_factors
from xkron.spec.likelihoods import Likelihood
from xkron.spec.masks import masked_values
from xkron.spec.modelspec import ModelSpec, coord_factors
from xkron.spec.prior_types import is_prior
from xkron.spec.solver import choose_solver
from xkron.spec.validation import align_cell_values, cell_locator, check_coords, check_data

__all__ = ["Conditioned", "DrawPosteriors", "conditioned_on", "draw_values", "posterior_at"]


def posterior_at(
    spec: ModelSpec,
    y,
    draw: Mapping[str, float],
    v: np.ndarray | None = None,
    laplace: bool = False,
    seed: int = 0,
    points: float = 1.0,
):
    """The GP conditioned at one draw of the hyperparameters.

    Latent models: on the draw's whitened field ``v``, or (``laplace``) the Laplace approximation of
    ``f | θ, y`` (:func:`xkron.posterior.laplace.laplace_posterior`; ``seed`` and ``points``: of its
    variance's Monte Carlo part on large grids, one of ``points`` effective design points of INLA).
    Marginal models: on the data ``y`` with the spec's solver, exact Kronecker (equal known noise
    adds to ``σ²``) or on the observed cells.
    """
    if laplace:
        return laplace_posterior(y, spec, draw, seed=seed, points=points)
    if spec.latent:
        return LatentPosterior.condition(v, spec.factors, draw)
    axis = spec.own_noise_axis()
    own = None if axis is None else (axis, np.ravel(spec.own_noise_var(draw)))
    if own is not None and spec.solver.name != "dense":  # whitened to unit noise, as the fit was
        return WhitenedPosterior.condition(y, spec.factors, draw, *own, spec.equal_noise_var(), spec.solver)
    if spec.solver.name == "kronecker":
        sigma = np.sqrt(draw["noise"] ** 2 + spec.equal_noise_var())
        return KronPosterior.condition(y, spec.factors, {**draw, "noise": sigma})
    try:
        return ObservedPosterior.condition(y, spec.factors, draw, spec.known_noise_var(), spec.solver, own)
    except np.linalg.LinAlgError as err:
        raise np.linalg.LinAlgError(
            f"the covariance of the {int(np.isfinite(y).sum())} observed cells is numerically singular at "
            f"noise={draw['noise']:.3g} ({err}): the noise sd is too small for cells this close (a fit on a "
            "coarser or complete grid can reach 0). Fix the noise at a floor (fit(noise=...)) or give it a prior "
            "that keeps it away from 0"
        ) from err


class DrawPosteriors(Sequence):
    """Conditions the GP at each draw on access (:func:`posterior_at`), so large NUTS fits need not hold them all.

    ``weights``: INLA's design weights; their effective number of points ``1/Σ w²`` sets each Laplace
    posterior's share of the Monte Carlo variance probes (:func:`xkron.posterior.laplace.mixture_probes`).
    """

    def __init__(
        self,
        y,
        spec: ModelSpec,
        draws: Sequence[Mapping[str, float]],
        latent: np.ndarray | None = None,
        laplace: bool = False,
        weights: np.ndarray | None = None,
    ):
        self._y, self._spec, self._draws, self._latent, self._laplace = y, spec, draws, latent, laplace
        self.points = 1.0 if weights is None else float(1.0 / np.sum(np.square(weights / np.sum(weights))))
        self._start = None
        self._shared = SharedWeights()

    def __len__(self) -> int:
        return len(self._draws)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if self._laplace and len(self) > 1:  # INLA's design points
            return self._design_point(i)
        v = None if self._latent is None else self._latent[i]
        return posterior_at(self._spec, self._y, self._draws[i], v, self._laplace)

    def condition_all(self, threads: int | None = None) -> list:
        """Every posterior, in order. INLA's design points after the first (which sets the Newton start
        and the shared variance weights) are conditioned on ``threads`` threads (default: one per core,
        :func:`xkron.linalg.threads.map_threads`): each is a mode search and solves in numpy, which
        releases the GIL. The posteriors are those of conditioning in order (each point's seed and
        start are fixed), up to BLAS's rounding."""
        if not (self._laplace and len(self) > 2):
            return list(self)
        return [self[0], *map_threads(self.__getitem__, range(1, len(self)), threads)]

    def _design_point(self, i: int):
        """The Laplace posterior at design point ``i``: its Newton search starts from the first mode found
        (the centre's, when they are conditioned in order: same mode, about half the Newton steps on
        114,000 cells), and its variance takes its own Monte Carlo seed and its share of the probes
        (the mixture averages their errors), with the first point's (the centre's) weights
        (:class:`xkron.posterior.laplace.SharedWeights`): conditioned first, it fits them."""
        i = range(len(self))[i]
        if i > 0 and self._shared.reference is None:
            self._design_point(0)
        mode = laplace_mode(self._y, self._spec, self._draws[i], v0=self._start)
        if self._start is None:
            self._start = mode.v
        post = laplace_posterior(self._y, self._spec, self._draws[i], mode, seed=i, points=self.points,
                                 shared=self._shared, reference=i == 0)  # fmt: skip
        if i == 0 and self._shared.reference is None:
            self._shared.reference = post
        return post


def draw_values(params: xr.Dataset) -> list[dict[str, float]]:
    """Hyperparameter values of every draw (one for MAP), in (chain, draw) order."""
    if "chain" not in params.dims:
        return [{k: float(v) for k, v in params.items()}]
    stacked = params.stack(sample=("chain", "draw")).transpose("sample", ...)
    n = stacked.sizes["sample"]
    columns = {k: np.broadcast_to(v.values, (n,)) for k, v in stacked.items()}
    return [{k: float(c[i]) for k, c in columns.items()} for i in range(n)]


@dataclass(frozen=True)
class Conditioned:
    """What :meth:`xkron.KronFit.condition` builds its fit from (:func:`conditioned_on`).

    ``data`` as given (lazy for dask), ``spec`` on its grid and ``mask`` aligned with it.
    ``pending`` is set where dask-backed data may have gaps: the solver then depends on which
    cells are observed, which only their values tell, so it reads them (one ``dask.compute``)
    and returns the final :class:`Conditioned`, called when a prediction first needs the posterior.
    """

    data: xr.DataArray
    spec: ModelSpec
    mask: xr.DataArray | None = None
    pending: Callable[[], Conditioned] | None = None


def conditioned_on(
    spec: ModelSpec,
    encodings: Mapping[str, CoordEncoding],
    data: xr.DataArray,
    mask: xr.DataArray | None = None,
    noise_sd=None,
    gaps: bool | None = None,
    likelihood: Likelihood | None = None,
) -> Conditioned:
    """Check ``data`` (and ``mask``, ``noise_sd``) for :meth:`xkron.KronFit.condition`, and the spec on its grid.

    The factors take ``data``'s coordinates through the fit's encodings and are cut to the inputs
    observed somewhere, as in a fit. The solver: the exact Kronecker one where the observed grid is
    complete with equal noise, else the fit's iterative solver (with its options) if it had one,
    else dense up to :data:`xkron.settings.DENSE_MAX_CELLS` observed cells and iterative above
    (:func:`xkron.spec.solver.choose_solver`). Nothing of a dask-backed ``data`` is computed
    here: without ``mask``, per-cell noise or ``gaps=True`` it must be complete (checked chunk by
    chunk as results compute) and stays lazy; otherwise its values are read when first needed
    (:attr:`Conditioned.pending`).
    """
    if not spec.latent:
        _check_gaussian_marginal(spec, likelihood)
    dims = spec.dims
    if not isinstance(data, xr.DataArray):
        raise TypeError(f"data must be an xarray.DataArray on the fit's dims {dims}, not {type(data).__name__}")
    if set(data.dims) != set(dims):
        raise ValueError(
            f"data must be a DataArray on the fit's dims {dims}, but its dims are {tuple(data.dims)}: "
            "rename or select dims to match (da.rename(...), da.isel(...))"
        )
    if gaps not in (None, True, False):
        raise TypeError(f"gaps must be None, True or False, not {gaps!r}")
    positions = [d for f in spec.factors if f.kernel.labelled for d in f.dims]
    check_coords(data, [d for d in dims if d not in positions])
    layout = [(f.dims, f.kernel, None) for f in spec.factors]
    factors = coord_factors(layout, data, encodings, positions=positions)
    if spec.latent:
        return _latent(spec, data, factors, mask, noise_sd, gaps, likelihood)
    known = _known_noise(spec, noise_sd)
    if not any(is_dask(getattr(v, "data", None)) for v in (data, mask, known)):
        return _in_memory(spec, data, factors, mask, known, gaps)
    return _lazy(spec, data, factors, mask, known, gaps)


def _lazy(spec: ModelSpec, data: xr.DataArray, factors, mask, known, gaps: bool | None) -> Conditioned:
    """Dask-backed inputs, computed nowhere here: the lazy Kronecker path on a complete grid, or a pending one."""
    if data.dtype.kind not in "iuf":
        raise TypeError(f"data has dtype {data.dtype}; values must be real numbers (int, uint or float)")
    for name, value in (("mask", mask), ("noise_sd", known)):
        _check_lazy_alignment(data, value, name)
    per_cell = mask is not None or isinstance(known, xr.DataArray)
    if gaps is False and per_cell:
        raise ValueError("gaps=False says the grid is complete with equal noise, but mask= or a noise_sd array came")
    if gaps or per_cell:
        read = partial(_read_then_condition, spec, data, factors, mask, known)
        name = "iterative" if spec.solver == "iterative" or data.size > DENSE_MAX_CELLS else "dense"
        return Conditioned(data, replace(spec, factors=factors, solver=replace(spec.solver, name=name)), pending=read)
    data = data.copy(data=data.data.map_blocks(_require_finite, dtype=data.dtype))
    likelihood = spec.likelihood if known is None else replace(spec.likelihood, noise_sd=known)
    solver = replace(spec.solver, name="kronecker")
    return Conditioned(data, replace(spec, factors=factors, solver=solver, likelihood=likelihood))


def _check_gaussian_marginal(spec: ModelSpec, likelihood) -> None:
    if spec.likelihood.name != "gaussian":
        raise ValueError("condition() applies to Gaussian marginal fits and to latent fits by Laplace or INLA")
    if likelihood is not None:
        raise ValueError(
            "likelihood= gives per-cell data (exposure, trials) to latent fits; a Gaussian marginal fit takes its "
            "known noise as condition(data, noise_sd=...)"
        )


def _known_noise(spec: ModelSpec, noise_sd):
    """The known noise sd on the new grid: ``noise_sd``, or the fit's where it is one value for every cell."""
    fitted = spec.known_noise_sd
    if noise_sd is None:
        if fitted is None:
            return None
        values = np.asarray(fitted, dtype=float)
        values = values[np.isfinite(values)]
        if values.size == 0 or np.all(values == values[0]):
            return float(values[0]) if values.size else 0.0
        raise ValueError(
            "this fit has known per-cell noise (fit(noise_sd=...)) that differs between cells: pass the known sd on "
            "the new grid, condition(data, noise_sd=...)"
        )
    if fitted is None:
        raise ValueError(
            "noise_sd= applies to fits made with known noise (fit(noise_sd=...)); this fit has none, so the noise of "
            "every cell is the fitted noise sd alone: drop noise_sd"
        )
    if isinstance(noise_sd, xr.DataArray):
        return noise_sd
    if np.ndim(noise_sd) > 0:
        raise TypeError("noise_sd must be a number or an xarray.DataArray labelled with the data's dims")
    return float(noise_sd)


def _check_lazy_alignment(data: xr.DataArray, value, name: str) -> None:
    """The per-cell input lines up with ``data`` (dims, sizes, labels), checked without computing either."""
    if not isinstance(value, xr.DataArray):
        return
    extra = [d for d in value.dims if d not in data.dims]
    if extra:
        raise ValueError(f"{name} has dims {extra} that the data lack (data dims: {list(data.dims)})")
    try:
        xr.align(data, value, join="exact", copy=False)
    except ValueError:
        raise ValueError(
            f"{name} does not align with the data: its coordinates must equal the data's "
            f"(use {name}.reindex_like(data) or data.sel(...) first)"
        ) from None


def _read_then_condition(spec: ModelSpec, data, factors, mask, known) -> Conditioned:
    """Compute dask-backed inputs together (one pass), then condition as on numpy ones."""
    import dask

    data, mask, known = dask.compute(data, mask, known)
    return _in_memory(spec, data, factors, mask, known, gaps=True)


def _in_memory(spec: ModelSpec, data: xr.DataArray, factors, mask, known, gaps: bool | None) -> Conditioned:
    """Condition on the observed cells of numpy-backed data; the solver chosen by :func:`choose_solver`."""
    dims = spec.dims
    check_data(data, allow_missing=True)
    where = cell_locator(data, dims)
    y, mask = masked_values(data, dims, mask)
    seen = np.isfinite(y)
    if not seen.any():
        raise ValueError(f"all {y.size} cells given to condition() are NaN or masked: there is nothing to condition on")
    if gaps is False and not seen.all():
        missing = ~seen
        raise ValueError(
            f"gaps=False, but {int(missing.sum())} cell(s) are NaN or masked (at {where(missing)}): drop gaps=False"
        )
    likelihood, sd = spec.likelihood, None
    if known is not None:
        sd = align_cell_values(data, dims, known, "noise_sd", allow_nan=True)
        likelihood.check(y, where, {"noise_sd": sd})
        _check_some_noise(spec, sd, seen, where)
        likelihood = likelihood.with_data(noise_sd=sd)
    hull = hull_factors(seen, factors)
    name = choose_solver("auto", seen, sd, hull, where)
    if name != "kronecker" and spec.solver == "iterative":
        name = "iterative"
    spec = replace(spec, factors=hull, solver=replace(spec.solver, name=name), likelihood=likelihood)
    return Conditioned(data, spec, mask)


def _check_some_noise(spec: ModelSpec, sd: np.ndarray, seen: np.ndarray, where) -> None:
    """A fit with its noise sd fixed at 0 needs known noise > 0 at every observed cell."""
    noise = spec.priors.get("noise")
    if noise is None or is_prior(noise) or float(noise) > 0:
        return
    zero = seen & ~(sd > 0)
    if zero.any():
        raise ValueError(
            f"the fit's noise is fixed at 0, and noise_sd is 0 at {int(zero.sum())} observed cell(s) (at "
            f"{where(zero)}), which leaves them with no noise at all: give noise_sd > 0 there, or mask them"
        )


def _require_finite(block: np.ndarray) -> np.ndarray:
    if not np.all(np.isfinite(block)):
        raise ValueError(
            f"{int(np.sum(~np.isfinite(block)))} NaN/inf cells in a chunk of the data given to condition(): without "
            "mask= or per-cell noise_sd a dask-backed grid is conditioned on lazily, which needs it complete. For a "
            "grid with gaps pass condition(data, gaps=True) (fit(..., subsample=...) does where its thinned grid "
            "has gaps): its values are then read when predict() or sample() first needs the posterior"
        )
    return block


def _latent(
    spec: ModelSpec, data: xr.DataArray, factors, mask, noise_sd, gaps, given: Likelihood | None
) -> Conditioned:
    """A latent Laplace or INLA fit on new data: every cell of the new grid in the field, the likelihood's
    per-cell data (exposure, trials) from ``given`` on the new grid, or the fit's where one value for all."""
    if noise_sd is not None or gaps is not None:
        raise ValueError("noise_sd= and gaps= apply to Gaussian marginal fits; a latent fit takes NaN cells as missing")
    fitted = spec.likelihood
    if given is not None and type(given) is not type(fitted):
        raise ValueError(f"likelihood= must be the fit's family ({fitted.name}), not {given.name}")
    per_cell = given.given_data() if given is not None else {}
    if is_dask(data.data) or any(is_dask(getattr(v, "data", None)) for v in (mask, *per_cell.values())):
        for name, value in [("mask", mask), *per_cell.items()]:
            _check_lazy_alignment(data, value, name)
        read = partial(_read_latent, spec, data, factors, mask, given)
        return Conditioned(data, replace(spec, factors=factors), pending=read)
    return _latent_in_memory(spec, data, factors, mask, given)


def _read_latent(spec: ModelSpec, data, factors, mask, given) -> Conditioned:
    import dask

    per_cell = given.given_data() if given is not None else {}
    data, mask, per_cell = dask.compute(data, mask, per_cell)
    return _latent_in_memory(spec, data, factors, mask, replace(given, **per_cell) if given is not None else None)


def _latent_in_memory(spec: ModelSpec, data: xr.DataArray, factors, mask, given) -> Conditioned:
    dims, fitted = spec.dims, spec.likelihood
    check_data(data, allow_bool=True, allow_missing=True)
    where = cell_locator(data, dims)
    y, mask = masked_values(data, dims, mask)
    if not np.isfinite(y).any():
        raise ValueError(f"all {y.size} cells given to condition() are NaN or masked: there is nothing to condition on")
    cells = {}
    for name in fitted.data_fields:
        value = getattr(given, name, None)
        if value is None:
            value = _one_value(getattr(fitted, name), name, type(fitted).__name__)
        if value is not None:
            cells[name] = align_cell_values(data, dims, value, name, allow_nan=False)
    fitted.check(y, where, cells)
    return Conditioned(data, replace(spec, factors=factors, likelihood=fitted.with_data(**cells)), mask)


def _one_value(fitted, name: str, family: str):
    """The fit's per-cell ``name`` where it is one value for every cell (else an error: the new grid needs its own)."""
    if fitted is None:
        return None
    values = np.unique(np.asarray(fitted, dtype=float))
    if values.size == 1:
        return float(values[0])
    raise ValueError(
        f"this fit's {name} differs between cells: give it on the new grid, "
        f"condition(data, likelihood=xkron.{family}({name}=...))"
    )
