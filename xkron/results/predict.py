"""Labelled predictions: turn requested coordinates into Kronecker test inputs and back.

Each data dim gets the coordinates it is predicted at: the training ones, a new 1-D grid,
or a DataArray along other dims (points). The output's dims are the union of those
arrays' dims, in data order. Each output dim gets a one-letter label; a factor's test
inputs vary along the labels of its dims, which is all :class:`xkron.posterior.conditional.KronPosterior`
needs. Dask-backed coordinates give a lazy result through ``dask.array.blockwise``.
"""

from __future__ import annotations

import string
from functools import partial

import numpy as np
import xarray as xr

from xkron.io.cf import grid_attrs, no_fill_on_coords
from xkron.linalg.cost import check, predict_estimate
from xkron.linalg.lazy import is_dask
from xkron.posterior.conditional import TestInputs, place_axes
from xkron.posterior.mixture import inverse_link, mixture_quantiles, response_moments
from xkron.results.components import component_factor, component_labels, component_means
from xkron.results.extrapolation import warn_if_far
from xkron.results.labels import cell_methods_hold, cf_header, data_name, label_sample_coords
from xkron.settings import PREDICT_CHUNK_ELEMENTS

__all__ = ["apply_mask", "check_predict_options", "check_shared_dims", "output_mask", "predict_moments"]


def predict_moments(
    fit, request, noise: bool, per_draw: bool, scale: str = "latent", quantiles=(), components=None
) -> xr.Dataset:
    """Mean, sd and quantiles at the requested coordinates (see :meth:`xkron.KronFit.predict`), and the
    posterior means of a factor's additive parts where ``components`` names it (:mod:`xkron.results.components`)."""
    arrays = {dim: _request_array(fit, dim, request.get(dim)) for dim in fit.data.dims}
    check_shared_dims(arrays, given=set(request))
    out_dims: list[str] = []
    for arr in arrays.values():
        out_dims += [d for d in arr.dims if d not in out_dims]
    if len(out_dims) > len(string.ascii_lowercase):
        raise ValueError("too many output dims")
    letter = dict(zip(out_dims, string.ascii_lowercase, strict=False))
    dim_labels = {dim: "".join(letter[d] for d in arrays[dim].dims) for dim in fit.dims}
    out_order = "".join(letter[d] for d in out_dims)
    numeric = {dim: _numeric(fit, dim, arrays[dim], request.get(dim) is None) for dim in fit.dims}
    lazy = any(is_dask(v) for v in numeric.values())
    warn_if_far(fit, numeric, dim_labels, {d for d in fit.dims if request.get(d) is None}, stacklevel=3)
    _check_cost(fit, numeric, dim_labels, out_order, 2 + len(quantiles), per_draw, lazy)

    posteriors = fit._posteriors
    link = fit.spec.likelihood.link if scale == "response" else None
    summary = partial(_summarise, link=link, probs=tuple(quantiles), per_draw=per_draw, weights=fit.draw_weights)

    def moments(tests, order):
        return summary(p.moments(tests, order, noise) for p in posteriors)

    block = partial(_block, moments, fit.spec.factors, fit.dims, dim_labels, out_order)
    n_out = 2 + len(quantiles)
    if lazy:
        stacked = _blockwise(block, numeric, fit.dims, dim_labels, out_order, per_draw, len(posteriors), n_out)
    else:
        stacked = _chunked(block, numeric, fit, dim_labels, out_order, per_draw)
    mean, sd = stacked[0], np.sqrt(stacked[1])
    if components is not None:
        index = component_factor(fit.spec.factors, components)
        block = partial(_block, component_means(posteriors, index, fit.draw_weights), fit.spec.factors, fit.dims,
                        dim_labels, out_order)  # fmt: skip
        n_parts = len(component_labels(fit.spec.factors[index].kernel))
        parts = (
            _blockwise(block, numeric, fit.dims, dim_labels, out_order, False, 1, n_parts)
            if lazy
            else _chunked(block, numeric, fit, dim_labels, out_order, False)
        )

    dims = tuple(out_dims)
    if per_draw:
        shape = (fit.params.sizes["chain"], fit.params.sizes["draw"])
        mean, sd = (a.reshape(shape + a.shape[1:]) for a in (mean, sd))
        dims = ("chain", "draw", *dims)
    coords = _output_coords(arrays, fit, per_draw, request)
    variables = {"mean": (dims, mean), "sd": (dims, sd)}
    if quantiles:
        variables["quantiles"] = (("quantile", *dims), stacked[2:])
        coords["quantile"] = np.asarray(quantiles, dtype=float)
    if components is not None:
        variables["components"] = (("component", *dims), parts)  # refused with per_draw
        # CF coordinate variables are numeric: the parts' expressions label the dim as an auxiliary
        # coordinate (indexed, so .sel(component_name=...) works), written as CF character labels.
        coords["component_name"] = ("component", component_labels(fit.spec.factors[index].kernel))
    result = xr.Dataset(variables, coords=coords)
    _set_attrs(result, fit, noise, scale)
    if components is not None:
        factor = fit.spec.factors[index]
        result["components"].attrs.update(
            units=result["mean"].attrs.get("units", ""),
            long_name=f"posterior mean of each additive part of the {factor.name} factor's kernel {factor.kernel.name}"
            " (they add up to the mean less the constant mean)",
        )
        result["component_name"].attrs["long_name"] = f"additive part of the {factor.name} factor's kernel"
        result["component_name"].encoding["dtype"] = "S1"
        result = result.set_xindex("component_name")
    return result


