"""Fit a Kronecker GP to a labelled grid: validate, prepare, run the inference, label the result.

:func:`fit` is what ``DataArray.kron.fit`` calls. Its keywords become one checked
:class:`~xkron.inference.options.FitOptions` (:func:`xkron.inference.arguments.check_call`,
before any compute); :func:`fit_with` then prepares the problem
(:func:`xkron.inference.prepare.prepare`: axes in factor order, coordinates encoded, the solver
chosen, default priors), runs the inference of its form and method
(:data:`xkron.inference.run.RUNNERS`) and assembles a :class:`xkron.results.fit.KronFit`. A
subsample and batch dims run :func:`fit_with` again with the same options object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import xarray as xr

from xkron.inference.arguments import check_call
from xkron.inference.options import FitOptions, thin_for_subsample
from xkron.inference.prepare import prepare
from xkron.inference.run import run_inference
from xkron.linalg.lazy import is_dask
from xkron.results.batch import BatchFit, fit_batch
from xkron.results.fit import KronFit
from xkron.spec.likelihoods import Likelihood

__all__ = ["fit", "fit_with"]


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
    method: Literal["map", "nuts", "advi", "laplace"] | None = None,
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
    (Alg. 14, :func:`xkron.models.build.build_latent_model`).

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
        default priors are listed in :mod:`xkron.spec.likelihoods`.
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
        included), and draw ``v`` exactly given each kept draw (:mod:`xkron.inference.collapsed`). The
        joint posterior of ``(θ, v)`` is the one NUTS on the latent model targets, reached
        several times faster (``tests/benchmarks/bench_latent.py``); ``fit.model`` is still the
        latent model, and the sample stats are those of NUTS on ``θ``. Default: on wherever it
        applies (a complete grid, equal noise, PyMC's sampler). ``False`` samples ``(θ, v)``
        jointly, as ``pm.gp.LatentKron`` does.
    amplitude, noise : None, float or Prior
        The overall amplitude ``η`` (the product kernel needs only one) and, for the Gaussian
        and Student-t likelihoods, the noise sd ``σ`` shared by all cells. ``None`` gives the
        default priors of :mod:`xkron.spec.priors` (link-scale defaults for latent models:
        :mod:`xkron.spec.likelihoods`); a number fixes the value; a
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
    method : {"map", "nuts", "advi", "laplace"}, optional
        Default ``"map"`` for Gaussian data; for latent models ``"nuts"`` on grids of at most
        :data:`~xkron.settings.LAPLACE_DEFAULT_CELLS` (5,000) cells and ``"laplace"`` above.

        - ``"map"`` (Gaussian, marginal only) maximises the PyMC model's log posterior with
          L-BFGS-B (:func:`xkron.inference.optimize.fit_map`, on a scale-free unconstrained point: the fit
          is equivariant under scaling and shifting the data) from ``restarts + 1``
          data-driven starts and keeps the best optimum.
        - ``"nuts"`` runs ``pm.sample`` (``nuts_sampler="numpyro"``, ``"nutpie"`` or
          ``"blackjax"`` when installed: ``pip install xkron[jax]`` or ``xkron[nutpie]``).
          With PyMC's sampler every chain starts at one point (``init="adapt_diag"``, no
          jitter) unless ``initvals`` or ``init`` is given: the posterior of a grid is often
          multimodal, and jittered starts can land in minor modes (periodic factors
          especially). The point is the MAP for the marginal model; for a latent Gaussian
          model the exact marginal MAP and the posterior mean of the field given it; for
          other likelihoods data-driven starts on a crude link-scale field. Latent models are
          sampled in partially centred coordinates (:mod:`xkron.inference.centred_nuts`: the same
          posterior, the field scaled per eigenmode by the likelihood's typical curvature, a free
          mean sheared out of it, and the hyperparameters' initial metric from their curvature at
          the start), which on the seed's
          Poisson grid needs a quarter of the gradients per draw of the whitened field; the
          draws of ``v`` are returned as before. ``init="whitened"`` samples the whitened ``(θ, v)``
          instead, ``init="laplace"`` with the Laplace metric (:mod:`xkron.inference.laplace_metric`).
        - ``"laplace"`` (latent models) integrates the field out by the Laplace approximation
          (Newton's mode with Kronecker CG solves, :mod:`xkron.linalg.laplace`) and maximises the
          log posterior of the hyperparameters under that marginal, with the MAP's optimiser and
          starts. ``predict`` and ``sample`` use the Gaussian approximation of ``f`` at the
          mode (:mod:`xkron.posterior.laplace`): exact for a Gaussian likelihood, and as close as
          the likelihood is to Gaussian in ``f`` otherwise. ``fit.optimizer["laplace"]``
          reports the final mode search.
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
        extent). The log-likelihood of real fields has several local optima. A whole number
        >= 0; a value other than the default where no MAP runs (ADVI, NUTS from given
        ``initvals``/``init``, non-Gaussian likelihoods) is warned about.
    solver : {"auto", "kronecker", "dense", "iterative"}
        Linear algebra of the Gaussian marginal model. The grid is first cut to the inputs
        observed somewhere (whole missing slices drop out). Then:

        - ``"kronecker"``: exact and fastest (Saatçi 2011, Alg. 16); needs every remaining cell
          observed and equal noise: e.g. a static land mask inside one
          ``("latitude", "longitude")`` factor, or missing time steps.
        - ``"dense"``: exact, by Cholesky on the observed cells (:class:`xkron.linalg.dense.DenseSystem`);
          ``O(n³)`` time and ``O(n²)`` memory in the number ``n`` of observed cells.
        - ``"iterative"``: conjugate gradients with Kronecker products for any pattern and
          per-cell noise, log-determinants by stochastic Lanczos quadrature: ``O(N Σ n_i)`` per
          iteration. Two formulations (``solver_options={"formulation": ...}``; ``"auto"``
          picks the smaller set and ``repr(fit)`` says which ran and how many CG iterations it
          took): the Schur complement on the *missing* cells
          (:class:`xkron.linalg.iterative.IterativeSystem`; few iterations for scattered gaps
          and static ones such as a land mask, preconditioned exactly by :mod:`xkron.linalg.gaps`)
          or CG on the *observed* cells (:class:`xkron.linalg.observed_cg.ObservedSystem`;
          preconditioned by the leading modes of the complete grid, :mod:`xkron.linalg.spectral`),
          for grids that are mostly missing (land plus clouds). Accuracy: ``tol`` and ``probes``
          in ``solver_options``; ``fit.optimizer["solver"]["logp_se"]`` states the Monte Carlo
          error of the log-likelihood at the optimum.
        - ``"auto"`` (default): ``"kronecker"`` when it applies, else ``"dense"`` up to
          :data:`DENSE_MAX_CELLS` observed cells, else ``"iterative"``.
    solver_options : dict, optional
        For ``"iterative"``: ``tol`` (CG relative residual, default 1e-8), ``probes``
        (probes of the stochastic estimates; default 8 on the missing cells, 32 on the observed
        ones, whose gradient is wholly estimated), ``formulation`` (``"auto"``, ``"missing"``,
        ``"observed"``), ``seed`` (of the probes, default 0: fits are reproducible),
        ``variance`` (``"auto"``, default: ``"lanczos"`` up to 10,000 observed cells, ``"sampled"``
        above; ``"sampled"``: a control-variate Monte Carlo estimate of the predicted sd from
        ``variance_samples`` = 128 draws, about 6% error; ``"lanczos"``: by Lanczos with a
        rigorous per-cell bracket, within ``variance_tol`` = 1% of the exact sd, or a warning
        stating the bound reached within ``variance_steps`` steps: fine up to ten thousand or so
        observed cells, short of its budget on tens of thousands today). The log-likelihood's
        Monte Carlo standard error at the optimum is in ``fit.optimizer["solver"]``; measured
        accuracy against the dense GP is in ``tests/benchmarks/README.md``; a complete grid with
        equal noise is exact. Use ``"dense"`` where it fits in memory for exact numbers. A key no
        solver reads is an error, as are keys for another solver than an explicit ``solver``,
        and ``solver``/``solver_options`` for latent models (which always use the Kronecker
        factorisation); with ``"auto"``, options its choice does not read are warned about.
    subsample : mapping of dim to int, optional
        Fit the hyperparameters on every k-th coordinate along these dims (``{"time": 4}``),
        then condition on every observed cell of the whole grid (:meth:`KronFit.condition`):
        for grids too big to fit directly. Thinning (not averaging) keeps the noise level, and
        lengthscales are in coordinate units, so both carry over. Gappy grids work as in a
        direct fit: NaN cells and cells ``mask`` hides are unobserved, and a per-cell
        ``noise_sd`` applies; ``mask`` and ``noise_sd`` are thinned with the data for the fit
        and taken whole for the conditioning, whose solver is chosen for the whole grid (see
        :meth:`KronFit.condition`). A dask-backed field has its thinned grid read for the fit;
        the whole grid stays lazy when it is complete with equal noise (and ``predict`` streams
        chunk by chunk), else it is read when ``predict`` or ``sample`` first needs the
        posterior. Gaussian marginal fits, and latent fits by ``method="laplace"`` or ``"inla"``
        (the Laplace approximation of the field on the whole grid at the fitted hyperparameters;
        exposure and trials thinned and taken whole like ``mask``); not with independent
        ``batch_dims``; a step must keep at least 2 coordinates, and the thinned grid at least one
        observed cell. The whole grid's values, ``mask``, ``noise_sd``, exposure and trials are
        checked before fitting (numpy-backed inputs).
    batch_dims : str or sequence of str, optional
        Dims along which the data hold separate fields (ensemble members, scenarios,
        variables, regions): no kernel for them. Each slice is fitted as an independent model
        (:mod:`xkron.inference.batch`), and the result is a :class:`xkron.BatchFit` whose
        ``params``, ``predict`` and ``sample`` carry the batch dims. The slices run as tasks on
        the active ``distributed.Client`` if there is one (PyMC with ``cores=1`` inside), else
        here one after the other; progress shows with dask's tools. ``random_seed + k`` seeds
        slice ``k``.
    shared : bool
        With ``batch_dims``: the slices are replicates that share every hyperparameter
        (independent fields given them): one exact fit with an
        :class:`xkron.spec.kernels.Independent` factor over the batch dims; returns a ``KronFit``.
        An error without ``batch_dims``.
    errors : {"raise", "record"}
        With independent ``batch_dims``: a failing slice raises :class:`xkron.BatchError`
        naming it (default), or with ``"record"`` its message goes to ``BatchFit.errors`` and
        its outputs are NaN. Every slice is checked before any is fitted: if every slice is
        refused the error itself is raised. ``"record"`` without ``batch_dims`` is an error.
    random_seed : int, optional
        Passed to PyMC; a whole number >= 0.
    progressbar : bool
        Progress on stderr: for the MAP one line per start (start k of n, iterations, log
        posterior, elapsed time: :class:`xkron.progress.MapProgress`), PyMC's bars for sampling.
    **sample_kwargs
        Passed to ``pm.sample`` (``"nuts"``: ``draws``, ``tune``, ``chains``,
        ``target_accept``, ``nuts_sampler``, ...), the MAP (``"map"`` and ``"laplace"``:
        :data:`xkron.inference.optimize.MAP_KWARGS`, ``method``, ``tol``, ``options`` of
        ``scipy.optimize.minimize`` and ``maxeval``) or ``pm.fit`` (``"advi"``). Checked before
        anything is compiled (:func:`xkron.inference.arguments.accepted_kwargs`; for NUTS also the step's
        own keywords such as ``target_accept`` and ``max_treedepth``): an unknown keyword is a
        ``TypeError`` with a "did you mean". The MAP compiles one function per fit with a light
        PyTensor mode passed to it (:data:`COMPILE_MODE`); NUTS uses PyMC's default mode.

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
    given = dict(locals())  # every keyword, as given: one options object from here on
    del given["da"], given["kernels"]
    return fit_with(da, kernels, check_call(da, FitOptions(**given)))


def fit_with(da: xr.DataArray, kernels: Mapping, options: FitOptions) -> KronFit | BatchFit:
    """:func:`fit` with its options checked: prepare the problem, run the inference its form and
    method call for (:data:`xkron.inference.run.RUNNERS`), label the result.

    A subsample fits on the thinned grid and conditions on the whole one; batch dims fit
    slices (or one shared fit) through this same function, with the same options object.
    """
    if options.subsample is not None:
        return _fit_subsample(da, kernels, options)
    if options.batch_dims is not None:
        return fit_batch(da, kernels, options, fit=fit_with)
    prep = prepare(da, kernels, options)
    result = run_inference(prep, options)
    return KronFit.from_parts(
        da,
        prep.spec,
        prep.encodings,
        result.values,
        options.method,
        posterior=result.posterior,
        optimizer=result.optimizer,
        model=result.model,
        mask=prep.mask,
    )


def _fit_subsample(da: xr.DataArray, kernels: Mapping, options: FitOptions) -> KronFit:
    """Fit on every k-th coordinate, then condition on every observed cell of the whole grid.

    A dask-backed subsample is read once here (the fit needs its values); where it has NaN cells
    the whole grid has them too, and its conditioning reads it when a prediction first needs it
    (``condition(gaps=True)``), else the whole grid stays lazy.
    """
    steps = {d: int(k) for d, k in options.subsample.items()}
    thinned = thin_for_subsample(da, steps)
    gaps = None
    if is_dask(thinned.data):
        thinned = thinned.compute()
        gaps = True if bool(np.isnan(np.asarray(thinned.values, dtype=float)).any()) else None
    thin = fit_with(thinned, kernels, options.thinned(steps))
    if options.latent:  # Laplace or INLA: the field given the fitted hyperparameters on every cell
        return thin.condition(da, mask=options.mask, likelihood=options.likelihood)
    return thin.condition(da, mask=options.mask, noise_sd=options.known_noise_sd, gaps=gaps)
