"""Labelled posterior sample fields: coordinates in, an xarray Dataset of exact draws out.

The draws themselves come from :func:`xkron.posterior.fields.posterior_fields` (Matheron's rule);
this module turns requested coordinates into per-factor test grids and labels the result,
keeping the fields one-to-one with the posterior's ``(chain, draw)``.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from xkron.io.cf import no_fill_on_coords
from xkron.linalg.cost import check, sample_estimate
from xkron.linalg.lazy import is_dask
from xkron.posterior.fields import posterior_fields
from xkron.progress import CountProgress
from xkron.results.extrapolation import warn_if_far
from xkron.results.labels import cell_methods_hold, cf_header, data_name, label_sample_coords
from xkron.results.predict import _numeric, _output_coords, _request_array
from xkron.spec.grid import cartesian

__all__ = ["sample_fields"]


def _selected_draws(fit, n: int | None) -> tuple[np.ndarray, dict]:
    """Flat (chain-major) indices of the draws used, and their ``chain``/``draw`` coords."""
    chains, draws = fit.params.sizes["chain"], fit.params.sizes["draw"]
    keep = np.arange(draws) if n is None or n >= draws else np.unique(np.linspace(0, draws - 1, n).round().astype(int))
    flat = (np.arange(chains)[:, None] * draws + keep[None, :]).ravel()
    return flat, {"chain": fit.params["chain"].values, "draw": fit.params["draw"].values[keep]}


def sample_fields(
    fit, request, n: int | None, observed: bool, rng: np.random.Generator, progressbar: bool = True
) -> xr.Dataset:
    """Exact posterior sample fields on a grid (see :meth:`xkron.KronFit.sample`).

    The cost (eigendecompositions of each factor's training and new inputs, once per posterior
    draw used, and the fields themselves) is checked before any of it is paid
    (:mod:`xkron.linalg.cost`); long runs report fields done and time elapsed
    (:class:`xkron.progress.CountProgress`) unless ``progressbar`` is False.
    """
    arrays = {dim: _request_array(fit, dim, request.get(dim)) for dim in fit.data.dims}
    for dim, arr in arrays.items():
        if arr.dims != (dim,):
            raise ValueError(
                f"sample fields are joint draws on a grid: give 1-D coordinates for {dim!r} (got dims {arr.dims}); "
                "for scattered points use fit.predict(points)"
            )
    numeric = {dim: _numeric(fit, dim, arrays[dim], request.get(dim) is None) for dim in fit.dims}
    warn_if_far(fit, numeric, None, {d for d in fit.dims if request.get(d) is None}, stacklevel=3)  # a grid
    tests = [cartesian([numeric[d] for d in f.dims]) for f in fit.spec.factors]
    grid_shape = [len(numeric[d]) for d in fit.dims]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1):
        raise ValueError(f"n must be a positive integer, got {n!r}")
    if observed and "y" in fit.data.dims:
        raise ValueError(
            "sample(observed=True) returns the draws of new observations as the variable 'y', which is also a dim "
            "of the data; rename the dim before fitting (e.g. da.rename(y='northing')), or sample f alone"
        )
    weights = fit.draw_weights
    per_draw = "chain" in fit.params.dims and weights is None
    if weights is not None:  # INLA: each field from a design point drawn by weight
        flat = np.sort(rng.choice(len(weights), size=n or 1, p=weights))
        lead_coords = {"design_point": ("sample", flat)}
    else:
        flat, lead_coords = _selected_draws(fit, n) if per_draw else (np.zeros(n or 1, dtype=int), {})
    draws = len(np.unique(flat)) if weights is not None else len(flat) if per_draw else 1
    check(sample_estimate(fit, tests, int(np.prod(grid_shape)), len(flat), draws, observed), stacklevel=4)

    posteriors = fit._posteriors
    chosen = [posteriors[int(i)] for i in flat] if per_draw or weights is not None else [posteriors[0]] * len(flat)
    report: dict = {}
    with CountProgress(len(flat), "sample", "fields", enabled=progressbar) as bar:
        if weights is not None:
            fields = []
            for i, count in zip(*np.unique(flat, return_counts=True), strict=True):
                fields.append(posterior_fields(posteriors[int(i)], tests, int(count), rng, report=report))
                bar.update(sum(len(f) for f in fields))
            fields = np.concatenate(fields)
            lead, lead_shape = ("sample",), [len(flat)]
        elif per_draw:
            fields = []
            for p in chosen:
                fields.append(posterior_fields(p, tests, 1, rng, report=report)[0])
                bar.update(len(fields))
            fields = np.stack(fields)
            lead, lead_shape = ("chain", "draw"), [len(lead_coords["chain"]), len(lead_coords["draw"])]
        else:
            fields = posterior_fields(posteriors[0], tests, len(flat), rng, progress=bar.update, report=report)
            lead, lead_shape = ("sample",), [len(flat)]
    fields = fields.reshape(len(chosen), *grid_shape)

    variables = {"f": fields}
    if observed:
        data = _cell_data(fit, request)
        draw = fit.spec.likelihood.draw
        if is_dask(fields):  # lazy: Gaussian noise drawn chunk by chunk
            import dask.array as dask_array

            noise = dask_array.random.default_rng(int(rng.integers(2**63))).standard_normal(
                fields.shape, chunks=fields.chunks
            )
            variables["y"] = fields + chosen[0].values["noise"] * noise
        else:
            variables["y"] = np.stack(
                [draw(f, p.values, _own_noise(fit, data, p.values), rng) for f, p in zip(fields, chosen, strict=True)]
            )
    coords = {**_output_coords(arrays, fit, False, request), **lead_coords}
    dims = (*lead, *fit.dims)
    out = xr.Dataset(
        {k: (dims, v.reshape(*lead_shape, *grid_shape)) for k, v in variables.items()}, coords=coords
    ).transpose(*lead, *fit.data.dims)
    _set_attrs(out, fit)
    if report:
        (name, (anchors, share)), *_ = report.items()  # one factor at most is anchored
        out.attrs["prior_draw"] = (
            f"anchored on {anchors} inputs for the factor {name!r}, whose union of training and new inputs is larger: "
            "every cell's marginal posterior is exact; a covariance between two new inputs is off by at most "
            f"{share:.3g} of their variance (the largest residual share)"
        )
    return out


def _cell_data(fit, request) -> dict:
    """The likelihood's per-cell data where it is known (the training grid), else none."""
    likelihood = fit.spec.likelihood
    on_training_grid = all(request.get(d) is None for d in fit.dims)
    data = {}
    for name in likelihood.data_fields:
        value = getattr(likelihood, name)
        if value is None:
            continue
        if on_training_grid or np.ndim(value) == 0:
            data[name] = value
        elif name == "trials":
            raise ValueError(
                "binomial trials are known only on the training grid: sample observations there, or sample f only"
            )
    return data


