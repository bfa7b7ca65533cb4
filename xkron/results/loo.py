"""Exact leave-one-out of a Gaussian marginal fit, labelled: :meth:`xkron.KronFit.loo`.

Every observed cell gets the predictive distribution of its value given every other observed
cell at the fit's hyperparameters (each draw's, for NUTS), in closed form from the diagonal of
the inverse covariance (:mod:`xkron.linalg.loo`, :mod:`xkron.posterior.loo`): no refit. The sum
of the log densities, ``elpd_loo``, compares fits of the same data (higher is better).
"""

from __future__ import annotations

import warnings

import numpy as np
import xarray as xr

from xkron.errors import CostWarning
from xkron.linalg.loo import LooMoments, check_schur_cost
from xkron.posterior.loo import leave_one_out
from xkron.results.conditioned import DrawPosteriors, draw_values
from xkron.results.labels import cf_header, data_name, label_sample_coords

__all__ = ["draw_loo", "draw_posteriors", "fit_loo", "on_data_grid"]


def check_gaussian_marginal(fit) -> None:
    """Refuse fits whose leave-one-out has no closed form (latent fields, non-Gaussian data)."""
    if fit.spec.latent or fit.spec.likelihood.name != "gaussian":
        raise ValueError(
            f"exact leave-one-out applies to Gaussian marginal fits; this fit is latent (likelihood "
            f"{fit.spec.likelihood.name!r}, method {fit.method!r}), whose leave-one-out has no closed form. Use "
            "az.loo(fit.posterior) on a NUTS fit (PSIS-LOO from the pointwise log-likelihood), or "
            "xkron.cross_validate to score held-out cells"
        )


def draw_posteriors(fit):
    """The GP conditioned at each draw, one at a time and not kept (unless the fit already holds them): a dense
    system holds ``n_o²`` values per draw, which thousands of NUTS draws cannot all keep."""
    if "_posterior_cache" in fit.__dict__:
        return fit.__dict__["_posterior_cache"]
    latent = None
    if fit.spec.latent and fit.method not in ("laplace", "inla"):
        v = fit.posterior["posterior"]["v"].stack(sample=("chain", "draw")).transpose("sample", ...)
        latent = np.asarray(v.values)
    return DrawPosteriors(fit._data_tensor, fit.spec, draw_values(fit.params), latent)


def draw_loo(fit) -> LooMoments:
    """Leave-one-out moments at every draw, stacked on a leading axis (one draw for a MAP fit), on the
    model's grid (one axis per factor, its kept inputs only); NaN at unobserved cells.

    An iterative fit's cost (:func:`xkron.linalg.loo.schur_estimate`) is checked for all draws first."""
    check_gaussian_marginal(fit)
    y = fit._data_tensor
    posteriors = draw_posteriors(fit)
    with warnings.catch_warnings():
        if fit.spec.solver.name == "iterative" and len(posteriors) > 1:
            sizes = [f.size for f in fit.spec.factors]
            check_schur_cost(sizes, int(np.prod(sizes)) - int(np.count_nonzero(np.isfinite(y))), len(posteriors))
            warnings.simplefilter("ignore", CostWarning)  # said once for all draws, not at each
        per_draw = [leave_one_out(p, y) for p in posteriors]
    return LooMoments(*(np.stack([getattr(m, k) for m in per_draw]) for k in LooMoments._fields))


def on_data_grid(fit, array: np.ndarray, lead_dims=(), lead_coords=None) -> xr.DataArray:
    """An array over ``lead_dims`` and the model's grid as a DataArray on the data's dims and coords.

    A factor that keeps only some of its inputs (``Factor.subset``: dims whose cells are all
    unobserved somewhere) gets NaN at the others; a factor over several dims is unravelled into them.
    """
    n_lead = len(lead_dims)
    for i, factor in enumerate(fit.spec.factors):
        if factor.subset is not None:
            axis = n_lead + i
            shape = list(array.shape)
            shape[axis] = factor.full_size
            full = np.full(shape, np.nan)
            index = [slice(None)] * len(shape)
            index[axis] = factor.subset
            full[tuple(index)] = array
            array = full
    sizes = [fit.data.sizes[d] for d in fit.spec.dims]
    array = array.reshape(array.shape[:n_lead] + tuple(sizes))
    coords = {k: v for k, v in fit.data.coords.items() if set(v.dims) <= set(fit.data.dims)}
    out = xr.DataArray(array, dims=(*lead_dims, *fit.spec.dims), coords={**coords, **(lead_coords or {})})
    return out.transpose(*lead_dims, *fit.data.dims)


def fit_loo(fit) -> xr.Dataset:
    """The labelled leave-one-out of :meth:`xkron.KronFit.loo` (see there)."""
    moments = draw_loo(fit)
    if "chain" in fit.params.dims:
        lead = ("chain", "draw")
        lead_coords = {d: fit.params[d] for d in lead}
        shape = (fit.params.sizes["chain"], fit.params.sizes["draw"])
        arrays = [a.reshape(shape + a.shape[1:]) for a in moments]
    else:
        lead, lead_coords, arrays = (), {}, [a[0] for a in moments]
    mean, var, log_density = (on_data_grid(fit, a, lead, lead_coords) for a in arrays)
    grid = [d for d in fit.data.dims]
    seen = log_density.notnull()
    name, units = data_name(fit.data), fit.data.attrs.get("units", "")
    per_units = f" (density per {units})" if units else ""
    result = xr.Dataset(
        {
            "mean": mean.assign_attrs(units=units, long_name=f"leave-one-out predictive mean of {name}"),
            "sd": np.sqrt(var).assign_attrs(units=units, long_name=f"leave-one-out predictive sd of {name}"),
            "log_density": log_density.assign_attrs(
                units="1", long_name=f"leave-one-out log predictive density of {name}{per_units}"
            ),
            "elpd_loo": log_density.sum(grid).assign_attrs(
                units="1", long_name=f"sum of the leave-one-out log predictive densities of {name} over observed cells"
            ),
            "n_loo": xr.DataArray(np.int64(seen.isel({d: 0 for d in lead}).sum())).assign_attrs(
                units="1", long_name="number of observed cells left out one at a time"
            ),
        }
    )
    result["mean"].attrs["ancillary_variables"] = "sd"
    label_sample_coords(result)
    result.attrs.update(
        cf_header(
            "exact leave-one-out",
            fit.spec,
            fit.data,
            "leave-one-out predictive of every observed cell (KronFit.loo)",
            comment="each observed cell predicted from every other observed cell at the fitted hyperparameters "
            "(closed form, Rasmussen & Williams 2006 eq. 5.12; no refit); the noise of the cell is included",
        )
    )
    return result