def check_predict_options(fit, noise, per_draw, scale, quantiles, components) -> tuple[float, ...]:
    """Refuse option values :meth:`xkron.KronFit.predict` cannot honour, before any work; the quantiles as floats."""
    if per_draw and "chain" not in fit.params.dims:
        raise ValueError("per_draw=True needs posterior draws (method='nuts' or 'advi'); a MAP fit has one draw")
    if scale not in ("latent", "response"):
        raise ValueError(f"scale={scale!r} is not known: use 'latent' or 'response'")
    if noise and fit.spec.likelihood.name != "gaussian":
        raise ValueError(
            f"noise=True adds Gaussian noise, which a {fit.spec.likelihood.name} likelihood does not have: "
            "draw new observations with fit.sample(..., observed=True)"
        )
    quantiles = tuple(float(q) for q in np.atleast_1d(quantiles))
    if any(not 0 < q < 1 for q in quantiles):
        raise ValueError(f"quantiles must lie strictly between 0 and 1, got {list(quantiles)}")
    if quantiles and per_draw:
        raise ValueError("quantiles summarise the mixture over draws; they cannot be combined with per_draw=True")
    if components is not None and (scale != "latent" or per_draw):
        raise ValueError("components= gives the parts of the latent mean: use scale='latent' and per_draw=False")
    return quantiles


def output_mask(fit, mask):
    """The checked mask outside which a prediction is NaN (``True``: the fit's own; ``None``: no mask)."""
    if mask is None or mask is False:
        return None
    if mask is True:
        if fit.mask is None:
            raise ValueError("mask=True re-applies the fit's mask, but this fit was made without mask=")
        return fit.mask
    if not isinstance(mask, xr.DataArray) or mask.dtype != bool:
        raise TypeError(f"mask must be a boolean xarray.DataArray or True, not {type(mask).__name__}")
    unknown = set(mask.dims) - set(fit.dims)
    if unknown:
        raise ValueError(f"mask has dims {sorted(unknown)} that the fit does not have ({fit.dims})")
    return mask


def apply_mask(result: xr.Dataset, mask: xr.DataArray) -> xr.Dataset:
    """``result`` set to NaN where ``mask`` is False, attributes kept; the mask must be on its coordinates."""
    try:
        xr.align(result, mask, join="exact")
    except ValueError as err:
        raise ValueError(
            f"mask does not line up with the predicted coordinates ({err}); give a mask on the output's "
            "coordinates, or predict on the training grid"
        ) from None
    attrs = {k: v.attrs for k, v in result.items()}
    masked = result.where(mask)
    for k, a in attrs.items():
        masked[k].attrs = a
    return masked


