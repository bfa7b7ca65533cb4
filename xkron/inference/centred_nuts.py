"""NUTS on a latent model in partially centred coordinates: the default sampler of latent grids.

The whitened latent model (:func:`xkron.models.build.build_latent_model`) is the target PyMC's
``LatentKron`` samples too; where the data pin the field down its geometry needs NUTS trees of
127 gradients per draw (the seed's Poisson grid, ``tests/benchmarks/bench_latent.py`` task 5).
:func:`xkron.models.build.build_centred_model` has the same posterior in coordinates ``u`` whose
conditional scale is close to 1 in every eigenmode (:mod:`xkron.linalg.centring`), so NUTS
takes long steps with PyMC's diagonal adaptation. This module sets it up:

- the curvature ``w̄``: the mean over the grid of the likelihood's ``−∂² log p/∂f²`` at a crude
  link-scale field (0 at unobserved cells, which leave the likelihood), the constant-``W``
  projection that :mod:`xkron.linalg.laplace` preconditions with;
- every chain's start: the hyperparameters' data-driven start and ``u`` from the field's smooth
  part (:func:`xkron.linalg.centring.centred_from_field`);
- the initial diagonal metric: ``1`` for ``u`` (its conditional scale) and, for each
  hyperparameter, the inverse of its curvature at the start (central differences of the
  gradient). PyMC's adaptation starts from there instead of the identity; on the seed grid the
  first adaptation window otherwise took 250 gradients per draw, a third of the whole run's.

A free mean is sheared out of the field (:func:`xkron.models.build.centred_shift`): the data pin
``μ`` plus the field's constant part, and without the shear that part is a mode of ``u`` pinned by
the data, so ``μ`` and that mode trade off along a narrow ridge that a diagonal metric cannot
follow (a 24 × 16 Poisson grid: bulk ESS of the mean 35 of 800 draws). With it, on that grid: ESS
of the mean 1,049 and of the amplitude 933 in 800 draws at 15 gradients per draw, against 669, 414
and 63 for the whitened field. ``init="whitened"``, an explicit ``init``, ``initvals`` or ``step``,
other samplers, and factors of more than :data:`~xkron.settings.NUTS_CENTRED_MAX_FACTOR` points
(each gradient decomposes every factor) keep the whitened model, with PyMC's diagonal adaptation
from xkron's start. Each gradient costs more than the whitened model's (an eigendecomposition per
factor against a Cholesky): on the seed's 50 × 30 grid 0.44 ms against 0.14, with trees of 23-30
gradients against 127 (``tests/benchmarks/README.md``, task 5 of ``bench_latent.py``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pymc as pm
import xarray as xr
from pymc.step_methods.hmc.quadpotential import QuadPotentialDiagAdapt

from xkron.linalg.centring import centred_from_field, whitened_from_centred
from xkron.models.build import build_centred_model, centred_shift
from xkron.posterior.conditional import jittered_covariance
from xkron.settings import NUTS_CENTRED_MAX_FACTOR, NUTS_CURVATURE_STEP
from xkron.spec.modelspec import ModelSpec, factor_params
from xkron.spec.pointwise import fill_unobserved, pointwise

__all__ = [
    "CENTRED_OFF",
    "NUTS_STEP_KWARGS",
    "centred_applies",
    "centred_sampler",
    "typical_curvature",
    "whitened_posterior",
]

CENTRED_OFF = "whitened"
"""``fit(method="nuts", init=...)`` value that keeps the whitened model (xkron's, not one of PyMC's inits)."""

NUTS_STEP_KWARGS = ("target_accept", "max_treedepth", "early_max_treedepth", "step_scale", "adapt_step_size")
"""Keywords of ``pm.sample`` that belong to the NUTS step where xkron builds the step itself."""


def centred_applies(spec: ModelSpec, pymc_nuts: bool, kwargs: Mapping) -> bool:
    """Whether NUTS on this latent model runs in centred coordinates (module docstring)."""
    if kwargs.get("init") == CENTRED_OFF or any(k in kwargs for k in ("init", "initvals", "step")):
        return False
    return pymc_nuts and max(f.size for f in spec.factors) <= NUTS_CENTRED_MAX_FACTOR


def typical_curvature(spec: ModelSpec, y: np.ndarray, field: np.ndarray, values: Mapping[str, float]) -> float:
    """``w̄``: the mean over the grid of ``max(−∂² log p/∂f², 0)`` at ``field``, 0 at unobserved cells.

    Examples
    --------
    >>> from xkron.spec.grid import Factor
    >>> from xkron.spec.kernels import ExpQuad
    >>> from xkron.spec.likelihoods import Poisson
    >>> spec = ModelSpec((Factor(("a",), ExpQuad(), (np.arange(4.0),)),), {"ls_a": 1.0, "amplitude": 1.0,
    ...                  "mean": 0.0}, likelihood=Poisson(), latent=True)
    >>> typical_curvature(spec, np.array([1.0, 3.0, np.nan, 2.0]), np.log([1.0, 3.0, 2.0, 2.0]), {})
    1.5
    """
    observed = np.isfinite(y)
    filled, data = fill_unobserved(y, spec.cell_data(), observed)
    curvature = -pointwise(spec.likelihood.name, field, filled, dict(values), data).d2
    w = float(np.mean(np.where(observed, np.maximum(curvature, 0.0), 0.0)))
    if not np.isfinite(w) or w <= 0:
        raise ValueError(f"the likelihood's curvature at the start field is {w}; use init='{CENTRED_OFF}'")
    return w


def centred_sampler(
    y: np.ndarray, spec: ModelSpec, hyper: Mapping[str, float], rough: np.ndarray, random_seed, kwargs: dict
) -> tuple[pm.Model, dict]:
    """The centred model, with ``kwargs`` for ``pm.sample`` updated (``initvals``, ``step``); and a report.

    ``hyper`` is the hyperparameters' start and ``rough`` the crude link-scale field on the grid.
    """
    full = {**spec.fixed(), **hyper}
    shape = [f.size for f in spec.factors]
    y = np.asarray(y, dtype=float).reshape(shape)
    w = typical_curvature(spec, y, rough.reshape(shape), full)
    model = build_centred_model(y, spec, w)
    factors = [jittered_covariance(f, factor_params(f, full)) for f in spec.factors]
    eta = float(full["amplitude"])
    shift = centred_shift(spec, full, w)
    u = centred_from_field(rough.reshape(shape) - full["mean"], factors, eta, eta**2 * w, w, shift)
    start = {**{rv.name: hyper[rv.name] for rv in model.free_RVs if rv.name != "u"}, "u": u}
    func = model.logp_dlogp_function(
        ravel_inputs=True, initial_point=model.initial_point() | _unconstrained(model, start)
    )
    func.set_extra_values({})
    x0, variance, sds = _initial_metric(model, func, start)
    rng = np.random.default_rng(random_seed)
    nuts = {k: kwargs.pop(k) for k in NUTS_STEP_KWARGS if k in kwargs}
    potential = QuadPotentialDiagAdapt(len(x0), x0, variance, 10, rng=rng.spawn(1)[0])
    kwargs["step"] = pm.NUTS(model=model, potential=potential, logp_dlogp_func=func, rng=rng, **nuts)
    kwargs["initvals"] = start
    return model, {"nuts_field": {"parameterization": "partially centred", "curvature": w, "initial_sd": sds}}


def whitened_posterior(tree: xr.DataTree, spec: ModelSpec, curvature: float) -> xr.DataTree:
    """``tree`` with every draw of ``u`` replaced by the whitened field ``v`` of the same ``f``, draw by draw.

    ``v = (⊗L_i)⁻¹ S u`` at each draw's hyperparameters (:func:`xkron.linalg.centring.whitened_from_centred`),
    named and shaped as the whitened model's ``v``; the groups without ``u`` are kept as they are.
    """
    for group in ("posterior", "warmup_posterior"):
        if group not in tree.children or "u" not in tree[group].data_vars:
            continue
        ds = tree[group].to_dataset()
        u = ds["u"].transpose("chain", "draw", ...)
        v = np.empty(u.shape)
        for c in range(u.shape[0]):
            for d in range(u.shape[1]):
                values = {**spec.fixed(), **{n: float(ds[n].values[c, d]) for n in spec.free_names()}}
                factors = [jittered_covariance(f, factor_params(f, values)) for f in spec.factors]
                s, shift = values["amplitude"] ** 2 * curvature, centred_shift(spec, values, curvature)
                v[c, d] = whitened_from_centred(u.values[c, d], factors, s, shift)
        dims = ["chain", "draw", *(f"v_dim_{k}" for k in range(v.ndim - 2))]
        tree[group] = xr.DataTree(
            ds.drop_vars("u").assign(v=(dims, v)).drop_vars([n for n in ds.coords if n.startswith("u_dim_")])
        )
    return tree


def _unconstrained(model: pm.Model, point: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``point`` (by free variable name, constrained) in the model's value variables."""
    out = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        transform = model.rvs_to_transforms[rv]
        x = np.asarray(point[rv.name], dtype=float)
        out[value.name] = x if transform is None else np.asarray(transform.forward(x, *rv.owner.inputs).eval())
    return out


def _initial_metric(model: pm.Model, func, start) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """The raveled start and the initial diagonal of the metric (module docstring)."""
    point = _unconstrained(model, start)
    names = [v.name for v in model.continuous_value_vars]
    x0 = np.concatenate([np.ravel(point[n]) for n in names])
    variance, sds, position = np.ones_like(x0), {}, 0
    for value in model.continuous_value_vars:
        size = int(np.size(point[value.name]))
        if value.name != "u":
            for i in range(position, position + size):
                step = np.zeros_like(x0)
                step[i] = NUTS_CURVATURE_STEP
                curvature = -(func(x0 + step)[1][i] - func(x0 - step)[1][i]) / (2 * NUTS_CURVATURE_STEP)
                # the posterior sd, as far as the curvature at the start tells it, within [1e-3, 1]
                variance[i] = np.clip(1.0 / curvature, 1e-6, 1.0) if np.isfinite(curvature) and curvature > 0 else 1.0
            sds[value.name] = float(np.sqrt(variance[position]))
        position += size
    return x0, variance, sds
