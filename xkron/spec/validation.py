"""Checks on user input, run before any compute.

Each check raises with a message that says what is wrong, where (dim, coordinate label,
counts) and how to fix it. Nothing here builds a model: these are cheap checks on the
``kernels`` mapping, the coordinates of the kernel dims, and the data values.
"""

from __future__ import annotations

import difflib
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from xkron.spec.coords import cftime_calendars, coord_kind
from xkron.spec.kernel_registry import resolve_kernel
from xkron.spec.kernels import Kernel

__all__ = [
    "align_cell_values",
    "cell_locator",
    "check_coords",
    "check_data",
    "normalize_kernels",
]

_MAX_LISTED = 5


# --------------------------------------------------------------------------- labels


def _label(value: Any) -> Any:
    """A readable, repr-friendly form of one coordinate value."""
    if isinstance(value, np.datetime64):
        return str(np.datetime_as_string(value, unit="auto"))
    if isinstance(value, np.generic):
        return value.item()
    if hasattr(value, "calendar") and hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _labels(values: Sequence[Any]) -> list[Any]:
    return [_label(v) for v in values]


# --------------------------------------------------------------------------- kernels


def _key_dims(key: Any) -> tuple[str, ...]:
    """Dims named by one key of ``kernels``: a dim name or a tuple of dim names."""
    dims = (key,) if isinstance(key, str) else key
    if not isinstance(dims, tuple) or not all(isinstance(d, str) for d in dims):
        raise TypeError(
            f"kernels key {key!r} ({type(key).__name__}) is not a dim name or a tuple of dim names; "
            "write e.g. kernels={'time': xkron.Matern52()} or {('lat', 'lon'): xkron.ExpQuad()}."
        )
    if not dims:
        raise ValueError("kernels key () names no dim; give a dim name or a non-empty tuple of dim names.")
    repeated = sorted({d for d in dims if dims.count(d) > 1})
    if repeated:
        raise ValueError(f"kernels key {key!r} lists dim(s) {repeated} more than once; name each dim once.")
    return dims


def _check_dim_exists(dim: str, key: Any, data_dims: tuple[Hashable, ...]) -> None:
    if dim in data_dims:
        return
    close = difflib.get_close_matches(dim, [str(d) for d in data_dims], n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"kernels key {key!r}: dim {dim!r} is not in the data; data dims are {data_dims}.{hint}")


def _check_unmapped(mapped: Mapping[str, Any], data_dims: tuple[Hashable, ...]) -> None:
    missing = [d for d in data_dims if d not in mapped]
    if not missing:
        return
    example = missing[0]
    raise ValueError(
        f"data dim(s) {missing} have no kernel. Every dim needs a kernel factor, e.g. "
        f"kernels={{..., {example!r}: xkron.ExpQuad()}}, or select a single slice with "
        f"da.isel({example}=0). Batch dims are not supported yet."
    )


def normalize_kernels(da: xr.DataArray, kernels: Mapping[Any, Kernel | str]) -> list[tuple[tuple[str, ...], Kernel]]:
    """Check a ``kernels`` mapping against the data and put it in data order.

    Parameters
    ----------
    da : xarray.DataArray
        The data; every one of its dims must be covered by exactly one factor.
    kernels : mapping
        Keys are a dim name or a tuple of dim names (one factor spanning several dims).
        Values are :class:`~xkron.spec.kernels.Kernel` instances or kernel names such as
        ``"Matern52"`` (case-insensitive; instantiated with default hyperparameters).

    Returns
    -------
    list of (tuple of str, Kernel)
        One ``(dims, kernel)`` per factor, ordered by the position of each factor's first
        dim in ``da.dims``; each factor's dims are ordered as in ``da.dims``.

    Raises
    ------
    TypeError
        If ``kernels`` is not a mapping or is empty, a key is not a dim name or tuple of
        names, or a value is not a kernel instance or kernel name.
    ValueError
        If a dim is not in the data, is mapped twice, or a data dim has no kernel, or a
        kernel name is unknown.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from xkron.spec.kernels import ExpQuad
    >>> da = xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "lat", "lon"))
    >>> for dims, k in normalize_kernels(da, {("lon", "lat"): ExpQuad(), "time": "matern52"}):
    ...     print(dims, k.name)
    ('time',) Matern52
    ('lat', 'lon') ExpQuad
    """
    if not isinstance(kernels, Mapping):
        raise TypeError(
            f"kernels must be a mapping from a dim name (or tuple of dim names) to a kernel, e.g. "
            f"{{'time': xkron.Matern52()}}; got {type(kernels).__name__}."
        )
    data_dims = tuple(da.dims)
    if not kernels:
        raise TypeError(
            f"kernels is empty; map every data dim {data_dims} to a kernel, e.g. "
            f"{{{', '.join(f'{d!r}: xkron.ExpQuad()' for d in data_dims)}}}."
        )
    mapped: dict[str, Any] = {}
    factors = []
    for key, value in kernels.items():
        dims = _key_dims(key)
        for dim in dims:
            _check_dim_exists(dim, key, data_dims)
            if dim in mapped:
                raise ValueError(
                    f"dim {dim!r} is mapped twice: by key {mapped[dim]!r} and by key {key!r}; "
                    "give each dim exactly one kernel factor."
                )
            mapped[dim] = key
        kernel = _bind_labels(key, dims, resolve_kernel(key, value), da)
        factors.append((tuple(sorted(dims, key=data_dims.index)), kernel))
    _check_unmapped(mapped, data_dims)
    return sorted(factors, key=lambda factor: data_dims.index(factor[0][0]))


