"""Default priors and starting values, derived from the grid and the data.

Defaults are weakly informative: they rule out only what the data cannot inform.

- **Lengthscale** (per dim): ``LogNormal`` with 98% of its mass between the smallest grid
  spacing ``Δ`` and the coordinate's extent ``L``. A lengthscale well below ``Δ`` makes
  neighbouring cells independent (the grid cannot resolve it); one well above ``L`` makes
  the field constant along the dim (the data cannot tell it from a longer one). Both tails
  stay open, so strong data can still push past them.
- **Period** (``Periodic``): the same, between ``2Δ`` (the Nyquist limit) and ``L``.
- **Periodic's lengthscale** is relative to the period (``sin(π d/T)/ℓ``), not in coordinate
  units: ``LogNormal`` with 98% of its mass in :data:`~xkron.settings.PERIODIC_LS_RANGE`, from a
  cycle with sharp seasons to one close to a sinusoid.
- **alpha** (``RatQuad``): ``Gamma(alpha=2, beta=1)``: mean 2, mass from near-Gaussian mixtures
  to heavy mixtures.
- **Amplitude** ``η``: ``HalfNormal(sigma=2·sd(y))``.
- **Noise** ``σ``: ``HalfNormal(sigma=sd(y))``.
- **Mean** (``mean="constant"``): ``Normal(mu=mean(y), sigma=2·sd(y))``.

The scale-dependent defaults use the data's mean and sd, so they follow the data's units.
"""

from __future__ import annotations

from collections.abc import Mapping
from statistics import NormalDist
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # PyMC is imported when a prior is built, not with xkron
    from pymc_extras.prior import Prior

from xkron.settings import NUGGET_FRACTION, PERIODIC_LS_RANGE, PERIODIC_LS_START, RESTART_LS_FACTORS
from xkron.spec.kernel_starts import combined_starts, combined_steps, uses_parts
from xkron.spec.prior_types import is_prior, new_prior
from xkron.spec.support import check_positive_prior, prior_support
from xkron.spec.variogram import data_lengthscales, dominant_period, grid_scales, period_candidates, start_ladder

__all__ = [
    "data_priors",
    "dominant_period",
    "grid_scales",
    "lognormal_between",
    "map_starts",
    "period_candidates",
    "period_steps",
    "resolve_priors",
    "start_ladder",
]

_Z98 = NormalDist().inv_cdf(0.99)  # 98% central mass lies within ±2.326 sd


def lognormal_between(lower: float, upper: float) -> Prior:
    """``LogNormal`` with 98% of its mass in ``[lower, upper]``.

    Examples
    --------
    >>> p = lognormal_between(0.1, 10.0)
    >>> p.distribution, round(p.parameters["mu"], 6), round(p.parameters["sigma"], 4)
    ('LogNormal', 0.0, 0.9898)
    """
    upper = max(upper, 2.0 * lower)
    lo, hi = np.log(lower), np.log(upper)
    return new_prior("LogNormal", mu=float((lo + hi) / 2), sigma=float((hi - lo) / (2 * _Z98)))


def data_priors(y_mean: float, y_sd: float) -> dict[str, Prior]:
    """Default priors of the amplitude, noise and constant mean (see module docstring)."""
    scale = y_sd if np.isfinite(y_sd) and y_sd > 0 else 1.0
    return {
        "amplitude": new_prior("HalfNormal", sigma=2.0 * scale),
        "noise": new_prior("HalfNormal", sigma=scale),
        "mean": new_prior("Normal", mu=float(y_mean), sigma=2.0 * scale),
    }


_WHAT = {
    "ls": "a lengthscale",
    "period": "a period",
    "alpha": "RatQuad's shape alpha",
    "scale": "a variance weight",
    "offset": "Polynomial's offset",
    "sigma": "WhiteNoise's sd",
    "kappa": "Coregion's own variance kappa",
    "amplitude": "the amplitude",
    "noise": "the noise sd",
    "nu": "Student-t's degrees of freedom",
    "dispersion": "the negative binomial dispersion",
    "shape": "the gamma likelihood's shape",
}
"""What each positive hyperparameter is, for error messages (the mean and a trend's pivot ``c`` are real)."""


