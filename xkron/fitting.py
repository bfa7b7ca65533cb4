"""Fit a Kronecker GP to a labelled grid: validate, build the PyMC model, run inference.

:func:`fit` is what ``DataArray.kron.fit`` calls. The steps: check the input (before any
compute), put the data's axes in factor order, encode coordinates as numbers, fill in the
default priors, build the model (:mod:`xkron.model`) and run the MAP
(:func:`xkron.optimize.fit_map`) or ``pm.sample``. The result is a :class:`xkron.result.KronFit`.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import numpy as np
import pymc as pm
import scipy.linalg
import xarray as xr
from pymc_extras.prior import Prior

from xkron.collapsed import collapse_applies, sample_collapsed
from xkron.coords import CoordEncoding, encode_coord
from xkron.gp import KronPosterior, LatentPosterior
from xkron.grid import Factor, hull_factors, restrict
from xkron.kernels import Independent
from xkron.likelihoods import Gaussian, Likelihood, latent_scale_priors, resolve_likelihood
from xkron.model import SOLVERS, ModelSpec, build_model
from xkron.optimize import COMPILE_MODE, ConvergenceWarning, data_scale, fit_map
from xkron.priors import map_starts, period_steps, resolve_priors
from xkron.result import KronFit
from xkron.validation import align_cell_values, cell_locator, check_coords, check_data, normalize_kernels

__all__ = ["COMPILE_MODE", "DENSE_MAX_CELLS", "ConvergenceWarning", "fit"]

DENSE_MAX_CELLS = 3000
"""With ``solver="auto"``, the most observed cells for the exact dense (Cholesky) solver when
missing cells or per-cell noise rule out the Kronecker eigenbasis; above it the iterative one."""


def fit(
    da: xr.DataArray,
    kernels: Mapping,
    *,
    likelihood: str | Likelihood = "gaussian",
    latent: bool | None = None,
    collapse: bool | None = None,
    mask: xr.DataArray | None = None,
    amplitude: Any = None,
    noise: Any = None,
    noise_sd: Any = None,
    mean: Any = "constant",
    method: Literal["map", "nuts", "advi"] | None = None,
    restarts: int = 2,
    solver: Literal["auto", "kronecker", "dense", "iterative"] = "auto",
    solver_options: Mapping[str, Any] | None = None,
    subsample: Mapping[str, int] | None = None,
    batch_dims: str | Sequence[str] | None = None,
    shared: bool = False,
    errors: Literal["raise", "record"] = "raise",
    random_seed: int | None = None,
    progressbar: bool = True,
    **sample_kwargs,
) -> KronFit:
    """Fit an exact Kronecker-structured GP to a grid.

    The model is ``y ~ p(y | g⁻¹(f))`` with ``f = mean + GP(0, η² ∏_i k_i)``, one kernel
    factor ``k_i`` per dim (or group of dims). With Gaussian data (the default) ``f`` is
    integrated out exactly (Saatçi 2011, Alg. 16: one eigendecomposition per factor), and so
    is the gradient, also for rank-deficient factors. With any other likelihood (or
    ``latent=True``) the field is sampled in whitened form, ``f = mean + η (⊗L_i) v``
    (Alg. 14, :func:`xkron.model.build_latent_model`).

    Parameters
    ----------
    da : xarray.DataArray
        Data on a grid: real numbers (booleans for Bernoulli). Every dim needs a kernel.
        Coordinates may be numbers, ``datetime64`` or cftime; times are measured in days
        since 1970-01-01 (the units of time lengthscales). NaN cells are unobserved: they leave
        the likelihood, for any pattern (see ``solver`` for how the Gaussian marginal model
        does it). Predictions fill the gaps.
    kernels : mapping
        ``{dim: kernel}`` or ``{(dim, dim): kernel}`` for a factor that spans several dims
        (inputs are the Cartesian product, one lengthscale per dim), e.g.
        ``{"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad()}``.
    likelihood : str or Likelihood
        ``"gaussian"`` (default), ``"student_t"``, ``"poisson"``, ``"negative_binomial"``,
        ``"bernoulli"``, ``"binomial"``, ``"gamma"``, or an object such as
        ``xkron.Poisson(exposure=da_exposure)`` or ``xkron.Binomial(trials=10)``; links and
        default priors are listed in :mod:`xkron.likelihoods`.
    mask : xarray.DataArray of bool, optional
        True where a cell is observed, on some or all of the data's dims (a land mask on
        ``(latitude, longitude)`` broadcasts over time); its coordinates must equal the data's.
        Masked cells are unobserved, exactly like NaN cells (never imputed as parameters), and
        the data keep their values.
    latent : bool, optional
        Sample the whitened latent field even for Gaussian data (PyMC's ``LatentKron`` form,
        for models you extend). The default integrates it out, which is exact and samples
        the same posterior of hyperparameters and field far more efficiently: draw the
        field with :meth:`KronFit.sample` on the training grid, one exact field per posterior
        draw. Non-Gaussian likelihoods are always latent.
    collapse : bool, optional
        Latent Gaussian models with ``method="nuts"``: run NUTS on the hyperparameters alone,
        with the field integrated out exactly (the latent model's own covariance, jitter
        included), and draw ``v`` exactly given each kept draw (:mod:`xkron.collapsed`). The
        joint posterior of ``(θ, v)`` is the one NUTS on the latent model targets, reached
        several times faster (``tests/benchmarks/bench_latent.py``); ``fit.model`` is still the
        latent model, and the sample stats are those of NUTS on ``θ``. Default: on wherever it
        applies (a complete grid, equal noise, PyMC's sampler). ``False`` samples ``(θ, v)``
        jointly, as ``pm.gp.LatentKron`` does.
    amplitude, noise : None, float or Prior
        The overall amplitude ``η`` (the product kernel needs only one) and, for the Gaussian
        and Student-t likelihoods, the noise sd ``σ`` shared by all cells. ``None`` gives the
        default priors of :mod:`xkron.priors` (link-scale defaults for latent models:
        :mod:`xkron.likelihoods`); a number fixes the value; a
        :class:`pymc_extras.prior.Prior` sets any PyMC prior. Per-cell noise goes in ``noise_sd``.
    noise_sd : xarray.DataArray or float, optional
        Known measurement-error sd per cell (Gaussian likelihood only), on some or all of the
        data's dims (broadcast over the rest; coordinates must equal the data's). It adds in
        variance to the fitted ``σ``: the noise variance of cell ``j`` is ``σ² + noise_sd_j²``.
        Pass ``noise=0`` to use the known noise alone (then ``noise_sd`` must be > 0 at every
        observed cell). Predictions at new points add only ``σ²`` (``noise=True``).
    mean : {"constant", "zero"}, float or Prior
        Default ``"constant"``: one unknown constant (on the link scale) with a prior centred
        on the data. ``"zero"`` fixes it at 0 (for anomalies); a number fixes it there.
    method : {"map", "nuts", "advi"}, optional
        Default ``"map"`` for Gaussian data, ``"nuts"`` for latent models.

        - ``"map"`` (Gaussian, marginal only) maximises the PyMC model's log posterior with
          L-BFGS-B (:func:`xkron.optimize.fit_map`, on a scale-free unconstrained point: the fit
          is equivariant under scaling and shifting the data) from ``restarts + 1``
          data-driven starts and keeps the best optimum.
        - ``"nuts"`` runs ``pm.sample`` (``nuts_sampler="numpyro"``, ``"nutpie"`` or
          ``"blackjax"`` when installed: ``pip install xkron[jax]`` or ``xkron[nutpie]``).
          With PyMC's sampler every chain starts at one point (``init="adapt_diag"``, no
          jitter) unless ``initvals`` or ``init`` is given: the posterior of a grid is often
          multimodal, and jittered starts can land in minor modes (periodic factors
          especially). The point is the MAP for the marginal model; for a latent Gaussian
          model the exact marginal MAP and the posterior mean of the field given it; for
          other likelihoods data-driven starts on a crude link-scale field with ``v = 0``.
        - ``"advi"`` (latent models) fits mean-field ADVI with ``pm.fit`` (Adam, learning
          rate 0.01, ``n`` = 20,000 iterations: :data:`ADVI_DEFAULTS`) and draws from it
          (``draws``, default 1,000); ``fit.optimizer`` reports the final loss, and a
          ``ConvergenceWarning`` says when it was still falling. One gradient per iteration,
          so it scales to grids where NUTS is slow, but the mean-field approximation ignores
          the strong posterior coupling of the field and its hyperparameters: posterior sds
          come out too small, and the hyperparameters themselves can be far off (on the
          decadal-exceedance grid of ``tutorials/03`` the amplitude was a third of NUTS's and
          the lengthscales 20-35% shorter), while predicted means stay close. Use it for
          large grids and exploration, NUTS for final numbers.
    restarts : int
        Extra MAP starts (lengthscales climbing from 3 grid spacings to a quarter of the
        extent). The log-likelihood of real fields has several local optima.
    solver : {"auto", "kronecker", "dense", "iterative"}
        Linear algebra of the Gaussian marginal model. The grid is first cut to the inputs
        observed somewhere (whole missing slices drop out). Then:

        - ``"kronecker"``: exact and fastest (Saatçi 2011, Alg. 16); needs every remaining cell
          observed and equal noise: e.g. a static land mask inside one
          ``("latitude", "longitude")`` factor, or missing time steps.
        - ``"dense"``: exact, by Cholesky on the observed cells (:class:`xkron.dense.DenseSystem`);
          ``O(n³)`` time and ``O(n²)`` memory in the number ``n`` of observed cells.
        - ``"iterative"``: conjugate gradients with Kronecker products for any pattern and
          per-cell noise, log-determinants by stochastic Lanczos quadrature
          (:class:`xkron.iterative.IterativeSystem`): ``O(N Σ n_i)`` per iteration. Missing
          cells cost one Schur-complement solve on the missing set: few iterations for
          scattered gaps and for static ones such as a land mask (preconditioned exactly,
          :mod:`xkron.gaps`), more for large contiguous gaps that move. Accuracy: ``tol`` and
          ``probes`` in ``solver_options``, measured in ``tests/test_iterative.py``.
        - ``"auto"`` (default): ``"kronecker"`` when it applies, else ``"dense"`` up to
          :data:`DENSE_MAX_CELLS` observed cells, else ``"iterative"``.
    solver_options : dict, optional
        For ``"iterative"``: ``tol`` (CG relative residual, default 1e-8), ``probes``
        (Rademacher probes, default 8), ``seed`` (of the probes, default 0: fits are
        reproducible), ``variance_samples`` (Monte Carlo draws behind the predicted sd,
        default 128: sd error about ``1/√(2·draws)`` ≈ 6%, less where few cells are missing).
        Measured accuracy (``tests/test_iterative.py``, ``tests/test_observed.py``): on
        1,000-2,000 observed cells with 8 probes the log-likelihood is within 5e-4 relative of
        the exact value, gradients within 2.5% (0.2% unless a large gap is missing) and MAP
        hyperparameters within 0.5% of the dense optimum (16 probes); a complete grid with equal
        noise is exact. Use ``"dense"`` where it fits in memory for exact numbers.
    subsample : mapping of dim to int, optional
        Fit the hyperparameters on every k-th coordinate along these dims (``{"time": 4}``),
        then condition on the whole grid (:meth:`KronFit.condition`): for grids too big to fit
        directly, e.g. dask-backed fields larger than memory, which then stay lazy. Thinning
        (not averaging) keeps the noise level, and lengthscales are in coordinate units, so
        both carry over. Gaussian marginal fits of complete grids only.
    batch_dims : str or sequence of str, optional
        Dims along which the data hold separate fields (ensemble members, scenarios,
        variables, regions): no kernel for them. Each slice is fitted as an independent model
        (:mod:`xkron.batch`), and the result is a :class:`xkron.batch.BatchFit` whose
        ``params``, ``predict`` and ``sample`` carry the batch dims. The slices run as tasks on
        the active ``distributed.Client`` if there is one (PyMC with ``cores=1`` inside), else
        here one after the other; progress shows with dask's tools. ``random_seed + k`` seeds
        slice ``k``.
    shared : bool
        With ``batch_dims``: the slices are replicates that share every hyperparameter
        (independent fields given them): one exact fit with an
        :class:`xkron.kernels.Independent` factor over the batch dims; returns a ``KronFit``.
    errors : {"raise", "record"}
        With independent ``batch_dims``: a failing slice raises :class:`xkron.batch.BatchError`
        naming it (default), or with ``"record"`` its message goes to ``BatchFit.errors`` and
        its outputs are NaN.
    random_seed : int, optional
        Passed to PyMC.
    progressbar : bool
        Progress on stderr: for the MAP one line per start (start k of n, iterations, log
        posterior, elapsed time: :class:`xkron.progress.MapProgress`), PyMC's bars for sampling.
    **sample_kwargs
        Passed to ``pm.sample`` (``"nuts"``: ``draws``, ``tune``, ``chains``,
        ``target_accept``, ``nuts_sampler``, ...), the MAP (``"map"``:
        :data:`xkron.optimize.MAP_KWARGS`, ``method``, ``tol``, ``options`` of
        ``scipy.optimize.minimize`` and ``maxeval``) or ``pm.fit`` (``"advi"``). The MAP compiles
        one function per fit with a light PyTensor mode passed to it (:data:`COMPILE_MODE`);
        NUTS uses PyMC's default mode.

    Returns
    -------
    KronFit
        ``params``, ``model``, ``posterior``, ``predict(...)``, ``sample(...)``,
        ``to_netcdf(...)``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 8)
    >>> da = xr.DataArray(np.sin(6 * x)[:, None] * np.cos(3 * x)[None, :], coords={"a": x, "b": x})
    >>> result = fit(da, {"a": xkron.ExpQuad(), "b": xkron.ExpQuad()}, noise=0.01, progressbar=False)
    >>> sorted(result.params.data_vars)
    ['amplitude', 'ls_a', 'ls_b', 'mean', 'noise']
    """
    if subsample is not None:
        bad = [d for d in subsample if d not in da.dims or int(subsample[d]) < 1]
        if bad:
            raise ValueError(f"subsample needs data dims with a positive step; check {bad}")
        thinned = da.isel({d: slice(None, None, int(k)) for d, k in subsample.items()})
        return fit(
            thinned, kernels, likelihood=likelihood, latent=latent, collapse=collapse, mask=mask, amplitude=amplitude,
            noise=noise, noise_sd=noise_sd, mean=mean, method=method, restarts=restarts, solver=solver,
            solver_options=solver_options, batch_dims=batch_dims, shared=shared, errors=errors,
            random_seed=random_seed, progressbar=progressbar, **sample_kwargs,
        ).condition(da)  # fmt: skip
    if batch_dims is not None:
        from xkron.batch import fit_batch

        return fit_batch(
            da, kernels, batch_dims, shared=shared, errors=errors, random_seed=random_seed, progressbar=progressbar,
            likelihood=likelihood, latent=latent, collapse=collapse, mask=mask, amplitude=amplitude, noise=noise,
            noise_sd=noise_sd, mean=mean, method=method, restarts=restarts, solver=solver,
            solver_options=solver_options, **sample_kwargs,
        )  # fmt: skip
    likelihood = resolve_likelihood(likelihood)
    latent = _resolve_latent(likelihood, latent)
    if collapse is not None and not latent:
        raise ValueError("collapse= applies to latent models (latent=True); the marginal model is already collapsed")
    method = method or ("nuts" if latent else "map")
    allowed = ("nuts", "advi") if latent else ("map", "nuts")
    if method not in allowed:
        form = f"a latent model ({likelihood.name})" if latent else "the Gaussian marginal model"
        raise ValueError(f"method={method!r} is not available for {form}: use one of {allowed}")
    pairs = normalize_kernels(da, kernels)
    dims = tuple(d for factor_dims, _ in pairs for d in factor_dims)
    labelled = {d for fd, k in pairs if isinstance(k, Independent) for d in fd}  # replicates: any labels
    check_coords(da, [d for d in dims if d not in labelled])
    check_data(da, allow_bool=latent, allow_missing=True)
    likelihood = _with_noise(likelihood, noise)
    likelihood = _with_noise_sd(likelihood, noise_sd, latent)
    if solver not in ("auto", *SOLVERS):
        raise ValueError(f"solver={solver!r} is not one of {('auto', *SOLVERS)}")
    cells = {
        name: align_cell_values(da, dims, getattr(likelihood, name), name, allow_nan=name == "noise_sd")
        for name in likelihood.data_fields
        if getattr(likelihood, name) is not None
    }
    y = np.asarray(da.transpose(*dims).values, dtype=float)
    if mask is not None:
        mask = _aligned_mask(da, mask)
        y = np.where(mask.transpose(*dims).values, y, np.nan)
    seen = np.isfinite(y)
    if not seen.any():
        raise ValueError(f"every one of the {y.size} cells is NaN or masked: there is nothing to fit")
    likelihood.check(y, cell_locator(da, dims), cells)

    encodings: dict[str, CoordEncoding] = {}
    numeric: dict[str, np.ndarray] = {}
    for dim in dims:
        if dim in labelled:
            numeric[dim], encodings[dim] = np.arange(da.sizes[dim], dtype=float), CoordEncoding("index", "", None)
        else:
            numeric[dim], encodings[dim] = encode_coord(da, dim)
    factors = tuple(Factor(fd, kernel, tuple(numeric[d] for d in fd)) for fd, kernel in pairs)
    if not latent:
        factors = hull_factors(seen, factors)
        solver = _choose_solver(solver, seen, cells.get("noise_sd"), factors, cell_locator(da, dims))
        _check_known_only(likelihood, cells.get("noise_sd"), seen)
    y_seen, cells_seen = y[seen], {k: v[seen] for k, v in cells.items()}
    defaults = {**latent_scale_priors(likelihood, y_seen, cells_seen), **likelihood.default_priors(y_seen)}
    priors = resolve_priors(factors, mean, amplitude, defaults, likelihood.param_specs())
    n_free = sum(isinstance(p, Prior) for p in priors.values())
    if y_seen.size <= n_free:
        raise ValueError(
            f"only {y_seen.size} observed cells for {n_free} hyperparameters with priors: fix some "
            "(give numbers) or observe more cells"
        )
    spec = ModelSpec(
        factors,
        priors,
        likelihood.with_data(**cells),
        latent,
        solver="kronecker" if latent else solver,
        solver_options=dict(solver_options or {}),
    )
    y_model = y if latent else restrict(y, factors)
    model = build_model(y_model, spec)

    if method != "map" and not spec.free_names() and not latent:
        raise ValueError(f"method={method!r} needs at least one hyperparameter with a prior; all are fixed numbers")
    if latent:
        pymc_nuts = sample_kwargs.get("nuts_sampler", "pymc") == "pymc"
        collapse = _resolve_collapse(collapse, spec, y, method, pymc_nuts)
        if method == "nuts" and pymc_nuts and "initvals" not in sample_kwargs and "init" not in sample_kwargs:
            start = _latent_start(spec, y, cells, restarts, random_seed, progressbar, field=not collapse)
            sample_kwargs.update(initvals=start, init="adapt_diag")
        if collapse:
            sample_kwargs["initvals"] = {k: v for k, v in sample_kwargs.get("initvals", {}).items() if k != "v"}
            posterior, report = sample_collapsed(y, spec, random_seed, progressbar, sample_kwargs), None
        else:
            posterior, report = _fit_latent(model, method, random_seed, progressbar, sample_kwargs)
        draws = posterior.posterior.to_dataset()
        # Keep (chain, draw) even when every hyperparameter is fixed: the draws of v remain.
        values = draws[[n for n in spec.free_names() if n in draws]].assign_coords(chain=draws.chain, draw=draws.draw)
        return KronFit.from_parts(
            da, spec, encodings, values, method, posterior=posterior, optimizer=report, model=model, mask=mask
        )

    posterior, optimizer = None, None
    wants_map = method == "map" or ("initvals" not in sample_kwargs and "init" not in sample_kwargs)
    if wants_map and not spec.free_names():
        values, optimizer = {}, {"success": True, "message": "no free parameters", "logp": np.nan, "n_starts": 0}
    elif wants_map:
        starts = map_starts(factors, spec.priors, y_model, restarts + 1)
        map_kwargs = sample_kwargs if method == "map" else {}
        values, optimizer = _fit_map(model, spec, starts, y_model, progressbar, map_kwargs)
    if method == "nuts":
        if optimizer is not None:
            # Every chain starts at the MAP, without jitter: the posterior of a grid is often
            # multimodal (periodic factors especially), and jittered starts land in minor modes.
            sample_kwargs.update(initvals=values, init="adapt_diag")
        posterior = pm.sample(model=model, random_seed=random_seed, progressbar=progressbar, **sample_kwargs)
        values = posterior.posterior.to_dataset()[spec.free_names()]
    return KronFit.from_parts(
        da, spec, encodings, values, method, posterior=posterior, optimizer=optimizer, model=model, mask=mask
    )


def _choose_solver(requested: str, seen: np.ndarray, noise_sd, factors, where) -> str:
    """The marginal model's solver: ``requested``, or by cost for ``"auto"`` (see :func:`fit`).

    ``factors`` are already cut to the inputs observed somewhere (:func:`xkron.grid.hull_factors`).
    """
    inside = restrict(seen, factors)
    sd = None if noise_sd is None or np.ndim(noise_sd) == 0 else restrict(noise_sd, factors)[inside]
    equal_noise = sd is None or bool(np.all(sd == sd.flat[0]))
    kronecker = bool(inside.all()) and equal_noise
    if requested == "kronecker" and not kronecker:
        kept = [np.isin(np.arange(f.full_size), f.subset) if f.subset is not None else None for f in factors]
        hull = np.ones([f.full_size for f in factors], dtype=bool)
        for axis, k in enumerate(kept):
            if k is not None:
                hull &= k.reshape([-1 if a == axis else 1 for a in range(len(kept))])
        holes = hull.reshape(seen.shape) & ~seen
        reason = (
            f"data has {int(holes.sum())} NaN or masked cell(s) inside the grid of observed inputs, at {where(holes)}"
            if holes.any()
            else "noise_sd differs between cells"
        )
        raise ValueError(
            f"solver='kronecker' needs a complete grid of observed cells with equal noise, but {reason}. "
            "Use solver='auto' (dense or iterative, both handle any pattern), or fill the cells "
            "(da.interpolate_na(dim))."
        )
    if requested != "auto":
        return requested
    if kronecker:
        return "kronecker"
    return "dense" if int(inside.sum()) <= DENSE_MAX_CELLS else "iterative"


def _aligned_mask(da: xr.DataArray, mask) -> xr.DataArray:
    """The user's mask as a bool DataArray over all of the data's dims (checked, not reindexed)."""
    if not isinstance(mask, xr.DataArray) or mask.dtype != bool:
        raise TypeError(f"mask must be a boolean xarray.DataArray (True = observed), not {type(mask).__name__}")
    values = align_cell_values(da, da.dims, mask, "mask").astype(bool)
    return xr.DataArray(values, coords=da.coords, dims=da.dims, name="mask")


def _with_noise_sd(likelihood: Likelihood, noise_sd, latent: bool) -> Likelihood:
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
    if noise_sd is None or isinstance(likelihood.noise, Prior) or likelihood.noise is None:
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


def _resolve_latent(likelihood: Likelihood, latent: bool | None) -> bool:
    if isinstance(likelihood, Gaussian):
        return bool(latent)
    if latent is False:
        raise ValueError(
            f"latent=False needs Gaussian data: a {likelihood.name} likelihood has no closed-form marginal; "
            "leave latent unset"
        )
    return True


def _with_noise(likelihood: Likelihood, noise) -> Likelihood:
    """Route ``fit(noise=...)`` to the likelihood's ``noise`` hyperparameter."""
    if noise is None:
        return likelihood
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


