"""NetCDF round trip of a fitted model.

One file holds a DataTree: ``/data`` (the training data with its coords, attrs and
encodings, and the likelihood's per-cell exposure or trials), ``/params`` (the
hyperparameters), ``/inference`` (the ArviZ posterior of a NUTS or ADVI fit) and, in the root
attrs, the kernel spec, priors, likelihood and coordinate encodings as JSON. The data and
their coordinates are stored losslessly (packing such as ``scale_factor``, and time units
that cannot hold the times exactly, are not re-applied), and each time variable is decoded
back to its own type and resolution (``datetime64[us]`` stays ``[us]``, cftime stays
cftime), so a reloaded fit predicts bit-identically; the original encodings are restored on
the DataArray and its coordinates. Files are written atomically (:mod:`xkron.io.atomic`): a
failed write leaves the previous file at the path intact.

The root is what ``xarray.open_dataset`` shows of the file: CF global attributes (``Conventions``,
``title``, ``history``, ``source``), the model and its parameters in words, and a ``comment``
that points to the groups, which ``xkron.open_fit`` and ``xarray.open_datatree`` read. No file
records where it was made: the input file's path (xarray's ``source`` encoding) is not kept, and
a coordinate's ``bounds`` attribute, naming a variable the fit does not hold, is kept in the JSON
spec rather than on the written coordinate (it is restored on reading).
"""

from __future__ import annotations

import json
import os

import numpy as np
import xarray as xr

from xkron.errors import NotAFitError
from xkron.io.atomic import atomic_write
from xkron.io.cf import CONVENTIONS, LINK_ATTRS, history, version
from xkron.spec.coords import CoordEncoding, coord_kind
from xkron.spec.kernel_registry import kernel_from_dict
from xkron.spec.likelihoods import likelihood_from_dict
from xkron.spec.modelspec import ModelSpec, coord_factors
from xkron.spec.prior_types import spec_from_json, spec_to_json
from xkron.spec.solver import Solver

__all__ = [
    "FORMAT",
    "READABLE_FORMATS",
    "fit_parts",
    "fit_tree",
    "header",
    "read_fit_tree",
    "write_fit",
    "write_tree",
]

FORMAT = "xkron-fit-2"
"""Format of the fits written: times counted from the data's start, per-variable time types."""
READABLE_FORMATS = ("xkron-fit-1", FORMAT)
"""Formats :func:`open_fit` reads (``xkron-fit-1``: times as days since 1970-01-01)."""
_LOSSY = ("scale_factor", "add_offset", "dtype", "_FillValue", "missing_value", "_Unsigned")
_TIME_LOSSY = ("units", "calendar")  # a time written in other units than it needs is rounded on the way back
_UNNAMED = "__xkron_data__"
_CELL_PREFIX = "__xkron_likelihood_"
_MASK = "__xkron_mask__"
_XARRAY_TIME_UNITS = ("s", "ms", "us", "ns")
_UNKEPT = ("source",)  # xarray's record of the file the data were read from: a local path


def write_tree(tree: xr.DataTree, path: str | os.PathLike, **kwargs) -> None:
    """Write a DataTree to NetCDF atomically: the file at ``path`` is replaced only once complete.

    ``kwargs`` go to ``DataTree.to_netcdf``; appending (``mode="a"``) is refused, since a fit
    is written whole.
    """
    if kwargs.get("mode", "w") != "w":
        raise ValueError(f"a fit is written whole: mode={kwargs['mode']!r} is not supported (use mode='w')")
    with atomic_write(path) as tmp:
        tree.to_netcdf(tmp, **kwargs)


def write_fit(fit, path: str | os.PathLike, command: str | None = None, **kwargs) -> None:
    """Write a :class:`xkron.KronFit` to ``path``, atomically (see module docstring); ``command``: the
    command line that made it, for the ``history`` line (:func:`xkron.io.cf.history`)."""
    write_tree(fit_tree(fit, command), path, **kwargs)