def _check_fixed(name: str, value, zero_ok: bool = False, positive: bool = True) -> float:
    value = float(value)
    if not np.isfinite(value) or (positive and (value < 0 or (value == 0 and not zero_ok))):
        bound = ">= 0" if zero_ok else "> 0"
        hint = " (noise=0 is allowed with known per-cell noise, noise_sd=)" if name == "noise" and not zero_ok else ""
        raise ValueError(
            f"fixed value {name}={value} is invalid: it must be a finite number{' ' + bound if positive else ''}{hint}"
        )
    return value


def _as_spec(name: str, spec, default: Prior, what: str | None = None, zero_ok: bool = False):
    """A user's spec (None, number or Prior) as a number or a Prior.

    ``what`` names a positive parameter (``"a lengthscale"``): its prior must have positive
    support. ``None`` marks the real-valued mean. 0-d arrays count as numbers.
    """
    if spec is None:
        return default
    if is_prior(spec):
        if what is not None:
            check_positive_prior(name, spec, what)
        return spec
    if isinstance(spec, np.ndarray) and spec.ndim == 0:
        spec = spec[()]
    if isinstance(spec, bool | np.bool_) or not isinstance(spec, int | float | np.number):
        raise TypeError(
            f"{name}={spec!r} is not a valid hyperparameter: give None (default prior), a number (fixed) "
            "or a pymc_extras.prior.Prior, e.g. Prior('Gamma', alpha=2, beta=2)"
        )
    return _check_fixed(name, spec, zero_ok, positive=what is not None)


def _per_dim(spec, dims: tuple[str, ...], key: str) -> dict:
    """Spread a per-dim spec (one value, a sequence, or a dict keyed by dim) over ``dims``."""
    if isinstance(spec, Mapping):
        unknown = set(spec) - set(dims)
        if unknown:
            raise ValueError(f"{key} is given for {sorted(unknown)}, which the factor {dims} does not span")
        return {d: spec.get(d) for d in dims}
    if isinstance(spec, list | tuple | np.ndarray) and np.ndim(spec) > 0:
        if np.ndim(spec) > 1 or len(spec) != len(dims):
            raise ValueError(
                f"{key} has {np.shape(spec)} values but the factor spans {len(dims)} dims {dims}: give one number "
                f"(or Prior) per dim, or a dict keyed by dim"
            )
        return dict(zip(dims, spec, strict=True))
    return dict.fromkeys(dims, spec)


def resolve_priors(
    factors, mean_spec, amplitude, defaults: Mapping[str, Prior], likelihood_specs=None, zero_ok=()
) -> dict:
    """Every model variable's prior (a :class:`Prior`) or fixed value, defaults filled in.

    Parameters
    ----------
    factors : sequence of :class:`xkron.spec.grid.Factor`
    mean_spec : {"constant", "zero"}, number or Prior
        ``"constant"`` uses the default prior, ``"zero"`` fixes the mean at 0.
    amplitude : None, number or Prior
    defaults : mapping
        Default priors of ``amplitude``, ``mean`` and the likelihood's hyperparameters
        (:func:`data_priors` for Gaussian data).
    likelihood_specs : mapping, optional
        The likelihood's hyperparameter specs by name (e.g. ``{"noise": None}``).
    zero_ok : collection of str
        Positive parameters that may be fixed at 0 (``noise`` when known per-cell noise covers it).

    Raises
    ------
    ValueError
        If a fixed value is not finite or not > 0 (the mean aside), or a prior of a positive
        parameter has support below 0 (:func:`xkron.spec.support.check_positive_prior`).
    """
    priors: dict = {}
    scale = float(getattr(defaults["amplitude"], "parameters", {}).get("sigma", 2.0)) / 2  # sd(y)
    for factor in factors:
        priors.update(_factor_priors(factor, scale))
    if amplitude is None and any(f.kernel.labelled and f.kernel.has_variance for f in factors):
        amplitude = 1.0  # a Coregion factor's B carries the variables' scales
    priors["amplitude"] = _as_spec("amplitude", amplitude, defaults["amplitude"], _WHAT["amplitude"])
    for name, spec in (likelihood_specs or {}).items():
        what = _WHAT.get(name, "a positive hyperparameter")
        priors[name] = _as_spec(name, spec, defaults[name], what, zero_ok=name in zero_ok)
    if isinstance(mean_spec, str):
        if mean_spec not in ("constant", "zero"):
            raise ValueError(f"mean={mean_spec!r} is not known: use 'constant', 'zero', a number or a Prior")
        priors["mean"] = defaults["mean"] if mean_spec == "constant" else 0.0
    else:
        priors["mean"] = _as_spec("mean", mean_spec, defaults["mean"])
    return priors