def _own_noise(fit, data: dict, values) -> dict:
    """``data`` with each label's own noise sd along its dim (``Coregion(noise=True)``) as ``noise_sd``."""
    axis = fit.spec.own_noise_axis()
    if axis is None:
        return data
    index = fit.dims.index(fit.spec.factors[axis].dims[0])
    sd = np.sqrt(np.ravel(fit.spec.own_noise_var(values)))
    return {**data, "noise_sd": sd.reshape([-1 if k == index else 1 for k in range(len(fit.dims))])}


def _set_attrs(out: xr.Dataset, fit) -> None:
    """CF attributes of sample fields: units and ``long_name`` from the data, the data's ``cell_methods``
    where they hold (:func:`xkron.results.labels.cell_methods_hold`), labelled sample coordinates, the CF header."""
    data, link, name = fit.data, fit.spec.likelihood.link, data_name(fit.data)
    scale = "" if link == "identity" else f" ({link} scale)"
    units = data.attrs.get("units") if link == "identity" else "1"
    out["f"].attrs = {"long_name": f"posterior sample of the latent field{scale} of {name}"}
    if units:
        out["f"].attrs["units"] = units
    if "y" in out:
        out["y"].attrs = {"long_name": f"posterior predictive sample of {name}"}
        if "units" in data.attrs:
            out["y"].attrs["units"] = data.attrs["units"]
    methods = data.attrs.get("cell_methods")
    for var in ("f", "y") if link == "identity" else ("y",):
        if var in out and methods and cell_methods_hold(methods, out, out[var].dims):
            out[var].attrs["cell_methods"] = methods
    label_sample_coords(out)
    no_fill_on_coords(out)
    out.attrs = cf_header("Kronecker Gaussian process (Matheron's rule)", fit.spec, data, "sample")
