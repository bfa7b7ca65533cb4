"""Running the inference a fit asks for on a prepared problem: MAP, Laplace, INLA, NUTS (joint or collapsed) or ADVI.

Input: the :class:`~xkron.inference.prepare.Prepared` problem and the method; output: the
hyperparameter values (or draws), the ArviZ posterior, the optimiser's report and the PyMC
model. :func:`xkron.fit` labels them as a :class:`xkron.KronFit`.
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import pymc as pm
import xarray as xr

from xkron.errors import ConvergenceWarning
from xkron.inference.centred_nuts import (
    CENTRED_OFF,
    NUTS_STEP_KWARGS,
    centred_applies,
    centred_sampler,
    whitened_posterior,
)
from xkron.inference.coarse import coarse_problem
from xkron.inference.collapsed import sample_collapsed
from xkron.inference.diagnose import solver_report
from xkron.inference.inla import explore
from xkron.inference.laplace_metric import KronLaplacePotential, chol_whitened, laplace_metric
from xkron.inference.optimize import data_scale, fit_map
from xkron.inference.options import FitOptions
from xkron.inference.prepare import Prepared
from xkron.models.build import build_model
from xkron.posterior.conditional import KronPosterior
from xkron.posterior.laplace import laplace_mode
from xkron.settings import ADVI_DEFAULTS, NUTS_LAPLACE_TARGET_ACCEPT
from xkron.spec.likelihoods import Gaussian
from xkron.spec.modelspec import ModelSpec
from xkron.spec.priors import map_starts, period_steps

__all__ = ["ADVI_DEFAULTS", "RUNNERS", "Inference", "run_inference"]


class Inference(NamedTuple):
    """What a fit's inference returns (:func:`run_inference`)."""

    values: Any
    """Hyperparameter values: a dict (MAP) or a Dataset of draws on ``(chain, draw)``."""
    posterior: xr.DataTree | None
    """PyMC's result with the draws (``None`` for a MAP)."""
    optimizer: dict | None
    """The MAP's or ADVI's report."""
    model: pm.Model


def run_inference(prep: Prepared, options: FitOptions) -> Inference:
    """The inference ``options`` ask for on the prepared problem (see :func:`xkron.fit`).

    Dispatches on the model's form (``"marginal"``, ``"latent"`` or, for a latent Gaussian
    model sampled with the field integrated out, ``"collapsed"``) and the method, from
    :data:`RUNNERS`. The PyMC model is built first (also for the collapsed sampler, which
    returns the latent model as ``fit.model``).
    """
    form = "collapsed" if prep.collapse else options.form
    runner = RUNNERS[form, options.method]
    model = build_model(prep.y_model, prep.spec, laplace=options.method in ("laplace", "inla"))
    return runner(prep, options, model, dict(options.sample_kwargs))


