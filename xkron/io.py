"""NetCDF round trip of a fitted model.

One file holds a DataTree: ``/data`` (the training data with its coords, attrs and
encodings, and the likelihood's per-cell exposure or trials), ``/params`` (the
hyperparameters), ``/inference`` (the ArviZ posterior of a NUTS or ADVI fit) and, in the root
attrs, the kernel spec, priors, likelihood and coordinate encodings as JSON. The data are
stored losslessly (packing such as ``scale_factor`` is not re-applied), so a reloaded fit
predicts bit-identically; the original encoding is restored on the DataArray.
"""

from __future__ import annotations

import json
import os

import numpy as np
import xarray as xr

from xkron.coords import CoordEncoding
from xkron.grid import Factor
from xkron.kernels import kernel_from_dict, spec_from_json, spec_to_json
from xkron.likelihoods import likelihood_from_dict
from xkron.model import ModelSpec

__all__ = ["fit_from_tree", "fit_tree", "open_fit", "write_fit"]

FORMAT = "xkron-fit-1"
_LOSSY = ("scale_factor", "add_offset", "dtype", "_FillValue", "missing_value", "_Unsigned")
_UNNAMED = "__xkron_data__"
_CELL_PREFIX = "__xkron_likelihood_"
_MASK = "__xkron_mask__"


def write_fit(fit, path: str | os.PathLike, **kwargs) -> None:
    """Write a :class:`xkron.KronFit` to ``path`` (see module docstring)."""
    fit_tree(fit).to_netcdf(path, **kwargs)


def fit_tree(fit) -> xr.DataTree:
    """A :class:`xkron.KronFit` as a DataTree (what :func:`write_fit` writes)."""
    data = fit.data.copy()
    encoding = {k: _encoding_to_json(v) for k, v in data.encoding.items()}
    encoding = {k: v for k, v in encoding.items() if _jsonable(v)}
    data.encoding = {k: v for k, v in data.encoding.items() if k not in _LOSSY}
    name = data.name if data.name is not None else _UNNAMED
    spec = {
        "format": FORMAT,
        "method": fit.method,
        "data_name": name,
        "data_encoding": encoding,
        "factors": [
            {"dims": list(f.dims), **f.kernel.to_dict(), "subset": None if f.subset is None else f.subset.tolist()}
            for f in fit.spec.factors
        ],
        "priors": {k: spec_to_json(v) for k, v in fit.spec.priors.items()},
        "likelihood": fit.spec.likelihood.to_dict(),
        "latent": fit.spec.latent,
        "solver": fit.spec.solver,
        "solver_options": fit.spec.solver_options,
        "encodings": {d: e.to_dict() for d, e in fit.encodings.items()},
        "optimizer": fit.optimizer,
    }
    stored = data.to_dataset(name=name)
    for field in fit.spec.likelihood.data_fields:
        value = getattr(fit.spec.likelihood, field)
        if isinstance(value, np.ndarray):
            stored[f"{_CELL_PREFIX}{field}"] = (fit.spec.dims, value)
    if fit.mask is not None:
        stored[_MASK] = fit.mask.astype("i1")
    children = {"data": xr.DataTree(stored), "params": xr.DataTree(fit.params)}
    if fit.posterior is not None:
        children["inference"] = fit.posterior.copy()
    return xr.DataTree(xr.Dataset(attrs={"xkron_spec": json.dumps(spec)}), children=children)


