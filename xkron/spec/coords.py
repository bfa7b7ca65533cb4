"""Numeric encoding of grid coordinates.

Kernels work on floats, so every kernel dim's coordinate is turned into a float64 array:

==========  ==========================================  ==============================================
kind        coordinate                                  numbers
==========  ==========================================  ==============================================
numeric     int, uint or float                          the values as float64
datetime    ``datetime64`` of any resolution            days since the training data's first time
cftime      ``cftime.datetime`` objects (one calendar)  days since the first time, in that calendar
index       none (the dim has no coordinate variable)   positions 0, 1, …, n−1
==========  ==========================================  ==============================================

Times count from the training data's own start (the epoch is kept in the encoding's
``units``, e.g. ``"days since 2001-03-01T00:00:00.000000000"``), so float64 keeps the data's
resolution down to nanoseconds over short records; a coordinate whose smallest step it still
cannot keep is refused (:mod:`xkron.spec.time_encoding`). Fits saved by earlier versions count from
1970-01-01 (:data:`TIME_UNITS`) and keep doing so. The encoding is exact where float64 allows
and always deterministic: the same values give bit-identical floats, whatever the
``datetime64`` resolution, so a saved fit reloads to the same numbers. Lengthscales of time
dims are in days.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import xarray as xr

from xkron.spec import time_encoding as te

__all__ = ["EPOCH", "KINDS", "TIME_UNITS", "CoordEncoding", "coord_kind", "encode_coord"]

KINDS = ("numeric", "datetime", "cftime", "index")
"""The kinds of coordinate encodings."""

EPOCH = "1970-01-01"
TIME_UNITS = te.LEGACY_UNITS
"""Units of time coordinates counted from 1970-01-01, as in fits saved before start-relative times."""

_CALENDAR_ALIASES = {"gregorian": "standard", "365_day": "noleap", "366_day": "all_leap"}


def _cftime_type():
    """The ``cftime.datetime`` class, or ``None`` where cftime is not installed."""
    try:
        import cftime
    except ImportError:  # pragma: no cover - cftime is installed alongside xarray here
        return None
    return cftime.datetime


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _normalize_calendar(calendar: str) -> str:
    calendar = calendar.lower()
    return _CALENDAR_ALIASES.get(calendar, calendar)


def coord_kind(values: Any) -> str | None:
    """Kind of coordinate values: ``"numeric"``, ``"datetime"``, ``"cftime"`` or ``None``.

    ``None`` means the values cannot be encoded (strings, booleans, complex, timedeltas,
    Python datetimes, mixed objects). Object arrays count as ``"cftime"`` when every value
    that is not missing (``None`` or NaN) is a ``cftime.datetime``.

    Examples
    --------
    >>> import numpy as np
    >>> coord_kind(np.arange(3)), coord_kind(np.array(["2000-01-01"], dtype="datetime64[s]"))
    ('numeric', 'datetime')
    >>> coord_kind(np.array(["a", "b"])) is None
    True
    """
    arr = np.asarray(values)
    if arr.dtype.kind in "iuf":
        return "numeric"
    if arr.dtype.kind == "M":
        return "datetime"
    if arr.dtype.kind == "O" and arr.size:
        cftime_datetime = _cftime_type()
        present = [v for v in arr.ravel() if not _is_missing(v)]
        if cftime_datetime is not None and present and all(isinstance(v, cftime_datetime) for v in present):
            return "cftime"
    return None


def cftime_calendars(values: Any) -> list[str]:
    """Sorted distinct (normalised) calendars of the cftime objects in ``values``.

    Examples
    --------
    >>> import cftime
    >>> cftime_calendars([cftime.datetime(2000, 1, 1, calendar="365_day")])
    ['noleap']
    """
    return sorted({_normalize_calendar(v.calendar) for v in np.asarray(values).ravel() if not _is_missing(v)})


def _where(dim: str | None) -> str:
    return f"dim {dim!r}" if dim else "this dim"


def _as_datetime64(values: np.ndarray, dim: str | None) -> np.ndarray | None:
    """``datetime64`` values of an object array of Python/pandas datetimes, else ``None``."""
    items = values.ravel()
    cftime_datetime = _cftime_type()
    if not items.size or not all(isinstance(v, datetime.datetime | np.datetime64) for v in items):
        return None
    if cftime_datetime is not None and any(isinstance(v, cftime_datetime) for v in items):
        return None
    if any(isinstance(v, datetime.datetime) and v.tzinfo is not None for v in items):
        raise TypeError(
            f"{_where(dim)} has a timezone-naive datetime64 coordinate; got timezone-aware datetimes. "
            "Convert them to UTC and drop the timezone first (e.g. pandas' .tz_convert(None))."
        )
    return np.array([np.datetime64(v) for v in items]).reshape(values.shape)


@dataclass(frozen=True)
class CoordEncoding:
    """How one dim's coordinate is turned into float64 numbers.

    Parameters
    ----------
    kind : {"numeric", "datetime", "cftime", "index"}
        What the coordinate holds (``"index"``: no coordinate variable, positions are used).
    units : str
        ``"days since <epoch>"`` for time kinds, the epoch being the training data's first
        time (:data:`TIME_UNITS`, 1970-01-01, in fits saved by earlier versions); for
        ``"numeric"`` the coordinate's ``units`` attribute (``""`` if it has none); ``""`` for
        ``"index"``.
    calendar : str or None
        The cftime calendar, ``"proleptic_gregorian"`` for ``datetime64``, ``None`` otherwise.

    Examples
    --------
    >>> import numpy as np
    >>> enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    >>> enc.encode(np.array(["1970-01-02T12:00"], dtype="datetime64[s]")).tolist()
    [1.5]
    >>> enc.lengthscale_units
    'days'
    >>> CoordEncoding.from_dict(enc.to_dict()) == enc
    True
    """

    kind: str
    units: str = ""
    calendar: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown coordinate encoding kind {self.kind!r}; expected one of {KINDS}")

    @property
    def is_time(self) -> bool:
        """Whether the coordinate is a time (``datetime`` or ``cftime`` kind)."""
        return self.kind in ("datetime", "cftime")

    @property
    def lengthscale_units(self) -> str:
        """Units of lengthscales on this dim: ``"days"`` for time, else :attr:`units`."""
        return "days" if self.is_time else self.units

    def encode(self, values: Any, dim: str | None = None) -> np.ndarray:
        """Float64 numbers of new coordinate values of this encoding's kind.

        Parameters
        ----------
        values : array-like
            Values of the same kind as the training coordinate: numbers for ``"numeric"``
            and ``"index"`` (positions, may be fractional), ``datetime64`` (or Python
            datetimes) for ``"datetime"``, cftime objects of the same calendar for ``"cftime"``.
        dim : str, optional
            Dim name, used in error messages.

        Returns
        -------
        numpy.ndarray
            Float64 array of the same shape as ``values``.

        Raises
        ------
        TypeError
            If the values are of another kind (numbers for a time dim, a cftime object of
            another calendar, ...).
        ValueError
            If a value is missing or not finite (NaN, NaT, inf).

        Examples
        --------
        >>> CoordEncoding("numeric", "m").encode([1, 2.5]).tolist()
        [1.0, 2.5]
        >>> CoordEncoding("index").encode(3).tolist()
        3.0
        """
        arr = np.asarray(values)
        if arr.size == 0 and arr.dtype.kind in "fO":
            return np.zeros(arr.shape, dtype=np.float64)
        encoder = {"datetime": self._encode_datetime, "cftime": self._encode_cftime}.get(self.kind)
        out = encoder(arr, dim) if encoder else self._encode_numeric(arr, dim)
        if not np.all(np.isfinite(out)):
            bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
            raise ValueError(
                f"{_where(dim)}: {bad} of {np.size(out)} new coordinate values are missing or not finite "
                "(NaN, NaT or inf); pass finite values only."
            )
        return out

    def _encode_numeric(self, arr: np.ndarray, dim: str | None) -> np.ndarray:
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float64)
        what = "positions 0..n-1 (the dim has no coordinate)" if self.kind == "index" else "numbers"
        units = f" in {self.units!r}" if self.units else ""
        raise TypeError(
            f"{_where(dim)} has a {self.kind} coordinate, so new values must be {what}{units}; got {_describe(arr)}."
        )

    def _encode_datetime(self, arr: np.ndarray, dim: str | None) -> np.ndarray:
        if arr.dtype.kind == "O":
            converted = _as_datetime64(arr, dim)
            arr = arr if converted is None else converted
        if arr.dtype.kind == "M":
            return np.where(np.isnat(arr), np.nan, te.datetime_days(arr, te.parse_datetime_epoch(self.units)))
        raise TypeError(
            f"{_where(dim)} has a datetime64 coordinate, so new values must be datetimes "
            f"(numpy datetime64, pandas DatetimeIndex or Python datetime); got {_describe(arr)}. "
            "Pass e.g. np.array(['2000-01-01'], dtype='datetime64[ns]')."
        )

    def _encode_cftime(self, arr: np.ndarray, dim: str | None) -> np.ndarray:
        import cftime

        if coord_kind(arr) != "cftime":
            raise TypeError(
                f"{_where(dim)} has a cftime coordinate in the {self.calendar!r} calendar, so new values must be "
                f"cftime datetimes of that calendar; got {_describe(arr)}. Build them with e.g. "
                f"xr.date_range('2000-01-01', periods=3, calendar={self.calendar!r}, use_cftime=True)."
            )
        calendars = cftime_calendars(arr)
        if calendars != [_normalize_calendar(self.calendar or "")]:
            raise TypeError(
                f"{_where(dim)} has cftime coordinates in the {self.calendar!r} calendar; got calendar(s) "
                f"{calendars}. Dates do not convert between calendars; build new values with "
                f"calendar={self.calendar!r}."
            )
        flat = arr.ravel()
        missing = np.array([_is_missing(v) for v in flat], dtype=bool)
        out = np.full(flat.shape, np.nan)
        if (~missing).any():
            if self.units == TIME_UNITS:  # fits saved before start-relative times: their arithmetic, unchanged
                nums = cftime.date2num(list(flat[~missing]), TIME_UNITS, calendar=self.calendar)
            else:
                nums = te.cftime_days(flat[~missing], te.parse_cftime_epoch(self.units, self.calendar))
            out[~missing] = np.asarray(nums, dtype=np.float64)
        return out.reshape(arr.shape)

    def decode(self, numbers: Any) -> np.ndarray:
        """Coordinate values of float64 numbers: the inverse of :meth:`encode`.

        Used where numbers are computed on the encoded scale (evenly spaced grids, midpoints)
        and must become coordinates of the dim's kind again.

        Parameters
        ----------
        numbers : array-like
            Float64 numbers in this encoding's scale (days since the epoch of :attr:`units`
            for time kinds).

        Returns
        -------
        numpy.ndarray
            Same shape: float64 for ``"numeric"`` and ``"index"``, ``datetime64[ns]`` for
            ``"datetime"`` (rounded to whole nanoseconds; NaN gives NaT), cftime objects of
            :attr:`calendar` for ``"cftime"`` (rounded to whole microseconds; NaN gives ``None``).

        Examples
        --------
        >>> enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
        >>> enc.decode([1.5]).astype(str).tolist()
        ['1970-01-02T12:00:00.000000000']
        >>> CoordEncoding("numeric", "m").decode([1, 2.5]).tolist()
        [1.0, 2.5]
        """
        numbers = np.asarray(numbers, dtype=np.float64)
        if self.kind == "datetime":
            return te.datetime_values(numbers, te.parse_datetime_epoch(self.units))
        if self.kind != "cftime":
            return numbers
        if self.units == TIME_UNITS:  # fits saved before start-relative times: their arithmetic, unchanged
            import cftime

            missing = ~np.isfinite(numbers)
            dates = cftime.num2date(
                np.where(missing, 0.0, numbers), TIME_UNITS, calendar=self.calendar, only_use_cftime_datetimes=True
            )
            out = np.asarray(dates, dtype=object).reshape(numbers.shape)
            out[missing] = None
            return out
        return te.cftime_dates(numbers, te.parse_cftime_epoch(self.units, self.calendar))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description.

        Examples
        --------
        >>> CoordEncoding("numeric", "km").to_dict()
        {'kind': 'numeric', 'units': 'km', 'calendar': None}
        """
        return asdict(self)

    @classmethod
    def from_dict(cls, obj: Mapping[str, Any]) -> CoordEncoding:
        """Inverse of :meth:`to_dict`."""
        return cls(kind=obj["kind"], units=obj.get("units", ""), calendar=obj.get("calendar"))


