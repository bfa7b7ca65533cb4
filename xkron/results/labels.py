"""Labels of a fit's outputs: CF attributes of hyperparameters, predictions and sample fields.

One place says how the data are named in every output's ``long_name`` (:func:`data_name`),
which CF header an output carries (:func:`cf_header`: ``Conventions``, ``source`` and a
``history`` line above the data's own), how the coordinates xkron adds are labelled
(:func:`label_sample_coords`) and when the data's ``cell_methods`` still hold
(:func:`cell_methods_hold`); :func:`labelled_params` gives each hyperparameter its units,
description and prior.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import xarray as xr

from xkron.io.cf import CONVENTIONS, history, version
from xkron.spec.coords import CoordEncoding
from xkron.spec.modelspec import ModelSpec
from xkron.spec.prior_types import is_prior

__all__ = [
    "SAMPLE_COORD_ATTRS",
    "cell_methods_hold",
    "cf_header",
    "data_name",
    "label_sample_coords",
    "labelled_params",
]

SAMPLE_COORD_ATTRS = {
    "quantile": {"units": "1", "long_name": "probability of a value below the quantile"},
    "chain": {"units": "1", "long_name": "Markov chain (or ADVI draw set) number"},
    "draw": {"units": "1", "long_name": "posterior draw number within its chain"},
    "sample": {"units": "1", "long_name": "sample field number"},
    "design_point": {"units": "1", "long_name": "INLA design point the sample field was drawn at"},
    "component_name": {"long_name": "additive part of a factor's kernel"},
}
"""CF attributes of the coordinates xkron adds to its outputs (kept where an output sets its own ``long_name``)."""


def data_name(data: xr.DataArray) -> str:
    """How outputs name the data: its ``long_name``, ``standard_name``, name, or ``"data"``."""
    return data.attrs.get("long_name") or data.attrs.get("standard_name") or data.name or "data"


def cf_header(source: str, spec: ModelSpec, data: xr.DataArray, action: str, **extra) -> dict:
    """The global attributes of an output Dataset: CF convention, what made it (with xkron's version), a
    ``history`` line for ``action`` above the data's own history, ``extra``, the likelihood."""
    return {
        "Conventions": CONVENTIONS,
        "source": f"xkron {version()}: {source}",
        "history": history(action, data.attrs.get("history")),
        **extra,
        "likelihood": spec.likelihood.name,
    }


def label_sample_coords(ds: xr.Dataset) -> None:
    """Give the coordinates xkron adds (``quantile``, ``chain``, ``draw``, ``sample``, ...) their units and
    ``long_name`` (:data:`SAMPLE_COORD_ATTRS`), in place, keeping attrs already set."""
    for name, attrs in SAMPLE_COORD_ATTRS.items():
        if name in ds.coords:
            ds[name].attrs = {**attrs, **ds[name].attrs}


def cell_methods_hold(cell_methods: str, ds: xr.Dataset, dims) -> bool:
    """Whether every name of a ``cell_methods`` attribute is still one of ``dims``, a scalar coordinate of
    ``ds``, the ``standard_name`` of one of its coordinates, or ``area``: what CF §7.3 allows a ``name:``.

    A prediction keeps the data's ``cell_methods`` (its values are of the same quantity: annual means
    stay annual means) wherever they still name its axes; at scattered points, where a dim became an
    auxiliary coordinate without a standard name, they would name nothing, and are dropped.

    Examples
    --------
    >>> ds = xr.Dataset(coords={"time": [0, 1]})
    >>> cell_methods_hold("time: mean (interval: 6 hour) area: mean", ds, ("time",))
    True
    >>> cell_methods_hold("height: mean", ds, ("time",))
    False
    >>> points = xr.Dataset(coords={"time": ("point", [0, 1])})
    >>> cell_methods_hold("time: mean", points, ("point",))
    False
    """
    names = re.findall(r"(\S+?)\s*:", re.sub(r"\([^)]*\)", "", cell_methods))
    known = {"area", *map(str, dims), *(str(k) for k, c in ds.coords.items() if c.ndim == 0)}
    known |= {str(c.attrs["standard_name"]) for c in ds.coords.values() if "standard_name" in c.attrs}
    return all(name in known for name in names)


def _kernel_units(base: str, encoding: CoordEncoding) -> str:
    """Units of a kernel parameter of a kind on a dim: lengthscales and periods in the dim's, a trend's pivot
    in its coordinate's, a polynomial's offset squared, weights and shapes none."""
    if base in ("alpha", "scale", "sigma"):
        return "1"
    if base == "c":
        return encoding.units
    if base == "offset":
        return f"({encoding.lengthscale_units})2" if encoding.lengthscale_units else "1"
    return encoding.lengthscale_units


def labelled_params(
    values, spec: ModelSpec, encodings: Mapping[str, CoordEncoding], units: str, method: str
) -> xr.Dataset:
    """The ``params`` Dataset of a fit: fitted ``values`` and fixed ones, with units, description and prior.

    Lengthscales take their dim's units (days for times), the amplitude and mean the data's
    ``units`` on the identity link (else ``"1"``, on the link scale).
    """
    params = values.copy() if isinstance(values, xr.Dataset) else xr.Dataset(dict(values))
    for name, value in spec.fixed().items():
        params[name] = value
    for factor in spec.factors:
        relative = factor.kernel.relative_keys()
        own_units = {name: leaf.length_units for leaf, b in factor.kernel.leaves() for name in b.values()
                     if getattr(leaf, "length_units", None)}  # fmt: skip
        for key, names in factor.param_names().items():
            base, _ = factor.kernel.param_label(key)
            for i, name in enumerate(names if isinstance(names, list) else [names]):
                unit = own_units.get(key) or _kernel_units(base, encodings[factor.dims[i]])
                attrs = {"units": "1" if key in relative else unit}
                attrs["long_name"] = f"{base} of the {factor.kernel.describe(key)} kernel along {'/'.join(factor.dims)}"
                params[name].attrs.update(attrs)
    link = spec.likelihood.link
    scale_units = units if link == "identity" else "1"
    on_scale = "" if link == "identity" else f" ({link} scale)"
    described = {
        "amplitude": (scale_units, f"GP amplitude (sd){on_scale}"),
        "mean": (scale_units, f"constant mean{on_scale}"),
        "noise": (units, "noise sd"),
        "nu": ("1", "Student-t degrees of freedom"),
        "dispersion": ("1", "negative binomial dispersion (alpha: var = mu + mu^2/alpha)"),
        "shape": ("1", "gamma shape (var = mean^2/shape)"),
    }
    for name, (unit, long_name) in described.items():
        if name in params:
            params[name].attrs.update(units=unit, long_name=long_name)
    for name, prior in spec.priors.items():
        params[name].attrs["prior"] = repr(prior) if is_prior(prior) else "fixed"
    sample_dims = {d: params[d] for d in ("chain", "draw") if d in params.coords}
    params = params[list(spec.priors)].assign_coords(sample_dims)  # kept even if all are fixed
    label_sample_coords(params)
    params.attrs["method"] = method
    return params