def _latent_start(spec: ModelSpec, y, cells, restarts, random_seed, progressbar, field: bool = True) -> dict:
    """Where every NUTS chain of a latent model starts (no jitter, as for the marginal model).

    Complete Gaussian data: the exact marginal MAP of the hyperparameters (cheap, and it
    avoids the minor modes of periodic factors that jittered starts fall into) and the
    whitened posterior mean of ``f`` given them, ``v = (⊗L_i)⁻¹ (E[f | y] − μ) / η``.
    Otherwise: the data-driven starts of :func:`xkron.priors.map_starts` computed on a crude
    link-scale field (missing cells filled with its mean), and ``v = 0``. ``field=False``: the
    hyperparameters only (the collapsed sampler draws ``v`` itself).
    """
    per_cell_noise = np.ndim(getattr(spec.likelihood, "noise_sd", None)) > 0
    if not isinstance(spec.likelihood, Gaussian) or not np.isfinite(y).all() or per_cell_noise:
        rough = spec.likelihood.rough_field(y, cells)
        rough = np.where(np.isfinite(rough), rough, np.mean(rough[np.isfinite(rough)]))
        return {**map_starts(spec.factors, spec.priors, rough, 1)[0], "v": np.zeros([f.size for f in spec.factors])}
    values = {}
    if spec.free_names():  # else every hyperparameter is fixed: only v is sampled
        marginal = replace(spec, latent=False)
        starts = map_starts(spec.factors, spec.priors, y, restarts + 1)
        values, _ = _fit_map(build_model(y, marginal), marginal, starts, y, progressbar, {})
    if not field:
        return values
    full = {**spec.fixed(), **values}
    posterior = KronPosterior.condition(y, spec.factors, full)
    # E[f | y] − μ = (y − μ) − σ² α, with α = (K + σ²I)⁻¹ (y − μ).
    alpha = posterior.eigen.from_eigenbasis(posterior.alpha_tilde)
    centred = (y.reshape(alpha.shape) - full["mean"]) - full["noise"] ** 2 * alpha
    latent = LatentPosterior.condition(np.zeros(alpha.shape), spec.factors, full)
    v = centred
    for axis, L in enumerate(latent.chols):
        v = np.moveaxis(scipy.linalg.solve_triangular(L, np.moveaxis(v, axis, 0), lower=True), 0, axis)
    return {**values, "v": v / full["amplitude"]}