def _factor_priors(factor, scale: float = 1.0) -> dict:
    """Priors or fixed values of one factor's kernel parameters (weights last: their defaults need the rest)."""
    priors: dict = {}
    names = factor.param_names()
    specs = factor.kernel.param_specs()
    spacing = min(grid_scales(c)[0] for c in factor.coords)
    extent = max(grid_scales(c)[1] for c in factor.coords)
    relative = factor.kernel.relative_keys()
    for key, spec in specs.items():
        base, _ = factor.kernel.param_label(key)
        if key in relative:  # sin(π d / T) / ℓ: ℓ is relative to the period, not in coordinate units
            for dim, name in zip(factor.dims, names[key], strict=True):
                spec_d = _per_dim(spec, factor.dims, key)[dim]
                priors[name] = _as_spec(name, spec_d, lognormal_between(*PERIODIC_LS_RANGE), _WHAT[base])
        elif key in factor.kernel.per_dim:
            for dim, coord, name in zip(factor.dims, factor.coords, names[key], strict=True):
                spec_d = _per_dim(spec, factor.dims, key)[dim]
                priors[name] = _as_spec(name, spec_d, *_per_dim_default(base, coord))
        elif base == "period":
            priors[names[key]] = _as_spec(names[key], spec, lognormal_between(2 * spacing, extent), _WHAT[base])
        elif base == "ls":  # one lengthscale for the whole factor (Spherical's, in km)
            lo, hi = _owner(factor.kernel, key).ls_range(factor.coords)
            priors[names[key]] = _as_spec(names[key], spec, lognormal_between(lo, hi), _WHAT[base])
        elif base == "alpha":
            priors[names[key]] = _as_spec(names[key], spec, new_prior("Gamma", alpha=2, beta=1), _WHAT[base])
        elif base == "offset":
            var = sum(float(np.var(c)) for c in factor.coords) or 1.0
            priors[names[key]] = _as_spec(names[key], spec, lognormal_between(0.01 * var, 100 * var), _WHAT[base])
        elif base == "noise":  # a Coregion label's own noise sd
            priors[names[key]] = _as_spec(names[key], spec, new_prior("HalfNormal", sigma=scale), _WHAT[base])
        elif base == "W":  # Coregion's loadings: real, on the data's scale
            priors[names[key]] = _as_spec(names[key], spec, new_prior("Normal", mu=0.0, sigma=scale))
        elif base == "kappa":
            priors[names[key]] = _as_spec(names[key], spec, new_prior("HalfNormal", sigma=scale**2), _WHAT[base])
        elif base == "sigma":
            priors[names[key]] = _as_spec(names[key], spec, new_prior("HalfNormal", sigma=1.0), _WHAT[base])
        elif base != "scale":
            raise NotImplementedError(f"no default prior for {key}")
    for key, path in reversed(getattr(factor.kernel, "scale_paths", list)()):
        name = names[key]
        v = _part_variance(factor, path, priors)
        priors[name] = _as_spec(name, specs[key], lognormal_between(0.01 / v, 100 / v), _WHAT["scale"])
    order = [n for names in factor.param_names().values() for n in (names if isinstance(names, list) else [names])]
    return {name: priors[name] for name in order}


def _owner(kernel, key: str):
    """The part of a kernel that a parameter key belongs to."""
    return next(leaf for leaf, binding in kernel.leaves() if key in binding.values())


def _per_dim_default(base: str, coord: np.ndarray):
    """Default and kind of a per-dim parameter: a lengthscale's or period's prior, or a pivot fixed mid-coordinate."""
    spacing, extent = grid_scales(coord)
    if base == "c":
        return float(np.min(coord) + np.ptp(coord) / 2), None
    if base == "period":
        return lognormal_between(2 * spacing, extent), _WHAT[base]
    return lognormal_between(spacing, extent), _WHAT[base]