def _bind_labels(key, dims, kernel, da):
    """A kernel whose parameters are named by its dim's labels (``Coregion``), bound to the data's labels.

    Kernels made for a number of dims (``Spherical``: latitude and longitude) are checked here too.
    """
    needs = getattr(kernel, "n_dims", None)
    if needs is not None and len(dims) != needs:
        raise ValueError(f"kernels[{key!r}]: {kernel.name} spans {needs} dims ({kernel.dims_hint}), not {dims}")
    if not hasattr(kernel, "bind"):
        return kernel
    if len(dims) != 1:
        raise ValueError(f"kernels[{key!r}]: {kernel.name} spans one labelled dim (e.g. 'variable'), not {dims}")
    labels = da[dims[0]].values if dims[0] in da.coords else np.arange(da.sizes[dims[0]])
    if kernel.labels is not None and list(kernel.labels) != [str(v) for v in labels]:
        raise ValueError(f"kernels[{key!r}]: {kernel.name} was made for the labels {list(kernel.labels)}, but "
                         f"{dims[0]!r} holds {[str(v) for v in labels]}")  # fmt: skip
    return kernel.bind(labels)


# --------------------------------------------------------------------------- coordinates


def _check_size(da: xr.DataArray, dim: str) -> None:
    size = da.sizes[dim]
    if size < 2:
        raise ValueError(
            f"dim {dim!r} has {size} point(s); a kernel dim needs at least 2. Drop it from the data with "
            f"da.squeeze({dim!r}, drop=True) (size 1) and from kernels, or select more points along it."
        )


def _check_coord_dtype(da: xr.DataArray, dim: str, values: np.ndarray) -> None:
    if type(da.indexes.get(dim)).__name__ == "MultiIndex":
        raise TypeError(
            f"dim {dim!r} is a stacked MultiIndex; kernel dims need 1-D numeric or time coordinates. "
            f"Unstack it with da.unstack({dim!r})."
        )
    if coord_kind(values) is None:
        raise TypeError(
            f"coordinate {dim!r} has dtype {values.dtype} ({_describe_values(values)}); kernel dims need numeric "
            f"(int, uint, float), datetime64 or cftime coordinates. Replace the labels with numbers, e.g. "
            f"da.assign_coords({dim}=np.arange(da.sizes[{dim!r}])), or drop the coordinate with "
            f"da.drop_vars({dim!r}) to use positions 0..n-1."
        )
    calendars = cftime_calendars(values) if coord_kind(values) == "cftime" else []
    if len(calendars) > 1:
        raise TypeError(f"coordinate {dim!r} mixes cftime calendars {calendars}; use one calendar per coordinate.")


def _describe_values(values: np.ndarray) -> str:
    if values.dtype.kind == "O" and values.size:
        types = sorted({type(v).__name__ for v in values.ravel()})
        return f"values of type {', '.join(types)}"
    return {"U": "strings", "S": "bytes", "b": "booleans", "c": "complex numbers", "m": "timedeltas"}.get(
        values.dtype.kind, "unsupported values"
    )


def _missing_mask(values: np.ndarray) -> np.ndarray:
    """Where coordinate values are NaN, NaT, inf or ``None``."""
    if values.dtype.kind == "M":
        return np.isnat(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and not np.isfinite(v)) for v in values], dtype=bool)
    return ~np.isfinite(values)


