"""Time coordinates as float64 days since the data's own start, without losing their resolution.

A float64 has 53 bits: days since 1970-01-01 of a 2020 timestamp resolve only about 0.3 µs,
so microsecond steps came out as 0.943 or 1.257 µs. Counted from the training data's first
time instead, the numbers are as small as the record is long, and the resolution the data
have is kept. Where even that cannot keep the smallest step of the data (nanosecond steps
over weeks), :func:`check_resolution` refuses the coordinate instead of distorting it.

Both kinds work in exact integer arithmetic up to one final division:

* ``datetime64``: whole days and a remainder in the finer of the two resolutions (value and
  epoch), so no resolution overflows and the same instant gives the same float from
  ``datetime64[s]`` and ``datetime64[ns]``;
* ``cftime``: the exact ``timedelta`` to the epoch in that calendar, in microseconds.

Fits written before (format ``xkron-fit-1``) used the epoch 1970-01-01 (units
:data:`LEGACY_UNITS`); they are read with exactly the arithmetic they were written with.
"""

from __future__ import annotations

import datetime
import itertools
import re
from typing import Any

import numpy as np

from xkron.settings import TIME_STEP_TOLERANCE

__all__ = [
    "LEGACY_UNITS",
    "TIME_STEP_TOLERANCE",
    "cftime_dates",
    "cftime_days",
    "cftime_epoch",
    "cftime_ticks",
    "check_resolution",
    "datetime_days",
    "datetime_epoch",
    "datetime_ticks",
    "datetime_values",
    "epoch_units",
    "parse_cftime_epoch",
    "parse_datetime_epoch",
]

LEGACY_UNITS = "days since 1970-01-01"
"""Units of time coordinates in fits written by xkron before start-relative encoding."""


_US_PER_DAY = 86_400_000_000
_TOO_FINE = ("ps", "fs", "as", "generic")  # a day of these overflows int64; their whole range is ~2.6 h anyway
_ORDER = ("Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns")
_CFTIME_EPOCH = re.compile(r"^days since (-?\d+)-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})\.(\d{6})$")


def _unit(dtype: np.dtype) -> str:
    unit, _ = np.datetime_data(dtype)
    return "ns" if unit in _TOO_FINE else unit