def _map(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """The marginal model's MAP from ``restarts + 1`` data-driven starts (:func:`_fit_map`)."""
    spec = prep.spec
    if not spec.free_names():
        report = {"success": True, "message": "no free parameters", "logp": np.nan, "n_starts": 0}
        return Inference({}, None, report, model)
    coarse = _coarse_marginal(spec, prep.y_model) if spec.solver.name == "iterative" else None
    if coarse is not None:  # its optimum is the one start on the whole grid
        c_spec, c_y = coarse
        c_starts = map_starts(c_spec.factors, c_spec.priors, c_y, options.restarts + 1)
        c_values, c_report = _fit_map(build_model(c_y, c_spec), c_spec, c_starts, c_y, options.progressbar, kwargs)
        starts = [c_values]
    else:
        starts = map_starts(spec.factors, spec.priors, prep.y_model, options.restarts + 1)
    values, optimizer = _fit_map(model, spec, starts, prep.y_model, options.progressbar, kwargs)
    if coarse is not None:
        shape = [f.size for f in coarse[0].factors]
        optimizer = {**optimizer, "coarse": {"shape": shape, "n_eval": c_report.get("n_eval"), "values": c_values}}
    checked = solver_report(spec, prep.y_model, values)
    if checked is not None:
        optimizer = {**optimizer, "solver": checked}
    return Inference(values, None, optimizer, model)


def _coarse_marginal(spec: ModelSpec, y: np.ndarray):
    """The thinned copy whose optimum starts an iterative-solver MAP (:func:`xkron.inference.coarse.coarse_problem`),
    on the same solver (cheaper there than the dense one: 0.02 against 0.09 s per evaluation at 1,000 observed
    cells of the coarse benchmark grid); ``None`` with per-cell known noise (thinned with the data only along the
    factors) or where nothing thins."""
    if spec.per_cell_noise:
        return None
    coarse = coarse_problem(spec, y, {})
    return None if coarse is None else coarse[:2]


def _marginal_nuts(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """NUTS on the marginal model; every chain starts at the MAP unless ``initvals``/``init`` are given."""
    optimizer = None
    if "initvals" not in kwargs and "init" not in kwargs:
        start = _map(prep, options, model, {})
        optimizer = start.optimizer
        # Every chain starts at the MAP, without jitter: the posterior of a grid is often
        # multimodal (periodic factors especially), and jittered starts land in minor modes.
        kwargs.update(initvals=start.values, init="adapt_diag")
    posterior = pm.sample(model=model, random_seed=options.random_seed, progressbar=options.progressbar, **kwargs)
    return Inference(posterior.posterior.to_dataset()[prep.spec.free_names()], posterior, optimizer, model)


def _latent(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """NUTS on ``(θ, v)`` jointly, or ADVI, for a latent model.

    NUTS runs on the partially centred field where :func:`~xkron.inference.centred_nuts.centred_applies`
    (the default; its draws of ``v`` are the whitened model's, ``u`` is dropped) and on the whitened
    ``v`` from :func:`_latent_start` with ``init="whitened"``.
    ``init="laplace"`` (NUTS on a non-Gaussian likelihood, checked by
    :func:`xkron.inference.arguments.check_call`) starts every chain at the Laplace MAP and mode and,
    where the amplitude's Laplace posterior is narrow, samples with the metric of the Laplace
    approximation (:mod:`xkron.inference.laplace_metric`; ``target_accept`` defaults to
    :data:`~xkron.settings.NUTS_LAPLACE_TARGET_ACCEPT` there); its report is ``"laplace_metric"``.
    It is not the default: on the seed grid with Poisson counts it gave fewer effective draws of the
    amplitude per second than either (``tests/benchmarks/bench_latent.py``, task 5).
    """
    report, sampled = None, model
    if options.method == "nuts":
        init = kwargs.get("init")
        if init == "laplace":
            del kwargs["init"]
            report = _laplace_chains(prep, options, model, kwargs)
        elif centred_applies(prep.spec, prep.pymc_nuts, kwargs):
            hyper = _latent_start(prep.spec, prep.y, prep.cells, options.restarts, options.random_seed,
                                  options.progressbar, field=False)  # fmt: skip
            hyper.pop("v", None)
            rough = _rough_field(prep.spec, prep.y, prep.cells)
            sampled, report = centred_sampler(prep.y, prep.spec, hyper, rough, options.random_seed, kwargs)
        else:
            if init == CENTRED_OFF:
                del kwargs["init"]
            _start_latent_chains(prep, options, kwargs, field=True)
    posterior, advi = _fit_latent(sampled, options.method, options.random_seed, options.progressbar, kwargs)
    if sampled is not model:  # u is the sampler's coordinate: the posterior holds the whitened model's v
        posterior = whitened_posterior(posterior, prep.spec, report["nuts_field"]["curvature"])
    return Inference(_draws(posterior, prep.spec), posterior, advi or report, model)


def _laplace_chains(prep: Prepared, options: FitOptions, model, kwargs: dict) -> dict:
    """The Laplace MAP (:func:`_laplace`), then every chain's start there and PyMC's NUTS with its metric
    (``initvals`` given by the user win over the Laplace start)."""
    laplace_model = build_model(prep.y, prep.spec, laplace=True)
    # One start: the metric needs a point near the bulk, and NUTS explores from there.
    found = _laplace(prep, replace(options, restarts=0), laplace_model, {})
    metric = laplace_metric(prep.y, prep.spec, laplace_model, model, dict(found.values))
    kwargs["initvals"] = {**metric.start, **kwargs.get("initvals", {})}
    if not metric.fits:
        kwargs["init"] = "adapt_diag"
    else:
        rng = np.random.default_rng(options.random_seed)
        nuts = {
            "target_accept": NUTS_LAPLACE_TARGET_ACCEPT,
            **{k: kwargs.pop(k) for k in NUTS_STEP_KWARGS if k in kwargs},
        }
        potential = KronLaplacePotential(metric.metric, rng=rng)
        kwargs["step"] = pm.NUTS(model=model, potential=potential, rng=rng, **nuts)
    return {"laplace_metric": metric.report, "laplace_map": found.optimizer}


def _laplace(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """The MAP of the hyperparameters under the Laplace marginal (``model``: ``build_laplace_model``'s).

    Starts and step scales come from a crude link-scale field (the likelihood's ``rough_field``,
    missing cells at its mean), as for the latent NUTS start. Grids over
    :data:`~xkron.settings.LAPLACE_COARSE_CELLS` cells fit a thinned copy from those starts first
    (:func:`xkron.inference.coarse.coarse_problem`) and the whole grid from its optimum alone
    (reported under ``"coarse"``). The report adds ``"laplace"``: the
    mode search at the optimum (Newton steps, convergence, CG iterations of its largest solve).
    """
    spec = prep.spec
    values, optimizer = {}, {"success": True, "message": "no free parameters", "logp": np.nan, "n_starts": 0}
    if spec.free_names():
        rough = _rough_field(spec, prep.y, prep.cells)
        # log q(y | θ) ≤ Σ_c log p(y_c | f̂_c) ≤ n · log_density_max (0 for a probability): skip wild trial points.
        top = spec.likelihood.log_density_max
        bound = None if top is None else top * np.count_nonzero(np.isfinite(prep.y))
        coarse = coarse_problem(spec, prep.y, prep.cells)
        if coarse is not None:  # its optimum is the one start on the whole grid
            c_spec, c_y, c_cells = coarse
            c_rough = _rough_field(c_spec, c_y, c_cells)
            c_starts = map_starts(c_spec.factors, c_spec.priors, c_rough, options.restarts + 1)
            c_model = build_model(c_y, c_spec, laplace=True)
            c_values, c_report = _fit_map(c_model, c_spec, c_starts, c_rough, options.progressbar, kwargs, bound)
            starts = [{**c_values}]
        else:
            starts = map_starts(spec.factors, spec.priors, rough, options.restarts + 1)
        values, optimizer = _fit_map(model, spec, starts, rough, options.progressbar, kwargs, bound)
        if coarse is not None:
            shape = [f.size for f in coarse[0].factors]
            optimizer = {**optimizer, "coarse": {"shape": shape, "n_eval": c_report.get("n_eval"), "values": c_values}}
    mode = laplace_mode(prep.y, spec, {**spec.fixed(), **values})
    laplace = {"newton_steps": mode.newton_steps, "converged": mode.converged, "cg_iterations": mode.cg.iterations}
    return Inference(values, None, {**optimizer, "laplace": laplace}, model)


def _inla(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """The Laplace MAP (:func:`_laplace`), then the CCD design around it (:func:`xkron.inference.inla.explore`).

    The design points are the draws on ``(chain, draw)`` (one chain); their weights are the
    posterior's ``sample_stats["weight"]`` (with ``log_posterior``), which predictions and sample
    fields mix by. The report adds ``"inla"`` (:class:`~xkron.inference.inla.Explored`'s).
    """
    start = _laplace(prep, options, model, kwargs)
    explored = explore(model, start.values)
    free = prep.spec.free_names()
    coords = {"chain": [0], "draw": np.arange(len(explored.weights))}
    on_draws = ("chain", "draw")
    draws = xr.Dataset({n: (on_draws, [[v[n] for v in explored.values]]) for n in free}, coords=coords)
    stats = xr.Dataset(
        {"weight": (on_draws, explored.weights[None]), "log_posterior": (on_draws, explored.log_posterior[None])},
        coords=coords,
    )
    stats["weight"].attrs["long_name"] = "INLA integration weight of the design point (sums to 1)"
    posterior = xr.DataTree.from_dict({"posterior": draws, "sample_stats": stats})
    return Inference(draws, posterior, {**start.optimizer, "inla": explored.report}, model)


def _rough_field(spec: ModelSpec, y, cells) -> np.ndarray:
    """The likelihood's crude link-scale field of ``y``, its non-finite cells at its mean (for starts)."""
    rough = spec.likelihood.rough_field(y, cells)
    return np.where(np.isfinite(rough), rough, np.mean(rough[np.isfinite(rough)]))


def _collapsed(prep: Prepared, options: FitOptions, model, kwargs: dict) -> Inference:
    """NUTS on ``θ`` with the field integrated out, then one exact ``v`` per draw (:mod:`xkron.inference.collapsed`)."""
    _start_latent_chains(prep, options, kwargs, field=False)
    kwargs["initvals"] = {k: v for k, v in kwargs.get("initvals", {}).items() if k != "v"}
    posterior = sample_collapsed(prep.y, prep.spec, options.random_seed, options.progressbar, kwargs)
    return Inference(_draws(posterior, prep.spec), posterior, None, model)


RUNNERS = {
    ("marginal", "map"): _map,
    ("marginal", "nuts"): _marginal_nuts,
    ("latent", "nuts"): _latent,
    ("latent", "advi"): _latent,
    ("latent", "laplace"): _laplace,
    ("latent", "inla"): _inla,
    ("collapsed", "nuts"): _collapsed,
}
"""The inference of each ``(form, method)`` that :func:`xkron.inference.arguments.check_call` and
:func:`xkron.inference.prepare.prepare` allow: ``runner(prep, options, model, sample_kwargs)``."""


def _draws(posterior: xr.DataTree, spec: ModelSpec) -> xr.Dataset:
    """The free hyperparameters' draws, on ``(chain, draw)`` even when every one is fixed (``v`` is still drawn)."""
    draws = posterior.posterior.to_dataset()
    return draws[[n for n in spec.free_names() if n in draws]].assign_coords(chain=draws.chain, draw=draws.draw)


def _start_latent_chains(prep: Prepared, options: FitOptions, kwargs: dict, field: bool) -> None:
    """Start every NUTS chain of a latent model at one point (:func:`_latent_start`), where PyMC's own
    sampler runs and no start is given."""
    if prep.pymc_nuts and "initvals" not in kwargs and "init" not in kwargs:
        start = _latent_start(
            prep.spec, prep.y, prep.cells, options.restarts, options.random_seed, options.progressbar, field=field
        )
        kwargs.update(initvals=start, init="adapt_diag")


def _latent_start(spec: ModelSpec, y, cells, restarts, random_seed, progressbar, field: bool = True) -> dict:
    """Where every NUTS chain of a latent model starts (no jitter, as for the marginal model).

    Complete Gaussian data: the exact marginal MAP of the hyperparameters (cheap, and it
    avoids the minor modes of periodic factors that jittered starts fall into) and the
    whitened posterior mean of ``f`` given them, ``v = (⊗L_i)⁻¹ (E[f | y] − μ) / η``.
    Otherwise: the data-driven starts of :func:`xkron.spec.priors.map_starts` computed on a crude
    link-scale field (missing cells filled with its mean), and ``v = 0``. ``field=False``: the
    hyperparameters only (the collapsed sampler draws ``v`` itself).
    """
    if not isinstance(spec.likelihood, Gaussian) or not np.isfinite(y).all() or spec.per_cell_noise:
        rough = _rough_field(spec, y, cells)
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
    return {**values, "v": chol_whitened(centred + full["mean"], spec, full)}


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


def _fit_map(model, spec: ModelSpec, starts, y, progressbar, kwargs, loglik_max=None):
    """:func:`xkron.inference.optimize.fit_map` from every start: the mean steps in units of the data's sd, periods
    in units of their resolution; ``loglik_max`` bounds the model's log-likelihood term (the Laplace marginal)."""
    steps = {"scales": {"mean": data_scale(y)}, "rel_scales": period_steps(spec.factors, y)}
    values, report = fit_map(model, starts, **steps, progressbar=progressbar, stacklevel=3, loglik_max=loglik_max,
                             **kwargs)  # fmt: skip
    return {name: float(values[name]) for name in spec.free_names()}, report