def _describe(arr: np.ndarray) -> str:
    """Short description of values for error messages: dtype and the first value's type."""
    if arr.dtype.kind == "O" and arr.size:
        first = next((v for v in arr.ravel() if not _is_missing(v)), arr.ravel()[0])
        calendar = getattr(first, "calendar", None)
        extra = f", calendar {calendar!r}" if calendar else ""
        return f"object values of type {type(first).__module__}.{type(first).__qualname__}{extra}"
    return f"values of dtype {arr.dtype}"


def encoding_for(values: Any, units: str = "", dim: str | None = None) -> CoordEncoding:
    """The encoding of a coordinate's training values (numeric, datetime or cftime).

    Raises
    ------
    TypeError
        If the values are of no supported kind, or cftime objects of several calendars.
    ValueError
        If float64 days since the first time cannot keep the times' smallest step (see
        :func:`xkron.spec.time_encoding.check_resolution`).

    Examples
    --------
    >>> encoding_for([0.0, 1.0], units="m")
    CoordEncoding(kind='numeric', units='m', calendar=None)
    >>> encoding_for(np.array(["2001-03-01T06", "2001-03-02"], dtype="datetime64[h]")).units
    'days since 2001-03-01T06'
    """
    arr = np.asarray(values)
    kind = coord_kind(arr)
    if kind == "numeric":
        return CoordEncoding("numeric", str(units), None)
    if kind == "datetime":
        epoch = te.datetime_epoch(arr)
        te.check_resolution(*te.datetime_ticks(arr[~np.isnat(arr)], epoch), dim)
        return CoordEncoding("datetime", te.epoch_units(epoch), "proleptic_gregorian")
    if kind == "cftime":
        calendars = cftime_calendars(arr)
        if len(calendars) != 1:
            raise TypeError(f"{_where(dim)} mixes cftime calendars {calendars}; use one calendar per coordinate.")
        present = np.array([v for v in arr.ravel() if not _is_missing(v)], dtype=object)
        epoch = te.cftime_epoch(present)
        te.check_resolution(te.cftime_ticks(present, epoch), 86_400_000_000, dim)
        return CoordEncoding("cftime", te.epoch_units(epoch), calendars[0])
    raise TypeError(
        f"{_where(dim)} has a coordinate of {_describe(arr)}; kernel dims need numeric, datetime64 or cftime "
        "coordinates."
    )


