"""Where ``xkron predict`` predicts: ``--grid`` values and ``--coords-from`` coordinates.

Numbers of a ``--grid`` on a time dim are days since 1970-01-01 (the units of time
lengthscales, :data:`xkron.spec.coords.TIME_UNITS`), whatever epoch the fit counts from.
Dates are converted with the library's coordinate encoding
(:meth:`xkron.spec.coords.CoordEncoding.encode` and its inverse ``decode``) on that scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xkron.cli.checks import check_chunk_dims
from xkron.cli.errors import JobInputError
from xkron.cli.files import open_input
from xkron.cli.parsing import ISO_DATE, GridSpec

__all__ = ["chunk_request", "grid_scale", "grid_values", "prediction_request"]


def grid_scale(encoding):
    """The encoding whose numbers ``--grid`` takes for a dim: days since 1970-01-01 for time dims."""
    from xkron.spec.coords import TIME_UNITS, CoordEncoding

    return CoordEncoding(encoding.kind, TIME_UNITS, encoding.calendar) if encoding.is_time else encoding


def grid_values(encoding, spec: GridSpec):
    """The ``num`` coordinate values of ``--grid dim=start:stop:num`` for a dim's encoding.

    Numeric dims take numbers. Time dims take ISO dates (``2000-01-01``,
    ``2000-01-01T06:00``) or numbers, read as days since 1970-01-01 (the units of time
    lengthscales); datetime64 dims get ``datetime64[ns]`` values, cftime dims dates of the
    fit's calendar.

    Examples
    --------
    >>> from xkron.spec.coords import CoordEncoding
    >>> grid_values(CoordEncoding("numeric"), GridSpec("x", "0", "1", 3)).tolist()
    [0.0, 0.5, 1.0]
    >>> enc = CoordEncoding("datetime", "days since 1970-01-01", "proleptic_gregorian")
    >>> grid_values(enc, GridSpec("time", "2000-01-01", "2000-01-03", 3)).astype(str).tolist()
    ['2000-01-01T00:00:00.000000000', '2000-01-02T00:00:00.000000000', '2000-01-03T00:00:00.000000000']
    """
    import numpy as np

    text = f"{spec.dim}={spec.start}:{spec.stop}:{spec.num}"
    if not encoding.is_time:
        try:
            return np.linspace(float(spec.start), float(spec.stop), spec.num)
        except ValueError:
            units = f" (in {encoding.units})" if encoding.units else ""
            raise JobInputError(
                f"{text!r}: {spec.dim!r} is a numeric dim, so start and stop must be numbers{units}", "--grid"
            ) from None
    scale = grid_scale(encoding)
    days = [_days(value, scale, text) for value in (spec.start, spec.stop)]
    return scale.decode(np.linspace(days[0], days[1], spec.num))


def _days(value: str, scale, text: str) -> float:
    """Days since 1970-01-01 of a number or an ISO date in the scale's calendar."""
    import numpy as np

    try:
        return float(value)
    except ValueError:
        pass
    match = ISO_DATE.match(value)
    if match is None:
        raise JobInputError(
            f"{text!r}: {value!r} is neither a number ({scale.units}) nor an ISO date such as 2000-01-01 or "
            "2000-01-01T12:00",
            "--grid",
        )
    try:
        if scale.kind == "datetime":
            date = np.datetime64(value.strip(), "ns")
        else:
            import cftime

            date = cftime.datetime(*(int(p) if p is not None else 0 for p in match.groups()), calendar=scale.calendar)
        return float(scale.encode(np.array([date]))[0])
    except ValueError as err:
        raise JobInputError(
            f"{text!r}: {value!r} is not a date of the {scale.calendar} calendar ({err})", "--grid"
        ) from None


def prediction_request(fit, grids: Sequence[GridSpec], coords_from: str | Path | None) -> dict:
    """New coordinates by dim: from ``--coords-from``, then ``--grid`` (which wins)."""
    import xarray as xr

    request: dict[str, Any] = {}
    if coords_from is not None:
        use_cftime = any(e.kind == "cftime" for e in fit.encodings.values())
        decode = xr.coders.CFDatetimeCoder(use_cftime=use_cftime)
        with open_input(coords_from, decode_times=decode) as other:
            request = {d: other[d].reset_coords(drop=True).load() for d in fit.dims if d in other.variables}
        if not request:
            raise JobInputError(
                f"{coords_from} has none of the fit's coordinates {list(fit.dims)}: nothing to predict at",
                "--coords-from",
            )
    seen = set()
    for spec in grids:
        if spec.dim not in fit.dims:
            raise JobInputError(f"{spec.dim!r} is not a dim of the fit; its dims: {', '.join(fit.dims)}", "--grid")
        if spec.dim in seen:
            raise JobInputError(f"dim {spec.dim!r} has two --grid options", "--grid")
        seen.add(spec.dim)
        values = grid_values(fit.encodings[spec.dim], spec)
        request[spec.dim] = xr.DataArray(values, dims=(spec.dim,), coords={spec.dim: values})
    return request


def chunk_request(fit, request: dict, chunks: Mapping[str, int]) -> dict:
    """Dask-backed coordinate arrays: the prediction is then lazy, chunked alike."""
    import numpy as np
    import xarray as xr

    arrays = {}
    for dim in fit.dims:
        if dim in request:
            arrays[dim] = request[dim]
        elif dim in fit.data.coords:
            arrays[dim] = fit.data[dim].reset_coords(drop=True)
        else:
            arrays[dim] = xr.DataArray(np.arange(fit.data.sizes[dim]), dims=(dim,))
    out_dims = list(dict.fromkeys(d for a in arrays.values() for d in a.dims))
    check_chunk_dims(chunks, [str(d) for d in out_dims], "the prediction")
    chunked = dict(request)
    for dim, arr in arrays.items():
        wanted = {d: chunks[d] for d in arr.dims if d in chunks}
        if wanted:
            # An index coordinate cannot be chunked: chunk a plain copy of its values, labelled by it.
            chunked[dim] = xr.DataArray(arr.variable.to_base_variable().chunk(wanted), coords=arr.coords)
    return chunked