def check_shared_dims(arrays: dict[str, xr.DataArray], given: set[str] | None = None) -> None:
    """Refuse coordinate arrays that share an output dim but disagree on its length or labels.

    ``arrays`` maps each data dim to the coordinates it is predicted at. Arrays along one
    dim (points, or a dim of the data) are matched element by element, so they must have one
    length along it and, where both carry an index coordinate for it, the same labels. Dims
    not in ``given`` are named as keeping their training coordinates.
    """
    seen: dict[str, tuple[str, xr.DataArray]] = {}
    for name, arr in arrays.items():
        dim = repr(name) if given is None or name in given else f"{name!r} (its training coordinates)"
        for out in arr.dims:
            if out not in seen:
                seen[out] = (dim, arr)
                continue
            first, other = seen[out]
            if other.sizes[out] != arr.sizes[out]:
                raise ValueError(
                    f"the coordinates for {first} and {dim} share the dim {out!r} but have "
                    f"{other.sizes[out]} and {arr.sizes[out]} values along it: points are matched one to one, so "
                    f"give them one length (or different dims for a grid of every combination)"
                )
            if out in other.indexes and out in arr.indexes and not other.indexes[out].equals(arr.indexes[out]):
                raise ValueError(
                    f"the coordinates for {first} and {dim} share the dim {out!r} but label it differently "
                    f"({list(other.indexes[out][:3])}... vs {list(arr.indexes[out][:3])}...): give them one index "
                    f"along {out!r}, or drop it (.drop_vars({out!r}))"
                )


def _summarise(moments, link: str | None, probs: tuple, per_draw: bool, weights=None) -> np.ndarray:
    """Stack ``[mean, var, *quantiles]`` from per-draw latent moments ``(m, v)``.

    Mixed over draws by the law of total variance, one draw at a time (``per_draw``: kept
    per draw), with equal weights or ``weights`` (INLA's design points, summing to 1). ``link`` gives
    response-scale moments of ``g⁻¹(f)``; quantiles are those of the mixture, mapped through ``g⁻¹``
    (exact: ``g⁻¹`` is monotone).
    """
    kept, total, second, n = [], 0.0, 0.0, 0
    for m, v in moments:
        if probs:
            kept.append((m, v))
        rm, rv = response_moments(link, m, v) if link else (m, v)
        if per_draw:
            kept.append((rm, rv))
            continue
        w = 1.0 if weights is None else weights[n]
        total, second, n = total + w * rm, second + w * (rv + rm * rm), n + 1
    if per_draw:
        return np.stack([np.stack([m for m, _ in kept]), np.stack([v for _, v in kept])])
    if n == 1:  # one posterior: its own moments (so that a lazy variance does not wait on the mean)
        out = [rm, np.clip(rv, 0.0, None)]
    else:
        norm = n if weights is None else 1.0
        mean = total / norm
        out = [mean, np.clip(second / norm - mean * mean, 0.0, None)]
    if probs:
        means, sds = np.stack([m for m, _ in kept]), np.sqrt(np.stack([v for _, v in kept]))
        q = mixture_quantiles(means, sds, probs, weights=weights)
        out += list(inverse_link(link or "identity", q))
    return np.stack(out)


def _check_cost(fit, numeric, dim_labels, out_order, n_out, per_draw, lazy) -> None:
    """Warn about, or refuse, a costly prediction before anything is conditioned or allocated."""
    sizes = {}
    for dim in fit.dims:
        sizes.update(zip(dim_labels[dim], np.shape(numeric[dim]), strict=True))
    test_sizes = [
        int(np.prod([sizes[c] for c in set("".join(dim_labels[d] for d in f.dims))])) for f in fit.spec.factors
    ]
    out_cells = int(np.prod([sizes[c] for c in out_order]))
    check(predict_estimate(fit, test_sizes, out_cells, n_out, per_draw, lazy), stacklevel=5)


