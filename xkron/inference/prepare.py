"""From :func:`xkron.fit`'s arguments to a model specification: every check on the data, the
kernels and the hyperparameters, and nothing that computes.

:func:`prepare` is the part of ``fit`` between checking its options (:mod:`xkron.inference.arguments`)
and building the PyMC model: the data's axes in factor order, coordinates encoded as
numbers, per-cell inputs aligned, the solver chosen, default priors filled in. Batch fits
(:mod:`xkron.inference.batch`) run it on every slice before any slice is fitted, so that an argument
no slice can take is refused before any compute.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np
import xarray as xr

from xkron.inference.arguments import solver_keys
from xkron.inference.collapsed import collapse_applies
from xkron.inference.options import FitOptions
from xkron.linalg.cost import check_fit_cost
from xkron.settings import DENSE_MAX_CELLS
from xkron.spec.coords import CoordEncoding, encode_coord
from xkron.spec.grid import hull_factors, restrict
from xkron.spec.likelihoods import Gaussian, Likelihood, latent_scale_priors
from xkron.spec.masks import masked_values
from xkron.spec.modelspec import ModelSpec, coord_factors
from xkron.spec.prior_types import is_prior
from xkron.spec.priors import resolve_priors
from xkron.spec.solver import Solver, choose_solver
from xkron.spec.validation import (
    align_cell_values,
    cell_locator,
    check_coords,
    check_data,
    normalize_kernels,
)

__all__ = ["DENSE_MAX_CELLS", "Prepared", "check_constant_data", "check_solver_choice", "prepare"]


@dataclass
class Prepared:
    """What :func:`prepare` hands to the model builder and the inference.

    ``y`` is the data over all factor axes (NaN where unobserved or masked), ``y_model`` what
    the model sees (the marginal model's cut to the observed hull), ``cells`` the per-cell
    inputs (``noise_sd``, ``exposure``, ``trials``) over the same axes.
    """

    spec: ModelSpec
    y: np.ndarray
    y_model: np.ndarray
    cells: dict[str, np.ndarray]
    encodings: dict[str, CoordEncoding]
    mask: xr.DataArray | None
    collapse: bool
    pymc_nuts: bool


def _observations(da, kernels, options: FitOptions):
    """Check kernels, coordinates and values; the likelihood with its noise; data and cells over the factor axes."""
    latent, mask = options.latent, options.mask
    pairs = normalize_kernels(da, kernels)
    dims = tuple(d for factor_dims, _ in pairs for d in factor_dims)
    labelled = {d for fd, k in pairs if k.labelled for d in fd}  # replicates, variables: any labels
    check_coords(da, [d for d in dims if d not in labelled])
    check_data(da, allow_bool=latent, allow_missing=True)
    likelihood = _with_noise_sd(_with_noise(options.likelihood, options.noise), options.noise_sd)
    cells = {
        name: align_cell_values(da, dims, value, name, allow_nan=name == "noise_sd")
        for name, value in likelihood.given_data().items()
    }
    y, mask = masked_values(da, dims, mask)
    if not np.isfinite(y).any():
        raise ValueError(f"every one of the {y.size} cells is NaN or masked: there is nothing to fit")
    likelihood.check(y, cell_locator(da, dims), cells)
    encodings = {d: CoordEncoding("index", "", None) if d in labelled else encode_coord(da, d)[1] for d in dims}
    factors = coord_factors([(fd, kernel, None) for fd, kernel in pairs], da, encodings, positions=labelled)
    return likelihood, y, cells, mask, encodings, factors, cell_locator(da, dims)


def prepare(da: xr.DataArray, kernels: Mapping, options: FitOptions) -> Prepared:
    """Everything :func:`xkron.fit` checks and derives before it builds a model.

    ``options`` come checked and resolved (:func:`xkron.inference.arguments.check_call`). The
    marginal model's solver is chosen here, once, and travels in ``spec.solver``.

    Raises
    ------
    ValueError, TypeError
        For any input the fit could not take; nothing has been computed then.
    """
    latent, method, sample_kwargs = options.latent, options.method, options.sample_kwargs
    likelihood, y, cells, mask, encodings, factors, where = _observations(da, kernels, options)
    seen = np.isfinite(y)
    if any(f.kernel.own_noise for f in factors):
        _check_own_noise(options)
    solver = Solver()  # a latent model always uses the Kronecker factorisation of its prior
    if not latent:
        factors = hull_factors(seen, factors)
        chosen = choose_solver(options.solver, seen, cells.get("noise_sd"), factors, where)
        if any(f.kernel.own_noise for f in factors) and np.ndim(cells.get("noise_sd")) > 0:
            chosen = _own_noise_solver(options, int(seen.sum()))
        check_solver_choice(options.solver, chosen, options.solver_options)
        solver = Solver.from_options(chosen, options.solver_options)
    _check_known_only(likelihood, cells.get("noise_sd"), seen)
    y_seen, cells_seen = y[seen], {k: v[seen] for k, v in cells.items()}
    check_constant_data(y_seen, likelihood, cells_seen.get("noise_sd"))
    defaults = {**latent_scale_priors(likelihood, y_seen, cells_seen), **likelihood.default_priors(y_seen)}
    own_noise = any(f.kernel.own_noise for f in factors)
    zero_ok = ("noise",) if "noise_sd" in cells or own_noise else ()
    params = likelihood.param_specs()
    if own_noise:
        params = {**params, "noise": 0.0}  # each label's own noise sd takes its place
    priors = resolve_priors(factors, options.mean, options.amplitude, defaults, params, zero_ok=zero_ok)
    n_free = sum(is_prior(p) for p in priors.values())
    if y_seen.size <= n_free:
        raise ValueError(
            f"only {y_seen.size} observed cells for {n_free} hyperparameters with priors: fix some "
            "(give numbers) or observe more cells"
        )
    spec = ModelSpec(factors, priors, likelihood.with_data(**cells), latent, solver)
    if (method == "inla" or (method != "map" and not latent)) and not spec.free_names():
        raise ValueError(f"method={method!r} needs at least one hyperparameter with a prior; all are fixed numbers")
    pymc_nuts = sample_kwargs.get("nuts_sampler", "pymc") == "pymc"
    collapse = _resolve_collapse(options.collapse, spec, y, method, pymc_nuts) if latent else False
    y_model = y if latent else restrict(y, factors)
    check_fit_cost(spec, int(y_seen.size), method, sample_kwargs, stacklevel=7)
    return Prepared(spec, y, y_model, cells, encodings, mask, collapse, pymc_nuts)


OWN_NOISE = "Coregion(noise=True) gives each label its own noise sd"


def _check_own_noise(options: FitOptions) -> None:
    """Refuse what a fit with a noise sd per label (``Coregion(noise=True)``) cannot be, before any work."""
    if options.latent or options.method not in ("map", "nuts", "advi"):
        raise ValueError(f"{OWN_NOISE}: a Gaussian marginal fit only (no latent=True, method='laplace' or 'inla')")
    if options.noise is not None:
        raise ValueError(f"{OWN_NOISE} in place of noise=: leave noise unset (Coregion(noise=...) takes its spec)")


def _own_noise_solver(options: FitOptions, n_observed: int) -> str:
    """The dense solver for a noise sd per label *and* known noise per cell: its gradient per cell carries both.

    Without per-cell known noise any solver fits a noise sd per label, by whitening
    (:func:`xkron.models.build.build_marginal_model`).
    """
    where = f"{OWN_NOISE} on top of known noise_sd per cell"
    if options.solver not in ("auto", "dense"):
        raise ValueError(f"{where}, fitted by the dense solver only; solver={options.solver!r} cannot (use 'auto')")
    if n_observed > DENSE_MAX_CELLS:
        raise ValueError(
            f"{where}, fitted by the dense solver, which takes at most {DENSE_MAX_CELLS:,} observed cells; these "
            f"data have {n_observed:,}: thin the grid (subsample=, or select a window), drop noise_sd, or share one "
            "noise sd"
        )
    return "dense"


def check_solver_choice(requested: str, chosen: str, options: Mapping | None) -> None:
    """Warn when ``solver="auto"`` picked a solver that ignores the given ``solver_options``."""
    unused = sorted(set(options or {}) - solver_keys(chosen))
    if requested == "auto" and unused:
        warnings.warn(
            f"solver='auto' chose solver={chosen!r} for these data, which does not read solver_options {unused}; "
            "they are unused (pass solver='iterative' to use them)",
            UserWarning,
            stacklevel=5,
        )


def check_constant_data(y_seen: np.ndarray, likelihood: Likelihood, known_sd: np.ndarray | None) -> None:
    """Refuse constant data when the noise sd is free: its optimum is 0, where the model degenerates."""
    if "noise" not in likelihood.params or y_seen.size < 2 or np.ptp(y_seen) > 0:
        return
    fixed = likelihood.noise is not None and not is_prior(likelihood.noise)
    if fixed or (known_sd is not None and np.any(np.asarray(known_sd) > 0)):
        return
    raise ValueError(
        f"all {y_seen.size} observed cells equal {float(y_seen[0])!r}: with nothing varying, the fitted noise sd and "
        "amplitude both shrink to 0, where the model is singular. Fix the noise at the known measurement error "
        "(noise=0.1, say) or give the known per-cell noise_sd=, or check that the right variable was loaded"
    )


def _with_noise_sd(likelihood: Likelihood, noise_sd) -> Likelihood:
    """Route ``fit(noise_sd=...)`` to the Gaussian likelihood's known per-cell noise."""
    if noise_sd is None:
        return likelihood
    if not isinstance(likelihood, Gaussian):
        raise ValueError(
            f"noise_sd (known per-cell noise) applies to the Gaussian likelihood only, not {likelihood.name}: "
            "its observation model has no additive Gaussian noise to add it to"
        )
    if likelihood.noise_sd is not None:
        raise ValueError("noise_sd is given twice: as fit(noise_sd=...) and in the likelihood object; keep one")
    if not isinstance(noise_sd, xr.DataArray) and np.ndim(noise_sd) > 0:
        raise TypeError("noise_sd must be a number or an xarray.DataArray labelled with the data's dims")
    return replace(likelihood, noise_sd=noise_sd)


def _check_known_only(likelihood: Likelihood, noise_sd, seen: np.ndarray) -> None:
    """With ``noise=0`` every observed cell needs known noise > 0 (else its variance is 0)."""
    if noise_sd is None or is_prior(likelihood.noise) or likelihood.noise is None:
        return
    if float(likelihood.noise) > 0:
        return
    zero = seen & ~(np.broadcast_to(noise_sd, seen.shape) > 0)
    if zero.any():
        raise ValueError(
            f"noise=0 with noise_sd = 0 at {int(zero.sum())} observed cell(s) leaves them with no noise at all; "
            "give noise a prior or a positive value, or noise_sd > 0 everywhere"
        )


def _resolve_collapse(collapse: bool | None, spec: ModelSpec, y: np.ndarray, method: str, pymc_nuts: bool) -> bool:
    """Whether a latent fit samples ``θ`` collapsed (see ``fit(collapse=...)``)."""
    why = collapse_applies(spec, y)
    if why is None and method != "nuts":
        why = f"method={method!r} is not NUTS"
    if why is None and not pymc_nuts:
        why = "the marginal likelihood runs on PyMC's own NUTS sampler only (nuts_sampler='pymc')"
    if collapse and why is not None:
        raise ValueError(f"collapse=True cannot apply here: {why}; leave collapse unset")
    return why is None if collapse is None else bool(collapse)


def _with_noise(likelihood: Likelihood, noise) -> Likelihood:
    """Route ``fit(noise=...)`` to the likelihood's ``noise`` hyperparameter."""
    if noise is None:
        return likelihood
    if isinstance(noise, np.ndarray) and noise.ndim == 0:
        noise = noise[()]
    if isinstance(noise, xr.DataArray | np.ndarray | list | tuple):
        raise TypeError(
            "noise is one sd shared by every cell (a number or a Prior), not an array; known noise "
            "that differs between cells goes in noise_sd= (a DataArray of sds), the fitted sd stays in noise="
        )
    if "noise" not in likelihood.params:
        raise ValueError(
            f"noise={noise!r} does not apply to a {likelihood.name} likelihood, which has no noise sd; "
            f"its hyperparameters are {list(likelihood.params) or 'none'}"
        )
    if likelihood.noise is not None:
        raise ValueError("noise is given twice: as fit(noise=...) and in the likelihood object; keep one")
    return replace(likelihood, noise=noise)
