"""Labels of a fit's outputs: CF attributes of hyperparameters, predictions and sample fields.

One place says how the data are named in every output's ``long_name`` (:func:`data_name`) and
which CF header an output carries (:func:`cf_header`); :func:`labelled_params` gives each
hyperparameter its units, description and prior.
"""

from __future__ import annotations

from collections.abc import Mapping

import xarray as xr

from xkron.spec.coords import CoordEncoding
from xkron.spec.modelspec import ModelSpec
from xkron.spec.prior_types import is_prior

__all__ = ["cf_header", "data_name", "labelled_params"]


def data_name(data: xr.DataArray) -> str:
    """How outputs name the data: its ``long_name``, ``standard_name``, name, or ``"data"``."""
    return data.attrs.get("long_name") or data.attrs.get("standard_name") or data.name or "data"


def cf_header(source: str, spec: ModelSpec, **extra) -> dict:
    """The global attributes of an output Dataset: CF convention, what made it, the likelihood."""
    return {"Conventions": "CF-1.8", "source": source, **extra, "likelihood": spec.likelihood.name}


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
    params.attrs["method"] = method
    return params
