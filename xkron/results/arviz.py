"""A fit's posterior as ArviZ expects it, labelled with the data's dims and coords.

PyMC's DataTree knows the data only as the flattened model tensor (``y_dim_0``, ``y_dim_1``, the
observed cells of a gappy latent grid on one axis) and, for the marginal model, has no pointwise
log-likelihood (its likelihood does not factorise over cells). :func:`labelled_posterior` replaces
``observed_data`` with the data on their own dims and coords (NaN at unobserved cells) and adds
``log_likelihood``, so that ``az.summary``, ``az.plot_trace``, ``az.loo`` and ``az.compare`` work on
``fit.posterior``:

- Gaussian marginal fits: each draw's exact leave-one-out log density ``log p(y_i | y_{−i}, θ)``
  (:mod:`xkron.results.loo`). The data's likelihood does not factorise over cells, and these are the
  terms PSIS-LOO needs for such a model: ``p(θ | y_{−i}) ∝ p(θ | y) / p(y_i | y_{−i}, θ)``, so
  ``az.loo`` importance-weights the draws by them and estimates ``log p(y_i | y_{−i})`` (Bürkner,
  Gabry & Vehtari 2021, *Efficient leave-one-out cross-validation for Bayesian non-factorized
  normal and Student-t models*, Comput. Stat. 36).
- Latent fits by NUTS or ADVI: ``log p(y_i | f_i)`` per draw, from each draw's field (the standard
  pointwise log-likelihood of a factorising likelihood).
- INLA's design points are weighted, not draws, and Laplace fits have none: no ``log_likelihood``.

On a grid with unobserved cells ``az.loo`` cannot take NaN, so the group then holds the observed
cells only, along one ``cell`` dim with each grid dim's coordinate on it
(``ll.set_index(cell=[...dims]).unstack("cell")`` gives the grid back). The root attribute
``xkron_log_likelihood`` says which of the above the group holds, or why it is absent.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xkron.errors import CostError
from xkron.linalg.lazy import is_dask
from xkron.linalg.loo import schur_estimate
from xkron.results.conditioned import draw_values
from xkron.results.loo import draw_loo, draw_posteriors, on_data_grid
from xkron.settings import ARVIZ_LOG_LIKELIHOOD_ELEMENTS, WARN_SECONDS
from xkron.spec.pointwise import fill_unobserved, pointwise

__all__ = ["labelled_posterior", "sample_prior"]


def data_var_name(fit) -> str:
    """The name of the data in ``observed_data`` and ``log_likelihood``: the data's name, else ``"y"``."""
    return str(fit.data.name) if fit.data.name is not None else "y"


def observed_data(fit) -> xr.Dataset:
    """The data on their dims and coords, NaN where unobserved (the fit's ``mask``), without file encodings."""
    data = fit.data if fit.mask is None else fit.data.where(fit.mask)
    return data.rename(data_var_name(fit)).to_dataset().drop_encoding()


def labelled_posterior(fit) -> xr.DataTree:
    """``fit.posterior`` with ``observed_data`` labelled and a pointwise ``log_likelihood`` (module docstring)."""
    tree = fit.posterior.copy()
    tree["observed_data"] = xr.DataTree(observed_data(fit))
    if "log_likelihood" in tree.children:
        del tree["log_likelihood"]  # PyMC's, on the flattened model tensor
    try:
        loglik, note = pointwise_log_likelihood(fit)
    except (ValueError, NotImplementedError, CostError) as err:  # CostError: fit.loo()'s cost, before compute
        loglik, note = None, f"absent: {err}"
    if loglik is not None:
        tree["log_likelihood"] = xr.DataTree(loglik)
    tree.attrs["xkron_log_likelihood"] = note
    return tree


