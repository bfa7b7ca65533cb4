"""``--sel DIM=VALUE`` and ``--squeeze``: drop dims from the data before fitting (``xkron fit``/``batch``).

A dim of size 1 (one pressure level, one ensemble member) cannot carry a kernel, which needs
at least two points. ``--squeeze`` drops every such dim that no ``--kernel`` or
``--batch-dim`` names; ``--sel DIM=VALUE`` keeps one point of a dim of any size. Both keep the
dropped coordinate as a scalar coordinate of the data, and apply to every variable of the
file (mask, noise sd, exposure, trials alike). The error messages about dims without a kernel
suggest them where they apply, and only options that the command has.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import click

from xkron.cli.errors import JobInputError, click_callback

__all__ = ["SELECT_OPTIONS", "check_kernel_dim_sizes", "missing_kernel_message", "parse_sel", "select_dims"]

SHOWN_VALUES = 5
"""Coordinate values listed when a --sel value is not found (enough to see their form)."""


def _error(message: str, option: str) -> JobInputError:
    return JobInputError(message, option)


def parse_sel(items: Sequence[str]) -> dict[str, str]:
    """Parse repeated ``DIM=VALUE`` into ``{dim: value text}``.

    Examples
    --------
    >>> parse_sel(["level=850", "time=2000-01-01"])
    {'level': '850', 'time': '2000-01-01'}
    """
    out: dict[str, str] = {}
    for item in items:
        dim, sep, value = item.partition("=")
        dim, value = dim.strip(), value.strip()
        if not sep or not dim or not value:
            raise _error(f"{item!r} is not DIM=VALUE, e.g. level=850 or time=2000-01-01", "--sel")
        if dim in out:
            raise _error(f"dim {dim!r} is selected twice", "--sel")
        out[dim] = value
    return out


def _label(ds, dim: str, text: str) -> tuple[str, Any]:
    """``("sel", label)`` of the coordinate's type, or ``("isel", position)`` for a dim without one."""
    import numpy as np

    if dim not in ds.coords:
        try:
            return "isel", int(text)
        except ValueError:
            raise _error(f"dim {dim!r} has no coordinate: give a position 0..{ds.sizes[dim] - 1}", "--sel") from None
    values = ds[dim].values
    try:
        if values.dtype.kind in "iu":
            return "sel", int(text)
        if values.dtype.kind == "f":
            return "sel", float(text)
        if values.dtype.kind == "M":
            return "sel", np.datetime64(text).astype(values.dtype)
        if values.dtype.kind == "O" and values.size and hasattr(values.flat[0], "calendar"):
            import cftime

            date = np.datetime64(text, "s").astype(object)
            fields = (date.year, date.month, date.day, date.hour, date.minute, date.second)
            return "sel", cftime.datetime(*fields, calendar=values.flat[0].calendar)
    except (ValueError, TypeError, OverflowError) as err:
        raise _error(
            f"{dim}={text}: {text!r} is not a value of {dim!r}'s type {values.dtype} ({err})", "--sel"
        ) from None
    return "sel", text


def select_dims(ds, var: str, sel: Mapping[str, str], squeeze: bool, named: Sequence[str]):
    """``ds`` with the ``--sel`` points selected and (``squeeze``) the unnamed size-1 dims of ``var`` dropped.

    Lazy (dask or on-disk) variables stay lazy.
    """
    dims = [str(d) for d in ds[var].dims] if var in ds.data_vars else []
    for dim, text in sel.items():
        if dim not in dims:
            raise _error(f"{dim!r} is not a dim of {var!r} (dims: {', '.join(dims)})", "--sel")
        if dim in named:
            raise _error(f"{dim!r} is selected by --sel but also named by --kernel or --batch-dim", "--sel")
        how, label = _label(ds, dim, text)
        try:
            ds = ds.isel({dim: label}) if how == "isel" else ds.sel({dim: label})
        except (KeyError, IndexError):
            shown = ", ".join(str(v) for v in ds[dim].values[:SHOWN_VALUES]) if dim in ds.coords else ""
            more = " ..." if ds.sizes[dim] > SHOWN_VALUES else ""
            raise _error(f"{dim}={text}: no such point of {dim!r} (its values: {shown}{more})", "--sel") from None
        if dim in ds.dims:
            raise _error(f"{dim}={text} matches several points of {dim!r}; select one", "--sel")
    if squeeze:
        single = [d for d in dims if d not in sel and d not in named and ds.sizes[d] == 1]
        ds = ds.squeeze(single) if single else ds
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
        metavar="DIM=VALUE",
        callback=click_callback(parse_sel),
        help="Fit only the point VALUE of DIM (repeatable), e.g. --sel level=850 or --sel member=r1i1p1f1; "
        "dates as ISO strings (time=2000-01-01), a position for a dim without a coordinate. The dim is dropped "
        "(kept as a scalar coordinate) from the data and every variable used with it.",
    ),
    click.option(
        "--squeeze",
        is_flag=True,
        default=False,
        help="Drop the dims of --var that have a single point (e.g. one pressure level) and that no --kernel or "
        "--batch-dim names: a kernel needs at least 2 points.",
    ),
)
