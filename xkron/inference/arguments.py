"""Checks on the options of :func:`xkron.fit`, run before any compute.

:mod:`xkron.spec.validation` checks the data and the kernels; this module checks everything else
a user passes to ``fit``: the options that steer inference (``method``, ``restarts``,
``random_seed``, ``solver``, ``solver_options``, ``subsample``, ``batch_dims``, ``shared``,
``errors``, ``mask``) and the extra keywords forwarded to PyMC. The rules:

- A keyword that the chosen method's PyMC function does not take is a ``TypeError`` with a
  "did you mean" (the accepted names come from the installed PyMC's signatures).
- An option that cannot have any effect given the other arguments (``shared=True`` without
  ``batch_dims``, ``solver=`` for a latent model, ...) is a ``ValueError``: the user meant
  something that is not happening.
- An option whose effect depends on the data or on a choice made later (``solver_options``
  when ``solver="auto"`` may not pick the iterative solver, ``restarts`` where no MAP runs)
  gets a ``UserWarning`` when it turns out unused.
"""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import Any

import numpy as np
import xarray as xr

from xkron.inference.optimize import MAP_KWARGS
from xkron.inference.options import BATCH_ERRORS, METHODS, FitOptions
from xkron.linalg.lazy import is_dask
from xkron.settings import DEFAULT_RESTARTS, LAPLACE_DEFAULT_CELLS
from xkron.spec.likelihoods import Gaussian, Likelihood, resolve_likelihood
from xkron.spec.solver import SOLVERS, Solver

__all__ = [
    "DEFAULT_RESTARTS",
    "OUTPUT_NAMES",
    "accepted_kwargs",
    "check_call",
    "solver_keys",
]


OUTPUT_NAMES = {
    "mean": "predict()'s posterior mean",
    "sd": "predict()'s posterior sd",
    "quantiles": "predict()'s quantiles",
    "quantile": "the dim of predict()'s quantiles",
    "f": "sample()'s latent field draws",
    "sample": "the dim of sample()'s draws",
    "chain": "the chain dim of NUTS posteriors",
    "draw": "the draw dim of posteriors",
}
"""Variable and dim names that xkron's outputs (:mod:`xkron.results.predict`, :mod:`xkron.results.samples`,
:mod:`xkron.results.fit`) add beside the data's dims: a data dim of the same name clashes with them.
``y`` (``sample()``'s predictive draws) is left out: it is the usual name of a projected grid's
second axis, and it clashes only in ``sample()`` with observation draws, which must handle it."""

_RESERVED = {
    "model": "xkron builds the PyMC model itself",
    "start": "xkron starts the MAP from restarts + 1 data-driven points: set restarts= instead",
    "seed": "use fit(random_seed=...)",
    "return_raw": "xkron reads the optimiser's raw result itself",
    "return_inferencedata": "xkron reads the InferenceData that pm.sample returns",
}
"""Keywords of PyMC's functions that xkron sets itself, and why the user cannot."""


# --------------------------------------------------------------------------- extra keywords


def _names(*functions) -> set[str]:
    """Named parameters (no ``self``, ``*args`` or ``**kwargs``) of functions."""
    skip = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return {
        p.name
        for fn in functions
        for p in inspect.signature(fn).parameters.values()
        if p.kind not in skip and p.name != "self"
    }


def accepted_kwargs(method: str) -> dict[str, str]:
    """Extra keywords ``fit(method=method, **kwargs)`` passes on, each with where it goes.

    For ``"map"``, ``"laplace"`` and ``"inla"`` the options of xkron's own optimiser
    (:data:`xkron.inference.optimize.MAP_KWARGS`, except ``method``, which is ``fit``'s own); from the installed
    libraries' signatures ``pm.sample`` and the keywords it forwards to its NUTS step (``target_accept``,
    ``max_treedepth``, ...) for ``"nuts"``; ``pm.fit``, ``Inference.fit`` and the objective's
    ``step_function`` for ``"advi"`` (plus ``draws``).
    """
    # Read where they are defined (what pm.find_MAP etc. are), so a patched pm.* changes nothing here.
    from pymc.sampling.mcmc import sample
    from pymc.step_methods.hmc.nuts import NUTS
    from pymc.variational.inference import Inference, fit
    from pymc.variational.opvi import ObjectiveFunction

    if method in ("map", "laplace", "inla"):
        accepted = dict.fromkeys(set(MAP_KWARGS) - {"method"}, "xkron.inference.optimize.fit_map")
    elif method == "nuts":
        steps = [cls.__init__ for cls in NUTS.__mro__ if "__init__" in vars(cls) and cls is not object]
        step = _names(*steps) - {"vars", "model", "initial_point"}
        accepted = {**dict.fromkeys(step, "PyMC's NUTS step (through pm.sample)"), "nuts": "pm.sample"}
        accepted.update(dict.fromkeys(_names(sample), "pm.sample"))
    else:
        accepted = dict.fromkeys(_names(fit, Inference.fit, ObjectiveFunction.step_function), "pm.fit")
        accepted["draws"] = "the draws from the fitted approximation"
    for name in _RESERVED:
        accepted.pop(name, None)
    return accepted


