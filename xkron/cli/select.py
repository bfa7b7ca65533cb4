"""``--sel DIM=VALUE|START:STOP`` and ``--squeeze``: choose the part of a file a command reads.

The same option, parsed and checked the same way, on every command that reads a grid
(``xkron fit``, ``batch``, ``predict`` and the commands built on these helpers):

* ``--sel DIM=VALUE`` keeps one point of a dim of any size, by label (``member=r1``,
  ``level=850``, ``time=2000-01-01``), or by position for a dim without a coordinate;
* ``--sel DIM=START:STOP`` keeps a range, both ends included, with xarray's label slicing:
  dates may be partial (``time=2000-01:2000-12`` is the whole of 2000), an end may be left
  open (``time=2000:``), and a decreasing coordinate (latitude from 90 to -90) is sliced in
  its own order;
* ``--squeeze`` drops every dim of size 1 that no ``--kernel`` or ``--batch-dim`` names: a
  dim of size 1 (one pressure level, one ensemble member) cannot carry a kernel, which needs
  at least two points.

The data commands (:func:`select_dims`) drop a dim selected at one point and keep its
coordinate as a scalar, and apply the selection to every variable of the file (mask, noise
sd, exposure, trials alike). ``xkron predict`` (:func:`select_coords`) selects the
coordinates it predicts at. The error messages about dims without a kernel suggest them where
they apply, and only options that the command has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from xkron.cli.errors import JobInputError, click_callback
from xkron.cli.parsing import split_span

__all__ = [
    "SELECT_OPTIONS",
    "check_kernel_dim_sizes",
    "is_range",
    "missing_kernel_message",
    "parse_sel",
    "select_coords",
    "select_dims",
]

SHOWN_VALUES = 5
"""Coordinate values listed when a --sel value is not found (enough to see their form)."""


def _error(message: str, option: str) -> JobInputError:
    return JobInputError(message, option)


def parse_sel(items: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``DIM=VALUE`` (or ``DIM=START:STOP``) into ``{dim: value text}``.

    Examples
    --------
    >>> parse_sel(["level=850", "time=2000-01:2000-12"])
    {'level': '850', 'time': '2000-01:2000-12'}
    """
    out: dict[str, str] = {}
    for item in items:
        dim, sep, value = item.partition("=")
        dim, value = dim.strip(), value.strip()
        if not sep or not dim or not value:
            raise _error(
                f"{item!r} is not DIM=VALUE or DIM=START:STOP, e.g. level=850, member=r1 or time=2000-01:2000-12",
                "--sel",
            )
        if dim in out:
            raise _error(f"dim {dim!r} is selected twice", "--sel")
        out[dim] = value
    return out


def is_range(text: str) -> bool:
    """Whether a ``--sel`` value is a range ``START:STOP`` (else one point).

    Examples
    --------
    >>> is_range("2000-01:2000-12"), is_range("2000-01-01T06:00"), is_range("r1")
    (True, False, False)
    """
    return split_span(text, empty_ok=True) is not None


def _point(values, text: str):
    """A label of the coordinate's type from its text."""
    import numpy as np

    if values.dtype.kind in "iu":
        return int(text)
    if values.dtype.kind == "f":
        return float(text)
    if values.dtype.kind == "M":
        return np.datetime64(text).astype(values.dtype)
    if values.dtype.kind == "O" and values.size and hasattr(values.flat[0], "calendar"):
        import cftime

        date = np.datetime64(text, "s").astype(object)
        fields = (date.year, date.month, date.day, date.hour, date.minute, date.second)
        return cftime.datetime(*fields, calendar=values.flat[0].calendar)
    return text


def _bound(values, text: str):
    """One end of a range: dates stay text (xarray reads partial dates), numbers become numbers."""
    if not text:
        return None
    if values.dtype.kind in "iuf":
        return float(text)
    return text


def _label(ds, dim: str, text: str) -> tuple[str, Any]:
    """``("sel", label or slice)``, or ``("isel", position or slice)`` for a dim without a coordinate."""
    span = split_span(text, empty_ok=True)
    if dim not in ds.coords:
        try:
            if span is None:
                return "isel", int(text)
            return "isel", slice(int(span[0]) if span[0] else None, int(span[1]) + 1 if span[1] else None)
        except ValueError:
            raise _error(f"dim {dim!r} has no coordinate: give a position 0..{ds.sizes[dim] - 1}", "--sel") from None
    values = ds[dim].values
    try:
        if span is None:
            return "sel", _point(values, text)
        low, high = (_bound(values, v) for v in span)
        decreasing = values.size > 1 and values.dtype.kind in "iuf" and values[0] > values[-1]
        return "sel", slice(high, low) if decreasing else slice(low, high)
    except (ValueError, TypeError, OverflowError) as err:
        raise _error(
            f"{dim}={text}: {text!r} is not a value of {dim!r}'s type {values.dtype} ({err})", "--sel"
        ) from None


def _shown(ds, dim: str) -> str:
    if dim not in ds.coords:
        return f"positions 0..{ds.sizes[dim] - 1}"
    values = ds[dim].values
    more = " ..." if values.size > SHOWN_VALUES else ""
    return "its values: " + ", ".join(str(v) for v in values[:SHOWN_VALUES]) + more


