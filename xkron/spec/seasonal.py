"""Seasonal cycles on daily or monthly time axes: the year's length in each calendar, and a recipe kernel.

Times are encoded as days in the data's own calendar (:mod:`xkron.spec.time_encoding`), so a
year is 360 days in a ``360_day`` model calendar, 365 in ``noleap`` and 365.2425 on average in the
Gregorian calendar: a seasonal period must follow the calendar, or the cycle drifts by five
days a year against a ``360_day`` model's seasons.

The recipe (:func:`seasonal_kernel`) is the quasi-periodic cycle plus anomalies,

    ``Periodic(period=year, ls=shape) * Matern52(ls=envelope) + c * Matern32()``,

a cycle whose shape changes slowly from year to year (the envelope, a few years) and weather or
ocean anomalies about it (weeks to months). Its parts are predicted separately by
``fit.predict(components="time")``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xkron.spec.coords import cftime_calendars, coord_kind
from xkron.spec.kernels import Kernel, Matern32, Matern52, Periodic
from xkron.spec.prior_types import new_prior

__all__ = ["YEAR_DAYS", "seasonal_kernel", "year_length"]

YEAR_DAYS = {
    "standard": 365.2425, "gregorian": 365.2425, "proleptic_gregorian": 365.2425, "julian": 365.25,
    "noleap": 365.0, "365_day": 365.0, "all_leap": 366.0, "366_day": 366.0, "360_day": 360.0,
}  # fmt: skip
"""Mean length of a year in days, by CF calendar."""


def year_length(time: Any = "standard") -> float:
    """The mean length of a year, in days, of a calendar name or of times (``datetime64`` or cftime).

    Examples
    --------
    >>> import cftime
    >>> year_length("360_day"), year_length([cftime.datetime(2000, 1, 1, calendar="noleap")])
    (360.0, 365.0)
    """
    if isinstance(time, str):
        calendar = time.lower()
    else:
        values = np.asarray(getattr(time, "values", time))
        kind = coord_kind(values)
        if kind == "datetime":
            calendar = "proleptic_gregorian"
        elif kind == "cftime":
            calendars = cftime_calendars(values)
            if len(calendars) != 1:
                raise ValueError(f"times in {len(calendars)} calendars ({calendars}): give times in one calendar")
            calendar = calendars[0]
        else:
            raise TypeError(f"year_length takes a calendar name or times (datetime64 or cftime), got {values.dtype}")
    if calendar not in YEAR_DAYS:
        raise ValueError(f"unknown calendar {calendar!r}; known: {', '.join(YEAR_DAYS)}")
    return YEAR_DAYS[calendar]


def seasonal_kernel(time: Any = "standard", *, anomalies: bool = True) -> Kernel:
    """The seasonal-cycle recipe for a time factor: a slowly changing annual cycle, plus anomalies.

    ``Periodic(period=year) * Matern52(ls=envelope) + c * Matern32()`` with the year of the
    calendar of ``time`` (a calendar name, or the time coordinate itself) fixed, and priors for
    what the data cannot pin down alone:

    - the cycle's shape (``Periodic``'s relative lengthscale): ``LogNormal``, 98% in 0.3-3
      (a sinusoid-like cycle to one with sharp seasons);
    - its envelope: ``LogNormal``, 98% between 1 and 30 years (the cycle changes over years);
    - the anomalies' lengthscale and weight: xkron's defaults (grid spacing to the extent; a weight
      of 1% to 100 times the cycle's variance).

    Parameters
    ----------
    time : str, DataArray or array
        The calendar (``"360_day"``, ``"noleap"``, ...) or the time coordinate (its calendar).
    anomalies : bool
        Add the anomaly part (``False``: the quasi-periodic cycle alone).

    Examples
    --------
    >>> seasonal_kernel("360_day").name
    'Periodic*Matern52 + c*Matern32'
    >>> seasonal_kernel("360_day").parts[0].parts[0].period
    360.0
    """
    year = year_length(time)
    shape = new_prior("LogNormal", mu=0.0, sigma=float(np.log(10) / 2 / 2.326))
    envelope = new_prior("LogNormal", mu=float(np.log(year * np.sqrt(30))), sigma=float(np.log(30) / 2 / 2.326))
    cycle = Periodic(ls=shape, period=year) * Matern52(ls=envelope)
    return cycle + Matern32() if anomalies else cycle