def _check_coord_finite(dim: str, values: np.ndarray) -> None:
    bad = np.flatnonzero(_missing_mask(values))
    if bad.size:
        raise ValueError(
            f"coordinate {dim!r} has {bad.size} missing or non-finite value(s) (NaN, NaT or inf) out of "
            f"{values.size}, first at position(s) {bad[:_MAX_LISTED].tolist()}. Drop those points, e.g. "
            f"da.isel({dim}=np.flatnonzero(da[{dim!r}].notnull())), or give them proper coordinates."
        )


def _check_coord_distinct(dim: str, values: np.ndarray) -> None:
    ordered = np.sort(values)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size:
        labels = list(dict.fromkeys(_labels(repeated)))
        shown = labels[:_MAX_LISTED] + (["..."] if len(labels) > _MAX_LISTED else [])
        raise ValueError(
            f"coordinate {dim!r} has {len(labels)} duplicated value(s): {shown}; a grid needs distinct coordinates. "
            f"Drop repeats with da.drop_duplicates({dim!r}) (keeps the first) or average them with "
            f"da.groupby({dim!r}).mean()."
        )


def _check_coord_monotonic(dim: str, values: np.ndarray) -> None:
    step_up = values[1:] > values[:-1]
    if step_up.all() or not step_up.any():
        return
    increasing = bool(step_up[0])
    pos = int(np.flatnonzero(step_up != increasing)[0])
    direction, broken = ("increases", "decreases") if increasing else ("decreases", "increases")
    raise ValueError(
        f"coordinate {dim!r} is not monotonic: it {direction} from position 0 but {broken} at position {pos + 1} "
        f"({_label(values[pos])!r} -> {_label(values[pos + 1])!r}). Sort it with da.sortby({dim!r})."
    )


def check_coords(da: xr.DataArray, dims: Sequence[str]) -> None:
    """Check the coordinates of kernel dims: size, dtype, finiteness, strict monotonicity.

    A dim without a coordinate variable passes (its positions 0..n-1 are used).

    Parameters
    ----------
    da : xarray.DataArray
        The data.
    dims : sequence of str
        The kernel dims to check.

    Raises
    ------
    ValueError
        If a dim is not in the data, has fewer than 2 points, or its coordinate has missing
        or non-finite values, duplicated values, or is not monotonic.
    TypeError
        If a coordinate is not numeric, datetime64 or cftime.

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> da = xr.DataArray(np.zeros((3, 2)), coords={"x": [3.0, 2.0, 1.0]}, dims=("x", "y"))
    >>> check_coords(da, ["x", "y"])  # decreasing is fine; "y" has no coordinate
    >>> check_coords(da.assign_coords(x=[1.0, 3.0, 2.0]), ["x"])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: coordinate 'x' is not monotonic: ... decreases at position 2 (3.0 -> 2.0). Sort it with da.sortby('x').
    """
    for dim in dims:
        if dim not in da.dims:
            raise ValueError(f"dim {dim!r} is not in the data; data dims are {tuple(da.dims)}.")
        _check_size(da, dim)
        if dim not in da.coords:
            continue
        values = np.asarray(da[dim].values)
        _check_coord_dtype(da, dim, values)
        _check_coord_finite(dim, values)
        _check_coord_distinct(dim, values)
        _check_coord_monotonic(dim, values)


# --------------------------------------------------------------------------- data values


def _dtype_advice(dtype: np.dtype) -> str:
    advice = {
        "b": "booleans are not real numbers; use da.astype(float) to model them as 0/1",
        "c": "complex values are not supported; fit da.real and da.imag separately",
        "O": "use da.astype(float) if the values are numbers",
        "U": "use da.astype(float) if the strings hold numbers",
        "S": "use da.astype(float) if the bytes hold numbers",
        "M": "datetimes cannot be modelled directly; convert them to numbers, "
        "e.g. (da - da.min()) / np.timedelta64(1, 'D')",
        "m": "timedeltas cannot be modelled directly; convert them to numbers, e.g. da / np.timedelta64(1, 'D')",
    }
    return advice.get(dtype.kind, "convert the data to float with da.astype(float) if that is meaningful")


def _location(da: xr.DataArray, index: Sequence[int]) -> dict[Hashable, Any]:
    """``{dim: coordinate label}`` of one cell (positions for dims without coordinates)."""
    return {
        dim: _label(da[dim].values[i]) if dim in da.coords else int(i) for dim, i in zip(da.dims, index, strict=True)
    }


