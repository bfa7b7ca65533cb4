"""Item 9 of issue 11: sub-microsecond times keep their resolution (or are refused), old fits still read.

The references are exact rational arithmetic (``fractions.Fraction`` of integer ticks), written
independently of :mod:`xkron.spec.time_encoding`.
"""

from __future__ import annotations

import datetime
from fractions import Fraction

import cftime
import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xkron
from xkron.spec.coords import CoordEncoding, encode_coord

NS_PER_DAY = 86_400 * 10**9


def _da(values):
    return xr.DataArray(np.arange(len(values), dtype=float), coords={"time": values}, dims="time")


def _exact_days(values, epoch, per_day):
    """Days from epoch, correctly rounded: Fraction of the integer ticks."""
    return np.array([float(Fraction(int(v) - int(epoch), per_day)) for v in values])


@pytest.mark.parametrize("step_ns", [1, 7, 1000])
def test_nanosecond_and_microsecond_steps_are_kept(step_ns):
    start = np.datetime64("2024-05-17T13:45:10.123456789", "ns")
    times = start + np.arange(6) * np.timedelta64(step_ns, "ns")
    x, enc = encode_coord(_da(times), "time")
    ticks = times.astype(np.int64)
    np.testing.assert_array_equal(x, _exact_days(ticks, ticks[0], NS_PER_DAY))
    steps_ns = np.diff(x) * NS_PER_DAY
    np.testing.assert_allclose(steps_ns, step_ns, rtol=1e-9)  # was 0.943/1.257 us for 1 us steps
    assert enc.encode(times).tobytes() == x.tobytes()


def test_microsecond_steps_of_cftime_are_kept():
    start = cftime.datetime(2024, 5, 17, 13, 45, 10, 5, calendar="noleap")
    times = np.array([start + datetime.timedelta(microseconds=k) for k in range(5)], dtype=object)
    x, enc = encode_coord(_da(times), "time")
    np.testing.assert_allclose(np.diff(x) * 86_400e6, 1.0, rtol=1e-9)
    assert enc.units == "days since 2024-05-17 13:45:10.000005"
    assert enc.encode(times).tobytes() == x.tobytes()


def test_resolution_that_float64_cannot_keep_is_refused():
    start = np.datetime64("2024-01-01T00:00:00", "ns")
    times = np.array([start, start + np.timedelta64(1, "ns"), start + np.timedelta64(60, "D")])
    with pytest.raises(ValueError, match=r"dim 'time'.*span 60 days.*as small as 1 ns.*round"):
        encode_coord(_da(times), "time")
    with pytest.raises(ValueError, match=r"dim 'time'.*1 ns"):
        xkron.fit(_da(times), {"time": xkron.ExpQuad(ls=1.0)}, amplitude=1.0, noise=0.1, mean=0.0, progressbar=False)


def test_far_requests_of_a_coarse_resolution_do_not_overflow():
    times = np.array(["2000-01-01T00:00:00.000000001", "2000-01-01T00:00:00.000000003"], dtype="datetime64[ns]")
    _, enc = encode_coord(_da(times), "time")
    far = np.array(["2900-01-01", "1500-03-01"], dtype="datetime64[D]")  # out of the datetime64[ns] range
    days = far.astype(np.int64) - np.datetime64("2000-01-01", "D").astype(np.int64)
    expected = [float(Fraction(int(d) * NS_PER_DAY - 1, NS_PER_DAY)) for d in days]
    np.testing.assert_array_equal(enc.encode(far), expected)


@settings(max_examples=25, deadline=None)
@given(
    start=st.integers(-(2**62), 2**62),
    steps=st.lists(st.integers(1, 10**6), min_size=1, max_size=6),
    unit=st.sampled_from(["ns", "us", "s"]),
)
def test_encoding_is_exact_days_since_start(start, steps, unit):
    ticks = start + np.cumsum([0, *steps])
    times = ticks.astype(np.int64).view(f"datetime64[{unit}]")
    per_day = int(np.timedelta64(1, "D") // np.timedelta64(1, unit))
    x, enc = encode_coord(_da(times), "time")
    np.testing.assert_allclose(x, _exact_days(ticks, ticks[0], per_day), rtol=2**-52, atol=0)
    # the same instants at nanosecond resolution (where it reaches) give the same floats
    ns_per_tick = {"s": 10**9, "us": 10**3, "ns": 1}[unit]
    if unit != "ns" and all(abs(int(t)) * ns_per_tick < 2**63 - 1 for t in ticks):
        assert enc.encode(times.astype("datetime64[ns]")).tobytes() == x.tobytes()


def test_json_round_trip_of_start_relative_encoding():
    times = np.array(["2001-03-01T06:00:00.000001", "2001-03-02"], dtype="datetime64[us]")
    x, enc = encode_coord(_da(times), "time")
    again = CoordEncoding.from_dict(enc.to_dict())
    assert again == enc and again.encode(times).tobytes() == x.tobytes()