def encode_coord(da: xr.DataArray, dim: str) -> tuple[np.ndarray, CoordEncoding]:
    """Numeric training coordinates of one dim of ``da``, and how they were encoded.

    Parameters
    ----------
    da : xarray.DataArray
        The data.
    dim : str
        One of ``da.dims``. Without a coordinate variable its positions 0..n-1 are used.

    Returns
    -------
    values : numpy.ndarray
        Float64 coordinates, one per point along ``dim``.
    encoding : CoordEncoding
        Encodes new values of the same kind to the same numbers (see :meth:`CoordEncoding.encode`).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> time = np.array(["2000-01-01", "2000-01-01T06"], dtype="datetime64[ns]")
    >>> da = xr.DataArray(np.zeros((2, 3)), coords={"time": time}, dims=("time", "x"))
    >>> x, enc = encode_coord(da, "time")
    >>> x.tolist(), enc.kind, enc.lengthscale_units
    ([0.0, 0.25], 'datetime', 'days')
    >>> enc.units
    'days since 2000-01-01T00:00:00.000000000'
    >>> encode_coord(da, "x")
    (array([0., 1., 2.]), CoordEncoding(kind='index', units='', calendar=None))
    """
    if dim not in da.dims:
        raise ValueError(f"dim {dim!r} is not in the data; data dims are {tuple(da.dims)}.")
    if dim not in da.coords:
        return np.arange(da.sizes[dim], dtype=np.float64), CoordEncoding("index", "", None)
    coord = da[dim]
    encoding = encoding_for(coord.values, units=str(coord.attrs.get("units", "")), dim=dim)
    return encoding.encode(coord.values, dim=dim), encoding