def _time_type(variable: xr.Variable) -> str | None:
    """``"datetime64[us]"``, ``"timedelta64[s]"``, ``"cftime"``, or ``None`` for other variables."""
    if variable.dtype.kind in "Mm":
        return str(variable.dtype)
    if variable.dtype.kind == "O" and coord_kind(variable.values) == "cftime":
        return "cftime"
    return None


def _lossless_coords(data: xr.DataArray) -> tuple[xr.DataArray, dict, dict, dict]:
    """Coordinates stripped of encodings that could change their values (and of ``_FillValue``:
    CF coordinates have none), the stripped encodings (JSON) to restore after reading, each time
    variable's type, and the attributes naming variables the file does not hold (``bounds``)."""
    encodings, types, links = {}, {}, {}
    coords = {}
    for name, coord in data.coords.items():
        variable = coord.variable.copy(deep=False)
        kind = _time_type(variable)
        if kind is not None:
            types[str(name)] = kind
        encodings[str(name)] = _json_encoding(variable.encoding)
        drop = _LOSSY + (_TIME_LOSSY if kind is not None and kind != "cftime" else ("units",) if kind else ())
        variable.encoding = {k: v for k, v in variable.encoding.items() if k not in drop} | {"_FillValue": None}
        dangling = {k: v for k, v in variable.attrs.items() if k in LINK_ATTRS and v not in data.coords}
        if dangling:
            links[str(name)] = dangling
            variable.attrs = {k: v for k, v in variable.attrs.items() if k not in dangling}
        coords[name] = variable
    return data.assign_coords(coords), encodings, types, links


def _json_encoding(encoding: dict) -> dict:
    """An encoding as JSON: the values JSON can hold, less the local path of the file read (``source``)."""
    encoding = {k: _encoding_to_json(v) for k, v in encoding.items() if k not in _UNKEPT}
    return {k: v for k, v in encoding.items() if _jsonable(v)}


def header(title: str, action: str, previous_history=None, command: str | None = None, **extra) -> dict:
    """CF global attributes of a file's root: ``Conventions``, ``title``, ``source``, a ``history`` line for
    ``action`` (or the ``command`` line) above ``previous_history`` (:func:`xkron.io.cf.history`), then ``extra``."""
    return {
        "Conventions": CONVENTIONS,
        "title": title,
        "source": f"xkron {version()}",
        "history": history(action, previous_history, command=command),
        **extra,
    }


def _fit_header(fit, data: xr.DataArray, command: str | None = None) -> dict:
    """The root attributes of a fit file: what ``xarray.open_dataset`` shows of it (see module docstring)."""
    name = data.attrs.get("long_name") or data.attrs.get("standard_name") or data.name or "data"
    kernels = " * ".join(f"{f.kernel.name}({', '.join(f.dims)})" for f in fit.spec.factors)
    params = fit.params
    values = ", ".join(f"{k}={np.mean(v.values):.4g} {v.attrs.get('units', '')}".rstrip() for k, v in params.items())
    averaged = " (posterior means)" if any(v.ndim for v in params.values()) else ""
    return header(
        f"xkron fit of {name}",
        f"fit ({fit.method})",
        data.attrs.get("history"),
        command,
        model=f"y ~ {fit.spec.likelihood.name}(f), f ~ GP(mean, amplitude^2 * {kernels})",
        parameters=f"{values}{averaged}",
        comment="An xkron fit: the groups /data (training data), /params (hyperparameters) and, for NUTS and ADVI "
        "fits, /inference (posterior draws) hold it; open it with xkron.open_fit(path), or see every group with "
        "xarray.open_datatree(path) (xarray.open_dataset shows this root only).",
    )