def _check_sample_kwargs(method: str, kwargs: Mapping[str, Any], own: Collection[str]) -> None:
    """Refuse extra keywords the chosen method would not use, before anything is compiled."""
    if not kwargs:
        return
    accepted = accepted_kwargs(method)
    for name in kwargs:
        if name in accepted:
            continue
        if name in _RESERVED:
            raise TypeError(f"fit() does not take {name}=: {_RESERVED[name]}")
        targets = " and ".join(sorted(set(accepted.values())))
        others = [m for m in METHODS if m != method and name in accepted_kwargs(m)]
        hint = _did_you_mean(name, [*accepted, *own])
        where = f" It applies to method={' or '.join(map(repr, others))}." if others else ""
        raise TypeError(
            f"fit() got an unexpected keyword argument {name!r}: with method={method!r} extra keywords go to "
            f"{targets}, which do not take it.{where}{hint}"
        )


def _check_xkron_init(kwargs: Mapping[str, Any], method: str, latent: bool, likelihood) -> None:
    """xkron's own ``init`` values need NUTS on a latent model with PyMC's sampler: ``"whitened"``
    (:mod:`xkron.inference.centred_nuts`) any likelihood, ``"laplace"`` a non-Gaussian one."""
    init = kwargs.get("init")
    if init not in ("laplace", "whitened"):
        return
    fits = method == "nuts" and latent and (init == "whitened" or likelihood.name != "gaussian")
    if not fits or kwargs.get("nuts_sampler", "pymc") != "pymc" or "step" in kwargs:
        what = {
            "laplace": "(the Laplace start and metric, xkron.inference.laplace_metric) applies to method='nuts' on "
            "a latent model with a non-Gaussian likelihood",
            "whitened": "(NUTS on the whitened field instead of the partially centred one) applies to "
            "method='nuts' on a latent model",
        }[init]
        raise ValueError(
            f"init={init!r} {what}, with PyMC's sampler and no step=; "
            "use PyMC's inits (e.g. init='adapt_diag') otherwise"
        )


def _did_you_mean(name: str, candidates: Collection[str]) -> str:
    """ " Did you mean 'x'?" for the closest candidate (spelling, or one name the start of the other)."""
    close = difflib.get_close_matches(name, list(candidates), n=1)
    if not close:
        close = [c for c in candidates if len(c) > 1 and (name.startswith(c) or c.startswith(name))][:1]
    return f" Did you mean {close[0]!r}?" if close else ""


# --------------------------------------------------------------------------- scalar options


def _check_int(name: str, value: Any, allow_none: bool) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        none = "None or " if allow_none else ""
        raise TypeError(f"{name} must be {none}a whole number >= 0, not {value!r} ({type(value).__name__})")
    if value < 0:
        raise ValueError(f"{name}={value} is negative; it must be a whole number >= 0")


def _check_dim_names(da: xr.DataArray) -> None:
    clash = [d for d in da.dims if d in OUTPUT_NAMES]
    if clash:
        dim = clash[0]
        raise ValueError(
            f"data dim {dim!r} has the name of {OUTPUT_NAMES[dim]}, which the results add beside the data's dims: "
            f"rename it, e.g. da.rename({{{dim!r}: {dim + '_' + 'dim'!r}}}), and use the new name in kernels. "
            f"Reserved names: {sorted(OUTPUT_NAMES)}."
        )


def resolve_latent(likelihood: Likelihood, latent: bool | None) -> bool:
    """Whether the model samples the field: always for non-Gaussian likelihoods."""
    if isinstance(likelihood, Gaussian):
        return bool(latent)
    if latent is False:
        raise ValueError(
            f"latent=False needs Gaussian data: a {likelihood.name} likelihood has no closed-form marginal; "
            "leave latent unset"
        )
    return True