def pointwise_log_likelihood(fit) -> tuple[xr.Dataset, str]:
    """The ``log_likelihood`` group and what it holds (module docstring); ``ValueError`` where there is none."""
    if fit.method == "inla":
        raise ValueError("INLA's design points are weighted quadrature nodes, not posterior draws, which az.loo needs")
    if "chain" not in fit.params.dims:
        raise ValueError(f"method={fit.method!r} has no posterior draws to give a pointwise log-likelihood for")
    if is_dask(fit._data_tensor):
        raise NotImplementedError("the data are dask-backed, and their pointwise log-likelihood would read them all")
    shape = (fit.params.sizes["chain"], fit.params.sizes["draw"])
    n_cells = int(np.count_nonzero(np.isfinite(np.asarray(fit._data_tensor, dtype=float))))
    if shape[0] * shape[1] * n_cells > ARVIZ_LOG_LIKELIHOOD_ELEMENTS:
        raise ValueError(
            f"{shape[0] * shape[1]:,} draws × {n_cells:,} observed cells exceed "
            f"xkron.settings.ARVIZ_LOG_LIKELIHOOD_ELEMENTS ({ARVIZ_LOG_LIKELIHOOD_ELEMENTS:,} values): fit with fewer "
            "draws, or compare fits by fit.loo() at fixed hyperparameters"
        )
    if fit.spec.solver.name == "iterative" and not fit.spec.latent:
        sizes = [f.size for f in fit.spec.factors]
        cost = schur_estimate(sizes, int(np.prod(sizes)) - n_cells, shape[0] * shape[1])
        if cost.seconds > WARN_SECONDS:  # made with every fit: never a hidden wait of minutes
            raise ValueError(
                f"the exact leave-one-out of {shape[0] * shape[1]:,} draws on the iterative solver would take about "
                f"{cost.seconds:.0f} s; fit.loo() computes it on request"
            )
    if fit.spec.latent:
        values, note = _latent_log_likelihood(fit), "log p(y_i | f_i) of each draw's latent field"
    else:
        values = draw_loo(fit).log_density
        note = "exact leave-one-out log p(y_i | y_-i, theta) at each draw (Gaussian marginal model)"
    lead = {d: fit.params[d].values for d in ("chain", "draw")}
    grid = on_data_grid(fit, values.reshape(shape + values.shape[1:]), tuple(lead), lead)
    grid = grid.rename(data_var_name(fit)).assign_attrs(long_name=note)
    if bool(grid.isel(chain=0, draw=0).notnull().all()):
        return grid.to_dataset(), note
    return _observed_cells(grid).to_dataset(), note + "; observed cells only, along 'cell'"


def _latent_log_likelihood(fit) -> np.ndarray:
    """``log p(y_i | f_i)`` at each draw's field, NaN at unobserved cells, shape ``(draws, *field)``."""
    spec, posteriors = fit.spec, draw_posteriors(fit)
    shape = [f.size for f in spec.factors]
    y = np.asarray(fit._data_tensor, dtype=float).reshape(shape)
    seen = np.isfinite(y)
    filled, data = fill_unobserved(y, spec.cell_data(), seen)
    out = np.empty((len(posteriors), *shape))
    for i, (posterior, values) in enumerate(zip(posteriors, draw_values(fit.params), strict=True)):
        field = posterior.field()
        out[i] = np.where(seen, pointwise(spec.likelihood.name, field, filled, values, data).logp, np.nan)
    return out


def _observed_cells(grid: xr.DataArray) -> xr.DataArray:
    """``grid`` (``chain, draw, *dims``) at its finite cells, along ``cell``, each dim's labels as coordinates on it."""
    dims = [d for d in grid.dims if d not in ("chain", "draw")]
    seen = grid.isel(chain=0, draw=0).notnull().transpose(*dims).values
    index = np.nonzero(seen)
    values = grid.transpose("chain", "draw", *dims).values[(slice(None), slice(None), *index)]
    coords = {
        d: ("cell", grid[d].values[i]) if d in grid.coords else ("cell", i) for d, i in zip(dims, index, strict=True)
    }
    coords.update(chain=grid["chain"].values, draw=grid["draw"].values)
    return xr.DataArray(values, dims=("chain", "draw", "cell"), coords=coords, name=grid.name, attrs=grid.attrs)


def sample_prior(fit, draws: int = 500, random_seed=None) -> xr.Dataset:
    """Prior draws of the free hyperparameters into ``fit.posterior["prior"]`` (:meth:`xkron.KronFit.sample_prior`)."""
    import pymc as pm  # the fit's model is PyMC's; imported only when prior draws are asked for

    if isinstance(draws, bool) or not isinstance(draws, int | np.integer) or draws < 1:
        raise ValueError(f"draws must be a whole number ≥ 1, not {draws!r}")
    free = fit.spec.free_names()
    if not free:
        raise ValueError("every hyperparameter of this fit is fixed: there is no prior to draw from")
    idata = pm.sample_prior_predictive(draws=int(draws), model=fit.model, var_names=free, random_seed=random_seed)
    prior = idata["prior"].to_dataset()[free]
    for name in free:
        prior[name].attrs = dict(fit.params[name].attrs)
    if fit.posterior is None:
        fit.posterior = xr.DataTree.from_dict({"observed_data": observed_data(fit)})
    fit.posterior["prior"] = xr.DataTree(prior)
    return prior
