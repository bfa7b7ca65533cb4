"""Where ``xkron predict`` predicts: ``--grid`` values and reference files (``--grid FILE.nc``).

On a time dim, ``--grid`` takes dates, never bare numbers: a year (``1990``), a month
(``1990-06``), a date or date-time (``1990-06-15T06:00``), or a number with explicit CF units
(``7305 days since 1970-01-01``). ``time=1990:2000:1Y`` steps through
:func:`xarray.date_range` in the fit's calendar (cftime calendars such as ``360_day``
included); ``time=START:STOP:NUM`` gives NUM evenly spaced times, converted with the library's
coordinate encoding (:meth:`xkron.spec.coords.CoordEncoding.encode` and ``decode``). A bare
number such as ``7305`` is refused: read as days since 1970 it silently gave 1990 as 1975.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xkron.cli.checks import check_chunk_dims
from xkron.cli.errors import JobInputError
from xkron.cli.files import open_input
from xkron.cli.parsing import CF_NUMBER, ISO_DATE, PARTIAL_DATE, GridSpec
from xkron.cli.select import select_coords

__all__ = ["TIME_FORMS", "chunk_request", "grid_scale", "grid_values", "prediction_request"]

TIME_FORMS = (
    "a year (1990: four digits), a month (1990-06), a date (1990-06-15), a date-time (1990-06-15T06:00) "
    "or a number with CF units ('7305 days since 1970-01-01')"
)
"""What a time dim's ``--grid`` start and stop may be (for messages)."""


def grid_scale(encoding):
    """The encoding whose numbers ``--grid`` takes for a dim: days since 1970-01-01 for time dims."""
    from xkron.spec.coords import TIME_UNITS, CoordEncoding

    return CoordEncoding(encoding.kind, TIME_UNITS, encoding.calendar) if encoding.is_time else encoding


def grid_values(encoding, spec: GridSpec):
    """The coordinate values of one ``--grid`` for a dim's encoding.

    Numeric dims take ``start:stop:num`` numbers. Time dims take dates (:data:`TIME_FORMS`)
    and either a number of evenly spaced points or a step (``1YS``, ``1MS``, ``6h``) of
    :func:`xarray.date_range` in the fit's calendar; datetime64 dims get ``datetime64[ns]``
    values, cftime dims dates of the fit's calendar.

    Examples
    --------
    >>> from xkron.spec.coords import CoordEncoding
    >>> grid_values(CoordEncoding("numeric"), GridSpec("x", "0", "1", 3)).tolist()
    [0.0, 0.5, 1.0]
    >>> enc = CoordEncoding("datetime", "days since 1970-01-01", "proleptic_gregorian")
    >>> grid_values(enc, GridSpec("time", "2000-01-01", "2000-01-03", 3)).astype(str).tolist()
    ['2000-01-01T00:00:00.000000000', '2000-01-02T00:00:00.000000000', '2000-01-03T00:00:00.000000000']
    >>> [str(t)[:4] for t in grid_values(enc, GridSpec("time", "1990", "2000", freq="1YS"))][::5]
    ['1990', '1995', '2000']
    """
    import numpy as np

    if not encoding.is_time:
        if spec.freq is not None:
            raise JobInputError(
                f"{spec.text!r}: {spec.dim!r} is a numeric dim: give a number of points, e.g. {spec.dim}=0:10:11 "
                "(time steps such as 1Y apply to time dims)",
                "--grid",
            )
        try:
            return np.linspace(float(spec.start), float(spec.stop), spec.num)
        except ValueError:
            units = f" (in {encoding.units})" if encoding.units else ""
            raise JobInputError(
                f"{spec.text!r}: {spec.dim!r} is a numeric dim, so start and stop must be numbers{units}", "--grid"
            ) from None
    scale = grid_scale(encoding)
    start, stop = (_date(value, scale, spec.text) for value in (spec.start, spec.stop))
    if spec.freq is not None:
        return _date_range(start, stop, spec, scale)
    days = scale.encode(np.array([start, stop]))
    return scale.decode(np.linspace(days[0], days[1], spec.num))


def _date_range(start, stop, spec: GridSpec, scale):
    """The dates of ``xarray.date_range(start, stop, freq)`` in the scale's calendar."""
    import xarray as xr

    try:
        index = xr.date_range(start, stop, freq=spec.freq, calendar=scale.calendar, use_cftime=scale.kind == "cftime")
    except (ValueError, TypeError) as err:
        raise JobInputError(
            f"{spec.text!r}: {spec.freq!r} is not a time step xarray can use ({err})", "--grid"
        ) from None
    if index.size == 0:
        raise JobInputError(
            f"{spec.text!r}: no date every {spec.freq} from {spec.start} to {spec.stop}; is stop before start?",
            "--grid",
        )
    return index.values