def _resolve_method(likelihood: Likelihood, latent: bool, method: str | None, cells: int) -> str:
    """``method``, or the default: ``"map"`` for the marginal model; for a latent one ``"nuts"`` on grids of
    at most :data:`~xkron.settings.LAPLACE_DEFAULT_CELLS` cells and ``"laplace"`` above."""
    if method is None:
        method = ("laplace" if cells > LAPLACE_DEFAULT_CELLS else "nuts") if latent else "map"
    allowed = ("nuts", "advi", "laplace", "inla") if latent else ("map", "nuts")
    if method not in allowed:
        form = f"a latent model ({likelihood.name})" if latent else "the Gaussian marginal model"
        raise ValueError(f"method={method!r} is not available for {form}: use one of {allowed}")
    return method


# --------------------------------------------------------------------------- options that do nothing


def _check_batch_options(batch_dims, shared: Any, errors: Any) -> None:
    if errors not in BATCH_ERRORS:
        raise ValueError(f"errors={errors!r} is not one of {', '.join(map(repr, BATCH_ERRORS))}")
    if not isinstance(shared, bool | np.bool_):
        raise TypeError(f"shared must be True or False, not {shared!r}")
    if batch_dims is None and (shared or errors != "raise"):
        given = "shared=True" if shared else f"errors={errors!r}"
        raise ValueError(
            f"{given} applies to fits along batch_dims (separate fields per ensemble member, scenario, ...) "
            "but batch_dims is not given: pass batch_dims=[...] or drop it"
        )


def solver_keys(solver: str) -> set[str]:
    """The ``solver_options`` keys a solver reads (only the iterative one reads any)."""
    return set(Solver.keys()) if solver == "iterative" else set()


def _check_solver_options(latent: bool, solver: Any, options: Any) -> None:
    if solver not in ("auto", *SOLVERS):
        raise ValueError(f"solver={solver!r} is not one of {('auto', *SOLVERS)}")
    if latent and (solver != "auto" or options):
        given = f"solver={solver!r}" if solver != "auto" else f"solver_options={dict(options)!r}"
        raise ValueError(
            f"{given} applies to the Gaussian marginal model; a latent model always uses the Kronecker "
            "factorisation of the prior: drop it"
        )
    if options is None:
        return
    if not isinstance(options, Mapping):
        raise TypeError(f"solver_options must be a dict, not {type(options).__name__}")
    known = set().union(*(solver_keys(s) for s in SOLVERS))
    for key in options:
        if key not in known:
            hint = _did_you_mean(str(key), sorted(known))
            raise ValueError(
                f"solver_options key {key!r} is not read by any solver; known keys: {sorted(known)}.{hint}"
            )
    unused = sorted(set(options) - solver_keys(solver)) if solver != "auto" else []
    if unused:
        raise ValueError(
            f"solver_options {unused} are not read by solver={solver!r} (they apply to solver='iterative'): drop them"
        )


def _restarts_unused(method: str, latent: bool, likelihood: Likelihood, kwargs: Mapping) -> str | None:
    """Why no MAP runs from ``restarts + 1`` starts, where the arguments alone tell."""
    if method in ("laplace", "inla"):
        return None
    if method == "advi":
        return "method='advi' runs no MAP"
    given = [k for k in ("initvals", "init") if k in kwargs]
    if method == "nuts" and given:
        return f"NUTS starts from the given {given[0]}= instead of a MAP"
    if latent and kwargs.get("nuts_sampler", "pymc") != "pymc":
        return f"nuts_sampler={kwargs['nuts_sampler']!r} chooses its own starts"
    if latent and not isinstance(likelihood, Gaussian):
        return f"a {likelihood.name} likelihood starts NUTS from one data-driven point"
    return None


# --------------------------------------------------------------------------- mask and subsample


def _check_subsample_steps(da: xr.DataArray, subsample: Any, batch_dims) -> None:
    if not isinstance(subsample, Mapping):
        raise TypeError(f"subsample must be a dict of dim to step, e.g. {{'time': 4}}, not {type(subsample).__name__}")
    batch = {batch_dims} if isinstance(batch_dims, str) else set(batch_dims or ())
    for dim, step in subsample.items():
        if dim not in da.dims:
            close = difflib.get_close_matches(str(dim), [str(d) for d in da.dims], n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"subsample dim {dim!r} is not in the data; data dims are {tuple(da.dims)}.{hint}")
        if dim in batch:
            raise ValueError(f"subsample dim {dim!r} is a batch dim; thin kernel dims only (or da.isel the batch)")
        _check_int(f"subsample[{dim!r}]", step, allow_none=False)
        if step < 1:
            raise ValueError(f"subsample[{dim!r}]={step}: a step must be >= 1 (every k-th coordinate)")
        n = da.sizes[dim]
        if len(range(0, n, int(step))) < 2:
            raise ValueError(
                f"subsample[{dim!r}]={step} keeps 1 of the {n} coordinates along {dim!r}, and a kernel dim needs "
                f"at least 2: use a step of at most {max(n - 1, 1)}"
            )