def open_fit(path: str | os.PathLike):
    """Read a fit written by :meth:`xkron.KronFit.to_netcdf`.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron, tempfile, os
    >>> x = np.linspace(0, 1, 5)
    >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, name="t")
    >>> fitted = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.nc")
    >>> fitted.to_netcdf(path)
    >>> again = xkron.open_fit(path)
    >>> bool((again.predict(a=[0.5])["mean"] == fitted.predict(a=[0.5])["mean"]).all())
    True
    """
    with xr.open_datatree(path) as probe:
        if "xkron_batch" in probe.attrs:
            from xkron.batch import BatchFit

            use_cftime = any(
                e["kind"] == "cftime"
                for name, node in probe.children.items()
                if name != "batch_labels"
                for e in json.loads(node.attrs["xkron_spec"])["encodings"].values()
            )
        else:
            spec = json.loads(probe.attrs.get("xkron_spec", "{}"))
            if spec.get("format") != FORMAT:
                raise ValueError(f"{path} is not an xkron fit file (format {spec.get('format')!r})")
            use_cftime = any(e["kind"] == "cftime" for e in spec["encodings"].values())
    with xr.open_datatree(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=use_cftime)) as tree:
        tree = tree.load()
    if "xkron_batch" in tree.attrs:
        return BatchFit.from_tree(tree)
    return fit_from_tree(tree)


def fit_from_tree(tree: xr.DataTree):
    """Inverse of :func:`fit_tree` (the tree loaded, times decoded)."""
    from xkron.result import KronFit

    spec = json.loads(tree.attrs["xkron_spec"])
    encodings = {d: CoordEncoding.from_dict(e) for d, e in spec["encodings"].items()}
    data = tree["data"].to_dataset()[spec["data_name"]]
    data.encoding.update({k: _encoding_from_json(v) for k, v in spec["data_encoding"].items()})
    if spec["data_name"] == _UNNAMED:
        data.name = None
    factors = []
    for item in spec["factors"]:
        dims = tuple(item["dims"])
        coords = tuple(
            encodings[d].encode(data[d].values) if d in data.coords else np.arange(data.sizes[d], dtype=float)
            for d in dims
        )
        subset = None if item.get("subset") is None else np.asarray(item["subset"], dtype=np.intp)
        factors.append(Factor(dims, kernel_from_dict(item), coords, subset))
    stored = tree["data"].to_dataset()
    cells = {
        k.removeprefix(_CELL_PREFIX): stored[k].transpose(*(d for f in factors for d in f.dims)).values
        for k in stored.data_vars
        if k.startswith(_CELL_PREFIX)
    }
    likelihood = likelihood_from_dict(spec.get("likelihood", {"likelihood": "gaussian"}), cells)
    priors = {k: spec_from_json(v) for k, v in spec["priors"].items()}
    model_spec = ModelSpec(
        tuple(factors),
        priors,
        likelihood,
        bool(spec.get("latent", False)),
        solver=spec.get("solver", "kronecker"),
        solver_options=spec.get("solver_options", {}),
    )
    posterior = tree["inference"].copy() if "inference" in tree.children else None
    params = tree["params"].to_dataset()
    mask = stored[_MASK].astype(bool).rename(None) if _MASK in stored else None
    return KronFit(
        data,
        model_spec,
        encodings,
        params,
        spec["method"],
        posterior=posterior,
        optimizer=spec["optimizer"],
        mask=mask,
    )


def _encoding_to_json(value):
    """Encoding values as JSON, keeping numpy types (``dtype``, ``_FillValue``) exact."""
    if isinstance(value, np.dtype):
        return {"__dtype__": value.str}
    if isinstance(value, np.generic):
        return {"__numpy__": value.dtype.str, "value": value.item()}
    if isinstance(value, tuple):
        return {"__tuple__": [_encoding_to_json(v) for v in value]}
    return value


def _encoding_from_json(value):
    if isinstance(value, dict) and "__dtype__" in value:
        return np.dtype(value["__dtype__"])
    if isinstance(value, dict) and "__numpy__" in value:
        return np.dtype(value["__numpy__"]).type(value["value"])
    if isinstance(value, dict) and "__tuple__" in value:
        return tuple(_encoding_from_json(v) for v in value["__tuple__"])
    return value


def _jsonable(value) -> bool:
    try:
        json.dumps(value)
    except TypeError:
        return False
    return True