def _request_array(fit, dim: str, value) -> xr.DataArray:
    if value is None:
        if dim in fit.data.coords:
            return fit.data[dim].reset_coords(drop=True)
        return xr.DataArray(np.arange(fit.data.sizes[dim]), dims=(dim,))
    if isinstance(value, xr.DataArray):
        return value
    if isinstance(value, xr.Variable):
        return xr.DataArray(value)
    values = np.asarray(value)
    if values.ndim == 0:
        return xr.DataArray(values)
    if values.ndim != 1:
        raise ValueError(
            f"new coordinates for {dim!r} must be 1-D, or a DataArray with named dims; got shape {values.shape}"
        )
    return xr.DataArray(values, dims=(dim,), coords={dim: values})


def _numeric(fit, dim: str, arr: xr.DataArray, training: bool):
    if training:
        factor = next(f for f in fit.spec.factors if dim in f.dims)
        return factor.coords[factor.dims.index(dim)]
    encoding = fit.encodings[dim]
    if is_dask(arr.data):
        return arr.data.map_blocks(encoding.encode, dtype=float)
    values = encoding.encode(arr.values)
    if not np.all(np.isfinite(values)):
        bad = int(np.size(values) - np.isfinite(values).sum())
        raise ValueError(f"{bad} of the new coordinates for {dim!r} are not finite (NaN/NaT/inf)")
    return values


def _block(evaluate, factors, dims, dim_labels, out_order, *blocks):
    """``evaluate(tests, out_order)`` for one block of coordinates: ``(k, [draws,] *out_shape)``."""
    values = dict(zip(dims, blocks, strict=True))
    sizes = {}
    for dim in dims:
        sizes.update(zip(dim_labels[dim], np.shape(values[dim]), strict=True))
    tests = []
    for factor in factors:
        labels = "".join(c for c in out_order if any(c in dim_labels[d] for d in factor.dims))
        shape = tuple(sizes[c] for c in labels)
        placed = (
            np.broadcast_to(place_axes(np.asarray(values[d], float), dim_labels[d], labels), shape) for d in factor.dims
        )
        tests.append(TestInputs(labels, tuple(placed)))
    return evaluate(tests, out_order)