def _part_variance(factor, path, priors: dict) -> float:
    """Mean prior variance of the weighted part at ``path`` over the factor's inputs, parameters at their medians."""
    values = {}
    for key, names in factor.param_names().items():
        if key not in factor.kernel.per_dim and factor.kernel.param_label(key)[0] == "scale" and names not in priors:
            values[key] = 1.0
            continue
        listed = names if isinstance(names, list) else [names]
        picked = [_inside_support(priors[n], None) if is_prior(priors[n]) else priors[n] for n in listed]
        values[key] = picked if isinstance(names, list) else picked[0]
    inputs = factor.inputs()
    zeros = [np.zeros_like(x) for x in inputs]
    diag = factor.kernel.evaluate_part(path, inputs, inputs, zeros, values, xp=np)
    v = float(np.mean(diag))
    return v if np.isfinite(v) and v > 0 else 1.0


def _support(prior: Prior) -> tuple[float, float]:
    """Support of a prior, from PyMC's description of its distribution (:func:`xkron.spec.support.prior_support`)."""
    return prior_support(prior)


def _inside_support(prior: Prior, value: float | None) -> float:
    if value is not None:
        lower, upper = _support(prior)
        if lower < value < upper:
            return value
    return float(prior.preliz.median())


def period_steps(factors, y: np.ndarray) -> dict[str, float]:
    """Relative step of each period (``Periodic``'s ``period``, ``Cosine``'s ``ls``) for the MAP optimiser.

    The log posterior has one narrow optimum per period that fits the data's oscillation: a
    period ``P`` over an extent ``L`` keeps its phase to half a cycle only within a relative
    change of about ``P / 2L``. A unit step in log-period would jump between optima, so the
    optimiser steps in units of ``P / 4L`` (``P`` the dominant period, at most 1), well inside one. Factors that
    keep a subset only (no periodogram) get 1.
    """
    y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
    seen = np.isfinite(y)
    y = np.where(seen, y, np.mean(y[seen]) if seen.any() else 0.0)  # the periodogram needs every cell
    steps: dict[str, float] = {}
    for axis, factor in enumerate(factors):
        if factor.subset is not None:
            continue
        view = np.moveaxis(y, axis, 0).reshape([len(c) for c in factor.coords] + [-1])
        if uses_parts(factor.kernel):
            steps.update(combined_steps(factor, view))
            continue
        if factor.kernel.name not in ("Cosine", "Periodic"):
            continue
        extents = [grid_scales(c)[1] for c in factor.coords]
        rel = [min(1.0, dominant_period(view, k, c) / (4 * extents[k])) for k, c in enumerate(factor.coords)]
        names = factor.param_names()
        if factor.kernel.name == "Cosine":
            steps.update(zip(names["ls"], rel, strict=True))
        else:
            steps[names["period"]] = float(min(rel))
    return steps