def _select_one(ds, dim: str, text: str, keep_dim: bool):
    """``ds`` with ``--sel dim=text`` applied; a point keeps the dim (length 1) where ``keep_dim``."""
    how, label = _label(ds, dim, text)
    if keep_dim and not isinstance(label, slice):
        label = [label]
    try:
        out = ds.isel({dim: label}) if how == "isel" else ds.sel({dim: label})
    except (KeyError, IndexError, TypeError, ValueError):
        raise _error(f"{dim}={text}: no such point of {dim!r} ({_shown(ds, dim)})", "--sel") from None
    if isinstance(label, slice) and out.sizes[dim] == 0:
        raise _error(f"{dim}={text}: the range holds no point of {dim!r} ({_shown(ds, dim)})", "--sel")
    if not isinstance(label, slice) and not keep_dim and dim in out.dims:
        raise _error(f"{dim}={text} matches several points of {dim!r}; select one", "--sel")
    return out


def select_dims(ds, var: str, sel: Mapping[str, str], squeeze: bool, named: Sequence[str]):
    """``ds`` with the ``--sel`` selected and (``squeeze``) the unnamed size-1 dims of ``var`` dropped.

    A point drops its dim (kept as a scalar coordinate); a range keeps it. Lazy (dask or
    on-disk) variables stay lazy.
    """
    dims = [str(d) for d in ds[var].dims] if var in ds.data_vars else []
    for dim, text in sel.items():
        if dim not in dims:
            raise _error(f"{dim!r} is not a dim of {var!r} (dims: {', '.join(dims)})", "--sel")
        if dim in named and not is_range(text):
            raise _error(
                f"{dim!r} is selected at one point by --sel but also named by --kernel or --batch-dim (a range "
                f"such as {dim}=START:STOP keeps the dim)",
                "--sel",
            )
        ds = _select_one(ds, dim, text, keep_dim=False)
    if squeeze:
        single = [d for d in dims if d not in sel and d not in named and ds.sizes[d] == 1]
        ds = ds.squeeze(single) if single else ds
    return ds


def select_coords(ds, sel: Mapping[str, str], dims: Sequence[str]):
    """``ds`` with the ``--sel`` of the ``dims`` it has applied, a point keeping its dim (length 1).

    For the coordinates a prediction is made at (``xkron predict``): the selected dims stay
    dims of the output; ``--squeeze`` drops those of length 1 afterwards. Selections of other
    dims are left to the caller.

    Examples
    --------
    >>> import xarray as xr
    >>> ds = xr.Dataset(coords={"x": [0.0, 1.0, 2.0, 3.0], "member": ["r1", "r2"]})
    >>> out = select_coords(ds, {"x": "1:2", "member": "r2"}, ["x", "member"])
    >>> out["x"].values.tolist(), out["member"].values.tolist()
    ([1.0, 2.0], ['r2'])
    """
    for dim, text in sel.items():
        if dim in dims and dim in ds.dims:
            ds = _select_one(ds, dim, text, keep_dim=True)
    return ds


def _fixes_for_single(da, dim: str) -> str:
    value = da[dim].values[0] if dim in da.coords else 0
    return f"--squeeze, or --sel {dim}={value}"


def missing_kernel_message(da, missing: Sequence[str], batch: bool) -> str:
    """What to do about dims of ``da`` that have no kernel, suggesting only options that exist.

    ``batch``: the command is ``xkron batch`` (which has ``--batch-dim``); else ``xkron fit``.
    """
    single = [d for d in missing if da.sizes[d] == 1]
    others = [d for d in missing if da.sizes[d] > 1]
    parts = []
    if others:
        where = f"--batch-dim {others[0]}" if batch else f"`xkron batch ... --batch-dim {others[0]}`"
        parts.append(
            f"add a kernel for {others}, e.g. --kernel {others[0]}=Matern52, or fit one GP per slice with {where}"
        )
    if single:
        fixes = _fixes_for_single(da, single[0])
        parts.append(f"{single} have a single point, which a kernel cannot use: drop them with {fixes}")
    return f"dims {list(missing)} of {da.name!r} have no kernel: " + "; ".join(parts)


def check_kernel_dim_sizes(da, dims: Sequence[str], text: str) -> None:
    """Refuse a ``--kernel`` on a dim of size 1, pointing at ``--squeeze``/``--sel``."""
    for dim in dims:
        if da.sizes[dim] < 2:
            raise _error(
                f"{dim!r} (in {text!r}) has {da.sizes[dim]} point(s); a kernel dim needs at least 2: drop it with "
                f"{_fixes_for_single(da, dim)} (and no --kernel for it)",
                "--kernel",
            )


SELECT_OPTIONS = (
    click.option(
        "--sel",
        "sel",
        multiple=True,
        metavar="DIM=VALUE|START:STOP",
        callback=click_callback(parse_sel),
        help="Read only the point VALUE of DIM, or the range START:STOP (both ends included), repeatable: "
        "--sel level=850, --sel member=r1i1p1f1, --sel time=2000-01:2000-12 (partial dates: that whole range), "
        "--sel time=2000: (open end), --sel latitude=-30:30; a position for a dim without a coordinate. A point "
        "drops the dim (kept as a scalar coordinate), a range keeps it; the selection applies to every variable "
        "used with the data.",
    ),
    click.option(
        "--squeeze",
        is_flag=True,
        default=False,
        help="Drop the dims that have a single point (e.g. one pressure level) and that no --kernel or "
        "--batch-dim names: a kernel needs at least 2 points.",
    ),
)
