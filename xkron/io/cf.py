"""CF attributes that every file xkron writes shares: the convention, ``history``, coordinates.

One place says how a line of ``history`` reads (:func:`history`), so that an API prediction, a
fit file and the command line's outputs record their provenance alike (CF §2.6.2: newest line
first, each a timestamp and what was done, followed by the input's own history). It sits in the
file layer so that the fit files (:mod:`xkron.io.netcdf`), the labelled outputs
(:mod:`xkron.results`) and the command line all reach it.

Coordinates: CF coordinate variables have no missing values (so no ``_FillValue``,
:func:`no_fill_on_coords`), and attributes that describe the training coordinate's values
(``bounds``, ``actual_range``, ``valid_range``, ...) do not hold for other values
(:func:`grid_attrs`).
"""

from __future__ import annotations

import datetime
import os
import shlex
from importlib import metadata

import xarray as xr

__all__ = [
    "CONVENTIONS",
    "VALUE_ATTRS",
    "grid_attrs",
    "history",
    "no_fill_on_coords",
    "strip_paths",
    "utc_now",
    "version",
]

CONVENTIONS = "CF-1.8"
"""The ``Conventions`` of every output: the newest version ``cfchecks`` (4.1) checks against."""

VALUE_ATTRS = ("actual_range", "valid_range", "valid_min", "valid_max", "_FillValue", "missing_value")
"""Attributes of a coordinate that describe its values: kept on the training grid, dropped on a new one.

A kept ``valid_range`` would even turn new values outside it into missing ones when read."""

LINK_ATTRS = ("bounds", "climatology")
"""Attributes naming another variable (CF §7.1, §7.4): dropped where that variable is not written with it."""


def version() -> str:
    """xkron's version as installed (``"unknown"`` when run from a source tree that is not installed)."""
    try:
        return metadata.version("xkron")
    except metadata.PackageNotFoundError:
        return "unknown"


def utc_now() -> datetime.datetime:
    """The time a ``history`` line records (the test suite pins it, so that outputs compare whole)."""
    return datetime.datetime.now(datetime.UTC)


def history(action: str, previous=None, *, command: str | None = None) -> str:
    """A CF ``history``: a timestamped line of what xkron did, then ``previous`` (the input's own history).

    Parameters
    ----------
    action : str
        What the library did, e.g. ``"predict"``: the line reads ``"<UTC time>: xkron <version> predict"``.
    previous : str, optional
        The history of the data it was done to, kept below the new line.
    command : str, optional
        The command line, when it was run from one (``xkron predict ...``): the line records it,
        absolute paths cut to their file names (:func:`strip_paths`), and the version.

    Examples
    --------
    >>> lines = history("predict", "2020-01-01: made").splitlines()
    >>> lines[0].endswith(f"xkron {version()} predict"), lines[1]
    (True, '2020-01-01: made')
    >>> history("fit", command="xkron fit /home/me/data.nc --out fit.nc").split(": ", 1)[1]  # doctest: +ELLIPSIS
    'xkron fit data.nc --out fit.nc (xkron ...)'
    """
    stamp = utc_now().isoformat(timespec="seconds").replace("+00:00", "Z")
    line = f"{stamp}: {strip_paths(command)} (xkron {version()})" if command else f"{stamp}: xkron {version()} {action}"
    return f"{line}\n{previous}" if previous else line


def strip_paths(command: str) -> str:
    """``command`` with each absolute path (also as ``--option=/path``) cut to its file name.

    A file should not record where it was made: local folders mean nothing elsewhere and may
    name a user.

    Examples
    --------
    >>> strip_paths("xkron predict /tmp/a/fit.nc --out=/tmp/b/pred.nc --grid time=1:2:1")
    'xkron predict fit.nc --out=pred.nc --grid time=1:2:1'
    """
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: keep the words as typed
        words = command.split()
    out = []
    for word in words:
        option, sep, value = word.partition("=") if word.startswith("-") else ("", "", word)
        if os.path.isabs(value):
            value = os.path.basename(value.rstrip(os.sep)) or value
        out.append(f"{option}{sep}{value}")
    return shlex.join(out)


def grid_attrs(attrs: dict, same_values: bool, present=()) -> dict:
    """A coordinate's ``attrs`` that hold for the values it is written with.

    ``same_values``: the values are the training coordinate's (else :data:`VALUE_ATTRS` go);
    attributes naming another variable (``bounds``) go unless it is in ``present``.

    Examples
    --------
    >>> grid_attrs({"units": "degrees_north", "bounds": "lat_bnds", "valid_range": [-90, 90]}, False)
    {'units': 'degrees_north'}
    """
    drop = () if same_values else VALUE_ATTRS
    return {k: v for k, v in attrs.items() if k not in drop and not (k in LINK_ATTRS and v not in present)}


def no_fill_on_coords(ds: xr.Dataset) -> None:
    """Mark every coordinate of ``ds`` to be written without ``_FillValue`` (in place): CF coordinate
    variables have no missing values, and xarray would give float ones a NaN fill value."""
    for name in ds.coords:
        ds.variables[name].encoding["_FillValue"] = None