def map_starts(factors, priors: dict, y: np.ndarray, n: int) -> list[dict[str, float]]:
    """``n`` data-driven starting points for the MAP optimiser (free variables only).

    ``y`` holds the data over the factors' training inputs (any shape of that size; NaN where
    unobserved).

    Start 0 is fitted to the data without a solve (:func:`xkron.spec.variogram.data_lengthscales`):
    each lengthscale of a decaying kernel from its dim's empirical semivariogram, the noise
    variance from the variogram's limit at lag 0 (the smallest over dims, within
    :data:`NUGGET_FRACTION` of ``var(y)``) and the amplitude² from the rest of ``var(y)``. Restart
    ``k`` multiplies those lengthscales by the ``k``-th of :data:`RESTART_LS_FACTORS`.

    Where the variogram cannot tell (a factor that keeps a subset of its grid, too few pairs, a flat
    variogram), the lengthscales climb :func:`start_ladder` together, the amplitude starts at
    ``sd(y)`` and the noise at ``sd(y)/10``. A ``Periodic`` lengthscale (relative to its period)
    starts at :data:`PERIODIC_LS_START`; the period of a ``Cosine`` (its ``ls``) or ``Periodic``
    factor takes a different value per start (:func:`period_candidates`: the data's dominant period
    first), because each period that fits part of the data's oscillation has its own local optimum.
    The mean starts at ``mean(y)``, other parameters at their prior median. Values outside a
    prior's support are replaced by its median.
    """
    y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
    seen = y[np.isfinite(y)]
    y_mean = float(np.mean(seen)) if seen.size else 0.0
    y_sd = float(np.std(seen)) if seen.size else 0.0
    scale = y_sd if np.isfinite(y_sd) and y_sd > 0 else 1.0
    filled = np.where(np.isfinite(y), y, y_mean)  # the periodogram needs every cell: missing ones at the mean
    extras = {f.name: _kernel_extras(f, priors) for f in factors}
    fitted, nugget = data_lengthscales(factors, y, extras)
    starts = [{} for _ in range(n)]
    for axis, factor in enumerate(factors):
        names = factor.param_names()
        if uses_parts(factor.kernel):
            view = None if factor.subset is not None else _factor_view(filled, axis, factor)
            for start, values in zip(starts, combined_starts(factor, view, n), strict=True):
                start.update(values)
            continue
        # The periodogram needs the factor's own grid: not there when it keeps a subset only.
        periodic = factor.kernel.name in ("Cosine", "Periodic") and factor.subset is None
        if periodic:
            view = _factor_view(filled, axis, factor)
            periods = [period_candidates(view, k, c, n) for k, c in enumerate(factor.coords)]
        else:
            periods = [[float(np.ptp(c)) / 4 or 1.0] * n for c in factor.coords]
        if factor.kernel.labelled and factor.kernel.has_variance:  # Coregion: half the variance shared, half own
            loadings = factor.kernel.loading_starts(scale)
            for start in starts:
                start.update({n: loadings.get(key, 0.5 * scale**2) for key, n in names.items()})
            continue
        if isinstance(names.get("ls"), str):  # one lengthscale for the factor (Spherical's, km): its own ladder
            ladder = start_ladder(*factor.kernel.ls_range(factor.coords), n)
            for start, ls in zip(starts, ladder, strict=True):
                start[names["ls"]] = float(ls)
            continue
        for k, (coord, name) in enumerate(zip(factor.coords, names.get("ls", []), strict=False)):
            if factor.kernel.name == "Cosine":
                ladder = periods[k]
            elif factor.kernel.name == "Periodic":
                ladder = [PERIODIC_LS_START] * n
            elif name in fitted:
                ladder = [fitted[name] * _restart_factor(i) for i in range(n)]
            else:
                ladder = start_ladder(*grid_scales(coord), n)
            for start, ls in zip(starts, ladder, strict=True):
                start[name] = ls
        if "period" in names:
            for i, start in enumerate(starts):
                start[names["period"]] = float(np.median([p[i] for p in periods]))
    amplitude, noise = (scale, 0.1 * scale) if nugget is None else _amplitude_noise(y_sd**2, nugget)
    for start in starts:
        start.update(amplitude=amplitude, noise=noise, mean=y_mean)
    free = {name: p for name, p in priors.items() if is_prior(p)}
    return [{name: _inside_support(p, start.get(name)) for name, p in free.items()} for start in starts]


def _factor_view(y: np.ndarray, axis: int, factor) -> np.ndarray:
    """The data with the factor's dims first (one axis each) and every other cell along one last axis."""
    return np.moveaxis(y, axis, 0).reshape([len(c) for c in factor.coords] + [-1])


def _restart_factor(i: int) -> float:
    """The factor on the data-driven lengthscales of start ``i`` (1 for start 0, :data:`RESTART_LS_FACTORS` after)."""
    return 1.0 if i == 0 else RESTART_LS_FACTORS[(i - 1) % len(RESTART_LS_FACTORS)]


def _amplitude_noise(variance: float, nugget: float) -> tuple[float, float]:
    """Amplitude and noise sd that split ``variance`` at the nugget, kept within :data:`NUGGET_FRACTION`."""
    lo, hi = NUGGET_FRACTION
    nugget = float(np.clip(nugget, lo * variance, hi * variance))
    return float(np.sqrt(variance - nugget)), float(np.sqrt(nugget))


def _kernel_extras(factor, priors: dict) -> dict[str, float]:
    """A kernel's per-factor parameters (``alpha``) at their fixed value or prior median, for the variogram fit."""
    extras = {}
    for key, name in factor.param_names().items():
        if key not in factor.kernel.per_dim:
            value = priors.get(name)
            extras[key] = float(value) if value is not None and not is_prior(value) else _inside_support(value, None)
    return extras