def fit_tree(fit, command: str | None = None) -> xr.DataTree:
    """A :class:`xkron.KronFit` as a DataTree (what :func:`write_fit` writes)."""
    data, coord_encodings, time_types, coord_links = _lossless_coords(fit.data.copy())
    encoding = _json_encoding(data.encoding)
    data.encoding = {k: v for k, v in data.encoding.items() if k not in _LOSSY}
    name = data.name if data.name is not None else _UNNAMED
    spec = {
        "format": FORMAT,
        "method": fit.method,
        "data_name": name,
        "data_encoding": encoding,
        "coord_encodings": coord_encodings,
        "time_types": time_types,
        "coord_links": coord_links,
        "factors": [
            {"dims": list(f.dims), **f.kernel.to_dict(), "subset": None if f.subset is None else f.subset.tolist()}
            for f in fit.spec.factors
        ],
        "priors": {k: spec_to_json(v) for k, v in fit.spec.priors.items()},
        "likelihood": fit.spec.likelihood.to_dict(),
        "latent": fit.spec.latent,
        "solver": fit.spec.solver.name,
        "solver_options": fit.spec.solver.options(),
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
    root = xr.Dataset(attrs={**_fit_header(fit, fit.data, command), "xkron_spec": json.dumps(spec)})
    return xr.DataTree(root, children=children)


def _fit_spec(attrs, path) -> dict:
    """The JSON spec of one fit's node, checked to be a format this version reads."""
    if "xkron_spec" not in attrs:
        raise NotAFitError(path, "a NetCDF file without the 'xkron_spec' attribute that KronFit.to_netcdf writes")
    try:
        spec = json.loads(attrs["xkron_spec"])
    except (TypeError, ValueError) as err:
        raise NotAFitError(path, f"its 'xkron_spec' attribute is not valid JSON: {err}") from None
    if not isinstance(spec, dict) or spec.get("format") not in READABLE_FORMATS:
        found = spec.get("format") if isinstance(spec, dict) else None
        raise NotAFitError(path, f"format {found!r}; this xkron reads {', '.join(READABLE_FORMATS)}: upgrade xkron")
    return spec


def _decoders(spec: dict, data_node: xr.DataTree, times: dict, deltas: dict) -> None:
    """Add to ``times``/``deltas`` the coder of each time variable of one fit's ``/data``.

    Files of this format record each variable's type; for older ones, a variable with
    ``since`` in its units is decoded to cftime where the fit's encoding (or, off the kernel
    dims, any of its time dims) was cftime, else to datetime64 where it can be (cftime
    otherwise), which reads reanalysis units such as ``hours since 1-1-1`` too.
    """
    kinds = {d: e["kind"] for d, e in spec["encodings"].items()}
    types = spec.get("time_types")
    if types is None:
        any_cftime = "cftime" in kinds.values()
        for name, variable in data_node.variables.items():
            if "since" in str(variable.attrs.get("units", "")):
                cftime = kinds.get(name) == "cftime" or (name not in kinds and any_cftime)
                times[name] = xr.coders.CFDatetimeCoder(use_cftime=True if cftime else None)
        return
    for name, kind in types.items():
        if kind == "cftime":
            times[name] = xr.coders.CFDatetimeCoder(use_cftime=True)
            continue
        unit, _ = np.datetime_data(np.dtype(kind))
        if unit not in _XARRAY_TIME_UNITS:
            continue
        if np.dtype(kind).kind == "M":
            times[name] = xr.coders.CFDatetimeCoder(time_unit=unit)
        else:
            deltas[name] = xr.coders.CFTimedeltaCoder(time_unit=unit)


def _probe(path) -> tuple[bool, dict, dict]:
    """Whether ``path`` is a batch fit, and the time coders of its variables (metadata only)."""
    times: dict = {}
    deltas: dict = {}
    with xr.open_datatree(path, decode_times=False, decode_timedelta=False) as probe:
        if "xkron_batch" in probe.attrs:
            for name, node in probe.children.items():
                if name != "batch_labels" and "data" in node.children:
                    _decoders(_fit_spec(node.attrs, path), node["data"], times, deltas)
            return True, times, deltas
        spec = _fit_spec(probe.attrs, path)
        missing = [g for g in ("data", "params") if g not in probe.children]
        if missing:
            raise NotAFitError(path, f"group(s) {missing} are missing: the file is incomplete")
        _decoders(spec, probe["data"], times, deltas)
    return False, times, deltas


def read_fit_tree(path: str | os.PathLike) -> tuple[xr.DataTree, bool]:
    """The loaded DataTree of a fit file, with every time decoded to the type it was written
    from, and whether it holds a batch of fits.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    NotAFitError
        (a ``ValueError``) ``"PATH is not an xkron fit (why)"``: a text file, a truncated or
        damaged file, a NetCDF file that is not a fit, or a fit of an unknown format.
    """
    if not os.path.exists(path):
        raise FileNotFoundError(f"{os.fspath(path)}: no such file")
    if os.path.isdir(path):
        raise NotAFitError(path, "a directory; a fit is one NetCDF file")
    try:
        is_batch, times, deltas = _probe(path)
        with xr.open_datatree(path, decode_times=times or True, decode_timedelta=deltas or None) as tree:
            return tree.load(), is_batch
    except NotAFitError:
        raise
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise NotAFitError(path, f"not a readable NetCDF file, or a truncated or damaged one: {err}") from err


def fit_parts(tree: xr.DataTree) -> dict:
    """The arguments of :class:`xkron.KronFit` stored in a tree by :func:`fit_tree` (the tree
    loaded, times decoded): its inverse, up to building the fit."""
    spec = json.loads(tree.attrs["xkron_spec"])
    encodings = {d: CoordEncoding.from_dict(e) for d, e in spec["encodings"].items()}
    data = tree["data"].to_dataset()[spec["data_name"]]
    data.encoding = {k: _encoding_from_json(v) for k, v in spec["data_encoding"].items()}  # as it was, not the file's
    if spec["data_name"] == _UNNAMED:
        data.name = None
    for name, encoding in spec.get("coord_encodings", {}).items():
        if name in data.coords:
            data.coords[name].encoding = {k: _encoding_from_json(v) for k, v in encoding.items()}
    for name, attrs in spec.get("coord_links", {}).items():
        if name in data.coords:
            data.coords[name].attrs.update(attrs)
    subsets = [None if item.get("subset") is None else np.asarray(item["subset"], np.intp) for item in spec["factors"]]
    layout = [(item["dims"], kernel_from_dict(item), s) for item, s in zip(spec["factors"], subsets, strict=True)]
    labelled = [d for dims, kernel, _ in layout if kernel.labelled for d in dims]  # labels taken by position
    factors = coord_factors(layout, data, encodings, positions=labelled)
    stored = tree["data"].to_dataset()
    cells = {
        k.removeprefix(_CELL_PREFIX): stored[k].transpose(*(d for f in factors for d in f.dims)).values
        for k in stored.data_vars
        if k.startswith(_CELL_PREFIX)
    }
    likelihood = likelihood_from_dict(spec.get("likelihood", {"likelihood": "gaussian"}), cells)
    priors = {k: spec_from_json(v) for k, v in spec["priors"].items()}
    model_spec = ModelSpec(
        factors,
        priors,
        likelihood,
        bool(spec.get("latent", False)),
        Solver.from_options(spec.get("solver", "kronecker"), spec.get("solver_options", {})),
    )
    posterior = tree["inference"].copy() if "inference" in tree.children else None
    params = tree["params"].to_dataset()
    mask = stored[_MASK].astype(bool).rename(None) if _MASK in stored else None
    return {
        "data": data,
        "spec": model_spec,
        "encodings": encodings,
        "params": params,
        "method": spec["method"],
        "posterior": posterior,
        "optimizer": spec["optimizer"],
        "mask": mask,
    }


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
