"""Fit a Kronecker GP to a labelled grid: validate, build the PyMC model, run inference.

:func:`fit` is what ``DataArray.kron.fit`` calls. The steps: check the input (before any
compute), put the data's axes in factor order, encode coordinates as numbers, fill in the
default priors, build the model (:mod:`xkron.model`) and run ``pm.find_MAP`` or
``pm.sample``. The result is a :class:`xkron.result.KronFit`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import pymc as pm
import pytensor
import xarray as xr

from xkron.coords import CoordEncoding, encode_coord
from xkron.grid import Factor
from xkron.model import ModelSpec, build_marginal_model
from xkron.priors import map_starts, resolve_priors
from xkron.result import KronFit
from xkron.validation import check_coords, check_data, normalize_kernels

__all__ = ["ConvergenceWarning", "fit"]

COMPILE_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="merge")
"""PyTensor mode of the MAP's functions: the Python linker with only the merge rewrite. The
graph is small (kernel matrices and one Kronecker Op that does the heavy work), and
``pm.find_MAP`` compiles three functions per start, so a fast compile matters more than
fused elementwise code."""


class ConvergenceWarning(UserWarning):
    """The MAP optimiser did not report convergence."""


def fit(
    da: xr.DataArray,
    kernels: Mapping,
    *,
    amplitude: Any = None,
    noise: Any = None,
    mean: Any = "constant",
    method: Literal["map", "nuts"] = "map",
    restarts: int = 2,
    random_seed: int | None = None,
    progressbar: bool = True,
    **sample_kwargs,
) -> KronFit:
    """Fit an exact Kronecker-structured GP to a complete grid.

    The model is ``y = mean + f + ε`` with ``f ~ GP(0, η² ∏_i k_i)``, one kernel factor
    ``k_i`` per dim (or group of dims), and ``ε ~ N(0, σ²)``. The likelihood is exact
    (Saatçi 2011, Alg. 16: one eigendecomposition per factor) and so is its gradient, also
    for rank-deficient factors.

    Parameters
    ----------
    da : xarray.DataArray
        Data on a complete grid: real numbers, no NaN. Every dim needs a kernel.
        Coordinates may be numbers, ``datetime64`` or cftime; times are measured in days
        since 1970-01-01 (the units of time lengthscales).
    kernels : mapping
        ``{dim: kernel}`` or ``{(dim, dim): kernel}`` for a factor that spans several dims
        (inputs are the Cartesian product, one lengthscale per dim), e.g.
        ``{"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad()}``.
    amplitude, noise : None, float or Prior
        The overall amplitude ``η`` (the product kernel needs only one) and the noise sd
        ``σ``. ``None`` gives the default priors of :mod:`xkron.priors`; a number fixes
        the value; a :class:`pymc_extras.prior.Prior` sets any PyMC prior.
    mean : {"constant", "zero"}, float or Prior
        Default ``"constant"``: one unknown constant with a prior centred on the data mean.
        ``"zero"`` fixes it at 0 (for anomalies); a number fixes it there.
    method : {"map", "nuts"}
        ``"map"`` runs ``pm.find_MAP`` (L-BFGS-B) from ``restarts + 1`` data-driven starts
        and keeps the best optimum; ``"nuts"`` runs ``pm.sample``, starting every chain at
        that MAP (``init="adapt_diag"``, no jitter) unless ``initvals`` or ``init`` is given:
        the posterior of a grid is often multimodal, and jittered starts can land in
        minor modes.
    restarts : int
        Extra MAP starts (lengthscales climbing from 3 grid spacings to a quarter of the
        extent). The log-likelihood of real fields has several local optima.
    random_seed : int, optional
        Passed to PyMC.
    progressbar : bool
        PyMC's progress bars.
    **sample_kwargs
        With ``method="nuts"``: passed to ``pm.sample`` (``draws``, ``tune``, ``chains``,
        ``target_accept``, ``nuts_sampler``, ``compile_kwargs``, ...). With ``"map"``: passed
        to ``pm.find_MAP``. The MAP compiles with a light PyTensor mode (:data:`COMPILE_MODE`:
        three small functions per start); NUTS uses PyMC's default mode.

    Returns
    -------
    KronFit
        ``params``, ``model``, ``posterior``, ``predict(...)``, ``to_netcdf(...)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 8)
    >>> da = xr.DataArray(np.sin(6 * x)[:, None] * np.cos(3 * x)[None, :], coords={"a": x, "b": x})
    >>> result = fit(da, {"a": xkron.ExpQuad(), "b": xkron.ExpQuad()}, noise=0.01, progressbar=False)
    >>> sorted(result.params.data_vars)
    ['amplitude', 'ls_a', 'ls_b', 'mean', 'noise']
    """
    if method not in ("map", "nuts"):
        raise ValueError(f"method={method!r} is not known: use 'map' or 'nuts'")
    pairs = normalize_kernels(da, kernels)
    dims = tuple(d for factor_dims, _ in pairs for d in factor_dims)
    check_coords(da, dims)
    check_data(da)

    encodings: dict[str, CoordEncoding] = {}
    numeric: dict[str, np.ndarray] = {}
    for dim in dims:
        numeric[dim], encodings[dim] = encode_coord(da, dim)
    factors = tuple(Factor(fd, kernel, tuple(numeric[d] for d in fd)) for fd, kernel in pairs)
    y = np.asarray(da.transpose(*dims).values, dtype=float)
    y_mean, y_sd = float(y.mean()), float(y.std())
    spec = ModelSpec(factors, resolve_priors(factors, mean, amplitude, noise, y_mean, y_sd))
    model = build_marginal_model(y, spec)

    if method == "nuts" and not spec.free_names():
        raise ValueError("method='nuts' needs at least one hyperparameter with a prior; all are fixed numbers")
    posterior, optimizer = None, None
    wants_map = method == "map" or ("initvals" not in sample_kwargs and "init" not in sample_kwargs)
    if wants_map and not spec.free_names():
        values, optimizer = {}, {"success": True, "message": "no free parameters", "logp": np.nan, "n_starts": 0}
    elif wants_map:
        starts = map_starts(factors, spec.priors, y, restarts + 1)
        map_kwargs = sample_kwargs if method == "map" else {}
        with pytensor.config.change_flags(mode=COMPILE_MODE):
            values, optimizer = _fit_map(model, spec, starts, random_seed, progressbar, map_kwargs)
    if method == "nuts":
        if optimizer is not None:
            # Every chain starts at the MAP, without jitter: the posterior of a grid is often
            # multimodal (periodic factors especially), and jittered starts land in minor modes.
            sample_kwargs.update(initvals=values, init="adapt_diag")
        posterior = pm.sample(model=model, random_seed=random_seed, progressbar=progressbar, **sample_kwargs)
        values = posterior.posterior.to_dataset()[spec.free_names()]
    return KronFit.from_parts(
        da, spec, encodings, values, method, posterior=posterior, optimizer=optimizer, model=model
    )


def _fit_map(model, spec: ModelSpec, starts, random_seed, progressbar, kwargs):
    """Run ``pm.find_MAP`` from every start; keep the best; report convergence."""
    free = spec.free_names()
    runs = []
    for start in starts:
        point, raw = pm.find_MAP(
            start=start, model=model, return_raw=True, progressbar=progressbar, seed=random_seed, **kwargs
        )
        runs.append((point, raw))
    finite = [(p, r) for p, r in runs if r is not None and np.isfinite(r.fun)]
    if not finite:
        raise RuntimeError("the MAP optimisation failed from every start (non-finite log-density)")
    point, raw = min(finite, key=lambda pr: pr[1].fun)
    best = -float(raw.fun)
    optimizer = {
        "success": bool(raw.success),
        "message": str(raw.message),
        "logp": best,
        "nit": int(raw.nit),
        "n_starts": len(runs),
        "n_starts_at_best": int(sum(abs(-r.fun - best) <= 1e-6 * max(1.0, abs(best)) for _, r in finite)),
    }
    if not raw.success:
        warnings.warn(
            f"MAP optimiser did not converge ({raw.message}); the best of {len(runs)} starts is returned. "
            "Try more restarts, fixed or tighter priors, or method='nuts'.",
            ConvergenceWarning,
            stacklevel=3,
        )
    return {name: float(point[name]) for name in free}, optimizer
