"""Collapsed NUTS for the latent Gaussian model: ``θ | y`` with the field integrated out, then ``v | θ, y``.

The latent model of Gaussian data, ``y = μ + η (⊗L_i) v + ε`` with ``v ~ N(0, I)``
(:func:`xkron.models.build.build_latent_model`, PyMC's ``LatentKron`` form), has the joint posterior
``p(θ, v | y) = p(θ | y) p(v | θ, y)``. Both factors are exact with Kronecker algebra:
``p(θ | y)`` is the marginal model with the latent model's covariance
``η² ⊗(K_i + JITTER·I) + σ²I`` (Saatçi 2011, Alg. 16), and ``v | θ, y`` is Gaussian, drawn by
Matheron's rule (:func:`xkron.posterior.fields.whitened_draws`). NUTS therefore runs on the few
hyperparameters alone, and each kept draw gets one exact ``v``: the same joint posterior as
NUTS on ``(θ, v)``, without the ill-conditioned directions of ``v`` that force that sampler
into deep trees, and with draws of ``v`` that are independent given ``θ``.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pymc as pm
import xarray as xr

from xkron.models.build import build_marginal_model
from xkron.posterior.fields import whitened_draws
from xkron.spec.modelspec import JITTER, ModelSpec

__all__ = ["collapse_applies", "sample_collapsed"]


def collapse_applies(spec: ModelSpec, y: np.ndarray) -> str | None:
    """Why the collapsed sampler cannot run this latent model (``None``: it can)."""
    if spec.likelihood.name != "gaussian":
        return f"the {spec.likelihood.name} likelihood has no closed-form marginal"
    if not np.isfinite(y).all():
        return "the grid has missing cells"
    if spec.per_cell_noise:
        return "the known noise differs between cells"
    if not spec.free_names():
        return "every hyperparameter is fixed, so there is nothing for NUTS to sample but v"
    return None


def sample_collapsed(y: np.ndarray, spec: ModelSpec, random_seed, progressbar: bool, sample_kwargs) -> xr.DataTree:
    """NUTS on ``θ`` of the marginal model, then one exact draw of ``v`` per kept draw.

    Parameters
    ----------
    y : ndarray
        Complete Gaussian data, one axis per factor.
    spec : ModelSpec
        The latent model's spec (``spec.latent`` is True).
    random_seed : int, sequence of int or None
        Seeds ``pm.sample`` and, through ``numpy.random.default_rng``, the draws of ``v``.
    progressbar : bool
    sample_kwargs : dict
        Passed to ``pm.sample`` (``initvals`` without ``v``).

    Returns
    -------
    xarray.DataTree
        PyMC's result for the marginal model (sample stats are NUTS's on ``θ``) with ``v``
        added to ``posterior`` (and ``warmup_posterior``) on ``(chain, draw, v_dim_0, ...)``,
        as the latent model names it.
    """
    marginal = replace(spec, latent=False)  # a latent spec's solver is the Kronecker one
    model = build_marginal_model(y, marginal, jitter=JITTER)
    idata = pm.sample(model=model, random_seed=random_seed, progressbar=progressbar, **sample_kwargs)
    rng = np.random.default_rng(random_seed)
    known = marginal.equal_noise_var()
    dims = ("chain", "draw", *(f"v_dim_{i}" for i in range(y.ndim)))
    for group in ("posterior", "warmup_posterior"):
        if group not in idata.children:
            continue
        draws = idata[group].to_dataset()
        v = np.empty((draws.sizes["chain"], draws.sizes["draw"], *y.shape))
        for c in range(v.shape[0]):
            for d in range(v.shape[1]):
                values = {**spec.fixed(), **{n: float(draws[n].values[c, d]) for n in spec.free_names()}}
                v[c, d] = whitened_draws(y, spec.factors, values, values["noise"] ** 2 + known, rng)[0]
        idata[group] = xr.DataTree(draws.assign(v=(dims, v)))
    return idata