ADVI_DEFAULTS = {"n": 20_000, "learning_rate": 0.01}
"""Mean-field ADVI: iterations, and the learning rate of its Adam optimiser. PyMC's default
(adagrad, learning rate 1e-3) was still drifting after 100,000 iterations on a 1300-cell
binomial grid, where Adam at 0.01 settled within about 10,000."""


def _fit_latent(model, method, random_seed, progressbar, kwargs):
    """NUTS (``pm.sample``) or mean-field ADVI (``pm.fit`` then draws) for a latent model.

    Returns the posterior and, for ADVI, a report of the optimisation: the mean loss (negative
    ELBO) over the last tenth of the iterations, and the fall of a straight line fitted to the
    loss over the second half (the run is flagged when that fall is significant and > 0.1%).
    """
    if method == "nuts":
        return pm.sample(model=model, random_seed=random_seed, progressbar=progressbar, **kwargs), None
    draws = kwargs.pop("draws", 1000)
    kwargs.setdefault("n", ADVI_DEFAULTS["n"])
    kwargs.setdefault("obj_optimizer", pm.adam(learning_rate=ADVI_DEFAULTS["learning_rate"]))
    approx = pm.fit(method="advi", model=model, random_seed=random_seed, progressbar=progressbar, **kwargs)
    loss = np.asarray(approx.hist, dtype=float)
    # A straight-line fit to the loss over the second half of the run: still falling if the
    # fall it predicts over that half is both significant (t > 3) and above 0.1% of the loss.
    half = loss[len(loss) // 2 :]
    steps = np.arange(len(half)) - (len(half) - 1) / 2
    slope = float(steps @ (half - half.mean()) / max(steps @ steps, 1e-300))
    resid = half - half.mean() - slope * steps
    se = float(np.sqrt(resid @ resid / max(len(half) - 2, 1) / max(steps @ steps, 1e-300)))
    fall = -slope * len(half)
    last = float(np.mean(loss[-max(1, len(loss) // 10) :]))
    report = {
        "method": "advi",
        "n": len(loss),
        "loss": last,
        "fall_over_second_half": fall,
        "success": bool(np.isfinite(last) and not (fall > 3 * se * len(half) and fall > 1e-3 * abs(last))),
    }
    if not report["success"]:
        warnings.warn(
            f"ADVI's loss was still falling over the second half of its {len(loss)} iterations "
            f"(by {fall:.4g}, {fall / abs(last):.2%}): "
            "increase n (or the learning rate, obj_optimizer=pm.adam(learning_rate=...)), or use method='nuts'",
            ConvergenceWarning,
            stacklevel=3,
        )
    return approx.sample(draws, random_seed=random_seed), report


def _fit_map(model, spec: ModelSpec, starts, y, progressbar, kwargs):
    """:func:`xkron.optimize.fit_map` from every start: the mean steps in units of the data's sd, periods
    in units of their resolution."""
    steps = {"scales": {"mean": data_scale(y)}, "rel_scales": period_steps(spec.factors, y)}
    values, report = fit_map(model, starts, **steps, progressbar=progressbar, stacklevel=3, **kwargs)
    return {name: float(values[name]) for name in spec.free_names()}, report