def cell_locator(da: xr.DataArray, dims: Sequence[str]):
    """``where(mask)``: the labels of the first few True cells of a mask in ``dims`` order."""
    ordered = da.transpose(*dims)

    def where(mask: np.ndarray) -> str:
        cells = np.argwhere(np.broadcast_to(mask, ordered.shape))
        listed = [_location(ordered, idx) for idx in cells[:_MAX_LISTED]]
        return str(listed)[:-1] + (", ...]" if len(cells) > _MAX_LISTED else "]")

    return where


def align_cell_values(
    da: xr.DataArray, dims: Sequence[str], value: Any, name: str, allow_nan: bool = False
) -> np.ndarray:
    """A per-cell input (a number, or a DataArray on some of the data's dims) as an array over ``dims``.

    The DataArray's coordinates must equal the data's (no silent reindexing); it is
    broadcast over the data's other dims. ``allow_nan`` lets NaN through (for inputs needed
    only at observed cells, which the caller then checks).
    """
    if isinstance(value, xr.DataArray):
        extra = [d for d in value.dims if d not in da.dims]
        if extra:
            raise ValueError(f"{name} has dims {extra} that the data lack (data dims: {list(da.dims)})")
        for dim in value.dims:
            if value.sizes[dim] != da.sizes[dim] or (
                dim in value.coords and dim in da.coords and not value.indexes[dim].equals(da.indexes[dim])
            ):
                raise ValueError(
                    f"{name} does not align with the data along {dim!r}: its coordinates must equal the data's "
                    f"(use {name}.reindex_like(da) or da.sel(...) first)"
                )
        array = np.asarray(value.variable.set_dims(dict(da.sizes)).transpose(*dims).values, dtype=float)
    else:
        try:
            array = np.full(tuple(da.sizes[d] for d in dims), float(value))
        except (TypeError, ValueError):
            raise TypeError(f"{name} must be a number or an xarray.DataArray, not {type(value).__name__}") from None
    bad = np.isinf(array) if allow_nan else ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} has {int(bad.sum())} non-finite values ({'inf' if allow_nan else 'NaN or inf'})")
    return array


def check_data(da: xr.DataArray, allow_bool: bool = False, allow_missing: bool = False) -> None:
    """Check that the data values are real numbers and all finite.

    Parameters
    ----------
    da : xarray.DataArray
        The data to be fitted.
    allow_bool : bool
        Accept booleans (0/1 data for a Bernoulli likelihood).
    allow_missing : bool
        Accept NaN cells (unobserved; latent models drop them from the likelihood). ±inf is
        still an error.

    Raises
    ------
    TypeError
        If the dtype is not int, uint or float (bool, complex, object, strings, datetimes).
    ValueError
        If the data are empty or some values are NaN or ±inf (missing cells are not
        supported yet).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> check_data(xr.DataArray([1.0, 2.0], dims="x"))
    >>> check_data(xr.DataArray([1.0, np.nan], coords={"x": [10, 20]}, dims="x"))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
        ...
    ValueError: data has 1 NaN and 0 ±inf value(s) out of 2, at [{'x': 20}]. The exact Gaussian marginal ...
    """
    if da.dtype.kind not in ("iufb" if allow_bool else "iuf"):
        raise TypeError(
            f"data has dtype {da.dtype}; values must be real numbers (int, uint or float): {_dtype_advice(da.dtype)}."
        )
    if da.size == 0:
        raise ValueError(f"data are empty (sizes {dict(da.sizes)}); select a non-empty grid.")
    if da.dtype.kind != "f":
        return
    values = np.asarray(da.values)
    bad = np.isinf(values) if allow_missing else ~np.isfinite(values)
    if not bad.any():
        return
    n_nan = int(np.isnan(values[bad]).sum())
    n_inf = int(bad.sum()) - n_nan
    where = [_location(da, idx) for idx in np.argwhere(bad)[:_MAX_LISTED]]
    more = ", ..." if int(bad.sum()) > _MAX_LISTED else ""
    if allow_missing:
        raise ValueError(
            f"data has {n_inf} ±inf value(s) out of {values.size}, at {str(where)[:-1]}{more}]. "
            "Mark unobserved cells with NaN (da.where(np.isfinite(da)))."
        )
    raise ValueError(
        f"data has {n_nan} NaN and {n_inf} ±inf value(s) out of {values.size}, at {str(where)[:-1]}{more}]. "
        "The exact Gaussian marginal model needs a complete grid: fit with latent=True (missing cells leave "
        "the likelihood exactly, at the cost of sampling the field), fill them (da.interpolate_na(dim), "
        "da.fillna(value)), or select a complete sub-grid with da.isel(...) / da.sel(...)."
    )