def _date(value: str, scale, text: str):
    """A ``--grid`` start or stop on a time dim as a date of the scale's kind and calendar."""
    import numpy as np

    cf = CF_NUMBER.match(value)
    if cf is not None:
        return _cf_date(float(cf.group(1)), cf.group(2), scale, text)
    partial = PARTIAL_DATE.match(value)
    if partial is not None:
        value = f"{partial.group(1)}-{int(partial.group(2) or 1):02d}-01"
    match = ISO_DATE.match(value)
    if match is None:
        raise JobInputError(
            f"{text!r}: {value!r} is not a date; on a time dim give {TIME_FORMS} (a bare number is refused: "
            "which epoch and units it counts in is ambiguous)",
            "--grid",
        )
    try:
        if scale.kind == "datetime":
            return np.datetime64(value.strip(), "ns")
        import cftime

        return cftime.datetime(*(int(p) if p is not None else 0 for p in match.groups()), calendar=scale.calendar)
    except ValueError as err:
        raise JobInputError(
            f"{text!r}: {value!r} is not a date of the {scale.calendar} calendar ({err})", "--grid"
        ) from None


def _cf_date(number: float, units: str, scale, text: str):
    """The date ``number`` ``units`` (``"days since 1970-01-01"``) in the scale's calendar."""
    import cftime
    import numpy as np

    try:
        date = cftime.num2date(number, units, calendar=scale.calendar)
    except ValueError as err:
        raise JobInputError(f"{text!r}: cannot read {number:g} {units!r} as a date ({err})", "--grid") from None
    return np.datetime64(date.isoformat(), "ns") if scale.kind == "datetime" else date


def _reference_coords(fit, path, sel: dict[str, str]) -> dict:
    """The coordinates of the fit's dims in a reference file, after the ``--sel`` of the file's dims.

    The selections used are removed from ``sel``.
    """
    import xarray as xr

    use_cftime = any(e.kind == "cftime" for e in fit.encodings.values())
    decode = xr.coders.CFDatetimeCoder(use_cftime=use_cftime)
    with open_input(path, decode_times=decode) as other:
        other = select_coords(other, sel, [str(d) for d in other.dims])
        for dim in [d for d in sel if d in other.dims]:
            del sel[dim]
        request = {d: other[d].reset_coords(drop=True).load() for d in fit.dims if d in other.variables}
    if not request:
        raise JobInputError(
            f"{path} has none of the fit's coordinates {list(fit.dims)}: nothing to predict at (the reference "
            "file needs coordinate variables named like the fit's dims)",
            "--grid",
        )
    return request


def _training_coord(fit, dim: str):
    """The training coordinate of ``dim`` (positions for a dim without one) as a 1-D DataArray."""
    import numpy as np
    import xarray as xr

    values = fit.data[dim].values if dim in fit.data.coords else np.arange(fit.data.sizes[dim])
    return xr.DataArray(values, dims=(dim,), coords={dim: values})


def prediction_request(
    fit, grids: Sequence[GridSpec], coords_from: str | Path | None, sel: Mapping[str, str] | None = None
) -> dict:
    """New coordinates by dim: from a reference file (``--grid FILE.nc``), then ``--grid`` (which wins),
    then ``--sel`` (points or ranges of those, or of the training coordinates).

    ``sel`` applies first to the dims of the reference file (its station dim too), then to
    the fit's dims; a point keeps its dim (length 1). Dims not in the fit are refused (a
    batch fit's batch dims are selected by the caller).
    """
    import xarray as xr

    sel = dict(sel or {})
    request: dict[str, Any] = {} if coords_from is None else _reference_coords(fit, coords_from, sel)
    seen = set()
    for spec in grids:
        if spec.dim not in fit.dims:
            raise JobInputError(f"{spec.dim!r} is not a dim of the fit; its dims: {', '.join(fit.dims)}", "--grid")
        if spec.dim in seen:
            raise JobInputError(f"dim {spec.dim!r} has two --grid options", "--grid")
        seen.add(spec.dim)
        values = grid_values(fit.encodings[spec.dim], spec)
        request[spec.dim] = xr.DataArray(values, dims=(spec.dim,), coords={spec.dim: values})
    for dim in sel:
        if dim not in fit.dims:
            raise JobInputError(f"{dim!r} is not a dim of the fit; its dims: {', '.join(fit.dims)}", "--sel")
        base = request.get(dim)
        if base is not None and base.dims != (dim,):
            raise JobInputError(
                f"{dim!r} is given on the reference file's dims {list(base.dims)}: select those instead", "--sel"
            )
        base = _training_coord(fit, dim) if base is None else base
        request[dim] = select_coords(base.to_dataset(name="_"), sel, [dim])[dim].reset_coords(drop=True)
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