def _check_subsample(da, given: FitOptions, latent: bool, likelihood: Likelihood, method: str) -> None:
    """``subsample`` fits on a thinned grid then conditions on every observed cell of the whole one
    (``KronFit.condition``): refuse, before fitting, what that second step cannot take."""
    from xkron.spec.masks import aligned_mask
    from xkron.spec.validation import align_cell_values, cell_locator

    subsample, batch_dims, mask = given.subsample, given.batch_dims, given.mask
    if subsample is None:
        return
    _check_subsample_steps(da, subsample, batch_dims)
    if (latent and method not in ("laplace", "inla")) or (not latent and not isinstance(likelihood, Gaussian)):
        raise ValueError(
            "subsample= applies to Gaussian marginal fits and to latent fits by method='laplace' or 'inla': it "
            f"conditions the fitted hyperparameters on the whole grid with the field integrated out (not {method!r})"
        )
    if batch_dims is not None and not given.shared:
        raise ValueError("subsample= with independent batch_dims is not supported: fit each slice's subsample instead")
    per_cell = likelihood.given_data()
    if is_dask(da.data) or any(is_dask(getattr(v, "data", None)) for v in (mask, given.noise_sd, *per_cell.values())):
        return  # dask-backed inputs are checked when the conditioning reads them (KronFit.condition), not here
    dims = list(da.dims)
    y = np.asarray(da.values, dtype=float)
    if mask is not None:
        y = np.where(aligned_mask(da, mask).values, y, np.nan)
    if latent:  # the whole grid's values and per-cell data, checked now: the conditioning comes after the fit
        cells = {n: align_cell_values(da, dims, v, n) for n, v in per_cell.items()}
        likelihood.check(y, cell_locator(da, dims), cells)
    known = given.noise_sd if given.noise_sd is not None else getattr(likelihood, "noise_sd", None)
    if known is not None and not latent:  # as above
        sd = align_cell_values(da, dims, known, "noise_sd", allow_nan=True)
        likelihood.check(y, cell_locator(da, dims), {"noise_sd": sd})
    steps = {d: slice(None, None, int(k)) for d, k in subsample.items()}
    thinned = y[tuple(steps.get(d, slice(None)) for d in dims)]
    if not np.isfinite(thinned).any():
        raise ValueError(
            f"subsample={dict(subsample)} keeps {thinned.size} cells, all NaN or masked: there is nothing to fit the "
            "hyperparameters on; use smaller steps, or fit a window with data (da.sel(...)) and condition() on the rest"
        )


# --------------------------------------------------------------------------- all together


def check_call(da: xr.DataArray, given: FitOptions) -> FitOptions:
    """Check every option of :func:`xkron.fit` (not the data or kernels) before any compute.

    ``given`` holds the options as the user passed them; the result has the likelihood
    resolved to an object, ``latent`` to a bool and the method chosen.

    Raises
    ------
    TypeError
        For an extra keyword the chosen method does not take, or an option of the wrong type.
    ValueError
        For an option value that is out of range, or that cannot have any effect here.
    """
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"data must be an xarray.DataArray, not {type(da).__name__}")
    _check_dim_names(da)
    _check_int("restarts", given.restarts, allow_none=False)
    _check_int("random_seed", given.random_seed, allow_none=True)
    likelihood = resolve_likelihood(given.likelihood)
    latent = resolve_latent(likelihood, given.latent)
    if given.collapse is not None and not latent:
        raise ValueError("collapse= applies to latent models (latent=True); the marginal model is already collapsed")
    method = _resolve_method(likelihood, latent, given.method, int(da.size))
    _check_batch_options(given.batch_dims, given.shared, given.errors)
    _check_solver_options(latent, given.solver, given.solver_options)
    _check_subsample(da, given, latent, likelihood, method)
    kwargs = dict(given.sample_kwargs)
    _check_sample_kwargs(method, kwargs, FitOptions.keywords())
    _check_xkron_init(kwargs, method, latent, likelihood)
    why = _restarts_unused(method, latent, likelihood, kwargs)
    if why and given.restarts != DEFAULT_RESTARTS:
        warnings.warn(f"restarts={given.restarts} has no effect here: {why}", UserWarning, stacklevel=3)
    return replace(given, likelihood=likelihood, latent=latent, method=method, sample_kwargs=kwargs)