def _chunked(block, numeric, fit, dim_labels, out_order, per_draw):
    """Evaluate ``block`` on numpy coordinates, in chunks along a points label if large."""
    factor_labels = [set("".join(dim_labels[d] for d in f.dims)) for f in fit.spec.factors]
    shared = {c for c in set("".join(dim_labels.values())) if sum(c in s for s in factor_labels) > 1}
    args = [numeric[d] for d in fit.dims]
    if not shared:
        return block(*args)
    sizes = {}
    for dim in fit.dims:
        sizes.update(zip(dim_labels[dim], np.shape(numeric[dim]), strict=True))
    label = max(shared, key=sizes.get)
    per_point = max(1, int(np.prod([f.size for f in fit.spec.factors])) // min(f.size for f in fit.spec.factors))
    step = max(1, PREDICT_CHUNK_ELEMENTS // per_point)
    if sizes[label] <= step:
        return block(*args)
    out_axis = 1 + int(per_draw) + out_order.index(label)
    pieces = []
    for start in range(0, sizes[label], step):
        sl = slice(start, start + step)
        chunk = [_take(numeric[d], dim_labels[d], label, sl) for d in fit.dims]
        pieces.append(block(*chunk))
    return np.concatenate(pieces, axis=out_axis)


def _take(array, labels: str, label: str, sl: slice):
    if label not in labels:
        return array
    index = [slice(None)] * len(labels)
    index[labels.index(label)] = sl
    return np.asarray(array)[tuple(index)]


def _blockwise(block, numeric, dims, dim_labels, out_order, per_draw, n_draws, n_out):
    import dask.array as da

    args = []
    for dim in dims:
        args += [da.asarray(numeric[dim]), dim_labels[dim] or None]
    new_axes = {"0": n_out}
    out_index = "0" + ("1" if per_draw else "") + out_order
    if per_draw:
        new_axes["1"] = n_draws
    return da.blockwise(block, out_index, *args, new_axes=new_axes, dtype=float, concatenate=True)


def _output_coords(arrays, fit, per_draw, request) -> dict:
    """The output's coordinates, each with the CF attrs and encoding that hold for its values.

    A data dim predicted at new values takes the training coordinate's attrs less those that
    described its values (``bounds``, ``actual_range``, ``valid_range``, ...:
    :func:`xkron.io.cf.grid_attrs`) unless the new values carry attrs of their own; times are
    written as floating-point ``"<units> since"`` numbers in the data's own units and calendar
    (else the fit's ``days since`` its first time); no coordinate gets a ``_FillValue``.
    """
    coords = {}
    for dim, arr in arrays.items():
        coords.update(arr.coords)
        coord = (arr.coords[dim] if dim in arr.coords else arr).variable.copy()
        training = request.get(dim) is None
        if dim in fit.data.coords and not coord.attrs:
            coord.attrs = dict(fit.data[dim].attrs)
            coord.encoding = dict(fit.data[dim].encoding) if training else {}
        if fit.encodings[dim].is_time:
            coord.encoding = {**_time_encoding(fit, dim), **coord.encoding} if training else _time_encoding(fit, dim)
        coord.attrs = grid_attrs(coord.attrs, same_values=training)
        coords[dim] = coord
    for name, coord in coords.items():
        if name not in arrays:  # the coordinates of requested points: only their dangling links go
            coords[name] = coord.variable.copy() if isinstance(coord, xr.DataArray) else coord.copy()
            coords[name].attrs = grid_attrs(coords[name].attrs, same_values=True)
    if per_draw:
        coords.update(chain=fit.params["chain"].values, draw=fit.params["draw"].values)
    return coords


def _time_encoding(fit, dim: str) -> dict:
    """How a time coordinate is written: the data's units and calendar (else the fit's), as float64."""
    own = fit.data[dim].encoding if dim in fit.data.coords else {}
    encoding = fit.encodings[dim]
    units = own.get("units") or encoding.units
    calendar = own.get("calendar") or encoding.calendar
    return {"units": units, "dtype": "float64", **({"calendar": calendar} if calendar else {})}


def _set_attrs(result: xr.Dataset, fit, noise: bool, scale: str) -> None:
    """CF attributes of a prediction: units, ``long_name`` and ``standard_name`` from the data where the values
    are on its scale, ``sd`` and ``quantiles`` as ``ancillary_variables`` of ``mean``, the data's
    ``cell_methods`` carried (:func:`xkron.results.labels.cell_methods_hold`), the CF header."""
    data, link, name = fit.data, fit.spec.likelihood.link, data_name(fit.data)
    if noise:
        what = "new observations of"
    elif link == "identity":
        what = "the latent field of"
    elif scale == "response":
        what = {"log": "the expected value per unit exposure (exp f) of", "logit": "the probability (expit f) of"}[link]
    else:
        what = f"the latent field ({link} scale) of"
    on_data_scale = link == "identity" or (scale == "response" and link == "log")
    units = {"units": "1"}
    if on_data_scale:
        units = {"units": data.attrs["units"]} if "units" in data.attrs else {}
    summaries = {"mean": "posterior mean", "sd": "posterior standard deviation", "quantiles": "posterior quantiles"}
    for var, summary in summaries.items():
        if var in result:
            result[var].attrs = {**units, "long_name": f"{summary} of {what} {name}"}
            methods = data.attrs.get("cell_methods") if on_data_scale else None
            if methods and cell_methods_hold(methods, result, result[var].dims):
                result[var].attrs["cell_methods"] = methods
    if "standard_name" in data.attrs and link == "identity":
        result["mean"].attrs["standard_name"] = data.attrs["standard_name"]
        result["sd"].attrs["standard_name"] = f"{data.attrs['standard_name']} standard_error"
        if "quantiles" in result:  # values of the quantity itself, at the probabilities of 'quantile'
            result["quantiles"].attrs["standard_name"] = data.attrs["standard_name"]
    result["mean"].attrs["ancillary_variables"] = " ".join(v for v in ("sd", "quantiles") if v in result)
    label_sample_coords(result)
    no_fill_on_coords(result)
    result.attrs = cf_header("Kronecker Gaussian process", fit.spec, data, "predict", includes_noise=int(noise),
                             scale=scale)  # fmt: skip