def _per_day(unit: str) -> int:
    return 1 if unit in ("Y", "M", "W", "D") else int(np.timedelta64(1, "D") // np.timedelta64(1, unit))


def _split(values: np.ndarray, unit: str) -> tuple[np.ndarray, np.ndarray]:
    """Whole days since 1970-01-01 and the remainder in ``unit`` (int64, no overflow)."""
    if unit in ("Y", "M", "W", "D"):
        days = values.astype("datetime64[D]").astype(np.int64)
        return days, np.zeros_like(days)
    ticks = values.astype(f"datetime64[{unit}]").astype(np.int64)
    return np.divmod(ticks, _per_day(unit))


def datetime_epoch(values: np.ndarray) -> np.datetime64:
    """The earliest time of training ``datetime64`` values, in their resolution (ns if finer)."""
    values = np.asarray(values)
    unit = _unit(values.dtype)
    present = values[~np.isnat(values)].astype(f"datetime64[{unit}]")
    return present.min() if present.size else np.datetime64(0, unit)


def epoch_units(epoch: Any) -> str:
    """``"days since <epoch>"``, exact to the epoch's resolution (datetime64 or cftime).

    Examples
    --------
    >>> epoch_units(np.datetime64("2001-03-01T06:00:00.000001", "us"))
    'days since 2001-03-01T06:00:00.000001'
    """
    if isinstance(epoch, np.datetime64):
        return f"days since {np.datetime_as_string(epoch)}"
    return (
        f"days since {epoch.year:04d}-{epoch.month:02d}-{epoch.day:02d} "
        f"{epoch.hour:02d}:{epoch.minute:02d}:{epoch.second:02d}.{epoch.microsecond:06d}"
    )


def parse_datetime_epoch(units: str) -> np.datetime64:
    """Inverse of :func:`epoch_units` for ``datetime64`` (also reads :data:`LEGACY_UNITS`)."""
    text = units.removeprefix("days since ").strip()
    try:
        return np.datetime64(text)
    except ValueError as err:
        raise ValueError(f"time units {units!r} are not 'days since <ISO time>'") from err


def datetime_days(values: np.ndarray, epoch: np.datetime64) -> np.ndarray:
    """Days from ``epoch`` to each ``datetime64`` value (NaT gives garbage: mask it).

    Whole days and remainders are subtracted in int64, the remainders in the finer of the two
    resolutions, and only the last remainder is divided: deterministic, and equal floats for
    the same instant whatever the resolution.
    """
    values = np.asarray(values)
    units = [_unit(values.dtype), _unit(epoch.dtype)]
    fine = max(units, key=_ORDER.index)
    per_day = _per_day(fine)
    days_v, rem_v = _split(values, units[0])
    days_e, rem_e = _split(np.asarray(epoch), units[1])
    scale_v, scale_e = per_day // _per_day(units[0]), per_day // _per_day(units[1])
    carry, rem = np.divmod(rem_v * scale_v - rem_e * scale_e, per_day)
    return (days_v - days_e + carry).astype(np.float64) + rem.astype(np.float64) / float(per_day)


def datetime_values(days: np.ndarray, epoch: np.datetime64) -> np.ndarray:
    """Inverse of :func:`datetime_days`: ``datetime64[ns]`` at ``days`` after ``epoch`` (NaN gives NaT).

    The days are rounded to whole nanoseconds, the finest resolution xarray keeps.
    """
    days = np.asarray(days, dtype=np.float64)
    finite = np.isfinite(days)
    ns = np.round(np.where(finite, days, 0.0) * 86_400e9).astype(np.int64)
    values = np.datetime64(epoch, "ns") + ns.astype("timedelta64[ns]")
    return np.where(finite, values, np.datetime64("NaT", "ns"))


def datetime_ticks(values: np.ndarray, epoch: np.datetime64) -> tuple[list[int], int]:
    """Exact integer ticks from ``epoch`` in the values' resolution, and ticks per day."""
    unit = _unit(np.asarray(values).dtype)
    per_day = _per_day(unit)
    days_v, rem_v = _split(np.asarray(values).ravel(), unit)
    days_e, rem_e = _split(np.asarray(epoch.astype(f"datetime64[{unit}]")), unit)
    ticks = [(int(d) - int(days_e)) * per_day + int(r) - int(rem_e) for d, r in zip(days_v, rem_v, strict=True)]
    return ticks, per_day


def cftime_epoch(values: np.ndarray):
    """The earliest of training cftime values (``None`` and NaN skipped)."""
    present = [v for v in np.asarray(values).ravel() if v is not None and not (isinstance(v, float) and np.isnan(v))]
    return min(present)


def parse_cftime_epoch(units: str, calendar: str):
    """Inverse of :func:`epoch_units` for cftime: the epoch as a ``cftime.datetime`` of ``calendar``."""
    import cftime

    match = _CFTIME_EPOCH.match(units)
    if match is None:
        raise ValueError(f"time units {units!r} are not 'days since YYYY-MM-DD hh:mm:ss.ffffff'")
    return cftime.datetime(*(int(g) for g in match.groups()), calendar=calendar)


def _microseconds(delta: datetime.timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def cftime_ticks(values: np.ndarray, epoch) -> list[int]:
    """Exact microseconds from ``epoch`` to each cftime value (same calendar)."""
    return [_microseconds(v - epoch) for v in np.asarray(values).ravel()]


def cftime_days(values: np.ndarray, epoch) -> np.ndarray:
    """Days from ``epoch`` to each cftime value: exact microseconds, divided once (float64)."""
    days, rem = np.divmod(np.asarray(cftime_ticks(values, epoch), dtype=np.int64), _US_PER_DAY)
    return days.astype(np.float64) + rem.astype(np.float64) / float(_US_PER_DAY)


def cftime_dates(days: np.ndarray, epoch) -> np.ndarray:
    """Inverse of :func:`cftime_days`: cftime objects (``epoch``'s calendar) at ``days`` after ``epoch``.

    The days are rounded to whole microseconds, the resolution of cftime; NaN gives ``None``.
    """
    days = np.asarray(days, dtype=np.float64)
    out = np.empty(days.shape, dtype=object)
    for index, value in np.ndenumerate(days):
        if not np.isfinite(value):
            out[index] = None
            continue
        whole = np.floor(value)  # exact microseconds of whole days; only the fraction is rounded
        micro = int(whole) * _US_PER_DAY + round(float(value - whole) * _US_PER_DAY)
        out[index] = epoch + datetime.timedelta(microseconds=micro)
    return out


def _duration(days: float) -> str:
    """A duration in days as readable text: ``3.5 days``, ``2 h``, ``1 us``."""
    for size, name in ((1.0, "days"), (1 / 24, "h"), (1 / 1440, "min"), (1 / 86_400, "s")):
        if days >= size:
            return f"{days / size:.4g} {name}"
    for size, name in ((1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
        if days * 86_400 >= size:
            return f"{days * 86_400 / size:.4g} {name}"
    return f"{days * 86_400:.3g} s"


def check_resolution(ticks: list[int], per_day: int, dim: str | None) -> None:
    """Refuse training times whose smallest step float64 days since their start cannot keep.

    The encoded days of two neighbours are each rounded to within half an ulp of the span, so
    their difference is off by up to ``span * 2**-52``; relative to the smallest step that must
    stay under :data:`TIME_STEP_TOLERANCE`.

    Raises
    ------
    ValueError
        Naming the dim, its span and smallest step, and how to coarsen the times.
    """
    distinct = sorted(set(ticks))
    if len(distinct) < 2:
        return
    step = min(b - a for a, b in itertools.pairwise(distinct))
    span = distinct[-1] - distinct[0]
    error = span * 2.0**-52 / step
    if error > TIME_STEP_TOLERANCE:
        where = f"dim {dim!r}" if dim else "this dim"
        raise ValueError(
            f"{where}: its times span {_duration(span / per_day)} with steps as small as {_duration(step / per_day)}; "
            f"float64 numbers would keep that step only to {error:.1g} of itself (more than {TIME_STEP_TOLERANCE:g}). "
            f"Round the times to a coarser resolution (e.g. da[{dim or 'dim'!r}].dt.round('1us')) or fit a "
            "shorter span."
        )
