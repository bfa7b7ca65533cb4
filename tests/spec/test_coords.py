"""Tests of xkron.spec.coords: numeric encoding of grid coordinates."""

import json

import cftime
import numpy as np
import pytest
import xarray as xr

from xkron.spec.coords import TIME_UNITS, CoordEncoding, coord_kind, encode_coord


def _da(dim, values):
    return xr.DataArray(np.zeros(len(values)), coords={dim: values}, dims=dim)


def test_numeric_keeps_values_and_units():
    da = _da("x", np.array([0, 2, 5]))
    da["x"].attrs["units"] = "km"
    x, enc = encode_coord(da, "x")
    assert x.dtype == np.float64
    assert x.tolist() == [0.0, 2.0, 5.0]
    assert enc == CoordEncoding("numeric", "km", None)
    assert enc.lengthscale_units == "km"


def test_numeric_without_units_attr():
    _, enc = encode_coord(_da("x", [0.5, 1.5]), "x")
    assert enc.units == "" and enc.lengthscale_units == ""


def test_decreasing_coordinate_keeps_order():
    x, enc = encode_coord(_da("lat", np.array([60.0, 30.0, 0.0, -30.0])), "lat")
    assert x.tolist() == [60.0, 30.0, 0.0, -30.0]
    assert enc.kind == "numeric"


def test_index_kind_without_coordinate():
    da = xr.DataArray(np.zeros((2, 4)), dims=("x", "y"))
    y, enc = encode_coord(da, "y")
    assert y.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert enc == CoordEncoding("index", "", None)
    assert enc.encode(np.array([1, 2])).tolist() == [1.0, 2.0]
    assert enc.encode([0.5]).tolist() == [0.5]


@pytest.mark.parametrize("unit", ["ns", "s"])
def test_datetime64_days_since_data_start(unit):
    times = np.array(["1970-01-02T06:00", "1970-01-01", "2000-01-01T12:00"], dtype=f"datetime64[{unit}]")
    da = _da("time", times)
    assert str(da["time"].dtype) == f"datetime64[{unit}]"
    t, enc = encode_coord(da, "time")
    assert t.tolist() == [1.25, 0.0, 10957.5]  # counted from the earliest time, not the first
    epoch = np.datetime_as_string(np.datetime64("1970-01-01", unit))
    assert enc == CoordEncoding("datetime", f"days since {epoch}", "proleptic_gregorian")
    assert enc.lengthscale_units == "days"


def test_legacy_epoch_encoding_still_counts_from_1970():
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    assert enc.encode(np.array(["2000-01-01T12:00"], dtype="datetime64[ns]")).tolist() == [10957.5]


def test_datetime64_resolutions_give_identical_floats():
    ns = np.array(["1999-12-31T23:59:59", "2024-02-29T07:13:11"], dtype="datetime64[ns]")
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    a = enc.encode(ns)
    b = enc.encode(ns.astype("datetime64[s]"))
    c = enc.encode(ns.astype("datetime64[ms]"))
    assert a.tobytes() == b.tobytes() == c.tobytes()


def test_datetime64_before_epoch():
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    assert enc.encode(np.array(["1969-12-31T18:00"], dtype="datetime64[ns]")).tolist() == [-0.25]


def test_cftime_360_day():
    times = xr.date_range("2000-01-01", periods=4, freq="D", calendar="360_day", use_cftime=True)
    t, enc = encode_coord(_da("time", times), "time")
    assert enc == CoordEncoding("cftime", "days since 2000-01-01 00:00:00.000000", "360_day")
    assert enc.lengthscale_units == "days"
    assert t.dtype == np.float64
    assert t.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert enc.encode([cftime.datetime(1970, 1, 1, calendar="360_day")]).tolist() == [-10800.0]  # 30 years of 360


def test_cftime_legacy_epoch_encoding_still_counts_from_1970():
    enc = CoordEncoding("cftime", TIME_UNITS, "360_day")
    assert enc.encode([cftime.datetime(2000, 1, 2, calendar="360_day")]).tolist() == [10801.0]


def test_cftime_noleap_hours():
    times = xr.date_range("2001-03-01", periods=3, freq="6h", calendar="noleap", use_cftime=True)
    t, enc = encode_coord(_da("time", times), "time")
    assert enc.calendar == "noleap"
    assert np.diff(t).tolist() == [0.25, 0.25]


@pytest.mark.parametrize(
    "values",
    [
        np.array([3.0, 1.0, -2.0]),
        np.array(["2000-01-01", "2000-03-01T03:00"], dtype="datetime64[ns]"),
        np.array(["2000-01-01", "2000-03-01T03:00"], dtype="datetime64[s]"),
        xr.date_range("2000-01-01", periods=5, freq="7h", calendar="360_day", use_cftime=True),
        xr.date_range("1850-01-01", periods=5, freq="MS", calendar="julian", use_cftime=True),
    ],
)
def test_encode_reproduces_training_encoding(values):
    da = _da("t", values)
    x, enc = encode_coord(da, "t")
    again = enc.encode(da["t"].values)
    assert again.tobytes() == x.tobytes()
    assert encode_coord(da.copy(deep=True), "t")[0].tobytes() == x.tobytes()


def test_json_round_trip():
    times = xr.date_range("2000-01-01", periods=3, calendar="360_day", use_cftime=True)
    x, enc = encode_coord(_da("time", times), "time")
    back = CoordEncoding.from_dict(json.loads(json.dumps(enc.to_dict())))
    assert back == enc
    assert back.encode(times.values).tobytes() == x.tobytes()


def test_encode_keeps_shape():
    enc = CoordEncoding("numeric")
    assert enc.encode(np.ones((2, 3), dtype=np.int32)).shape == (2, 3)
    assert enc.encode(2.0).shape == ()


def test_unknown_kind_rejected():
    with pytest.raises(ValueError, match="'weeks'"):
        CoordEncoding("weeks")


def test_floats_for_datetime_dim_raise():
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    with pytest.raises(TypeError, match=r"dim 'time' has a datetime64 coordinate.*datetimes.*float64"):
        enc.encode(np.array([1.0, 2.0]), dim="time")


def test_floats_for_cftime_dim_raise():
    enc = CoordEncoding("cftime", TIME_UNITS, "360_day")
    with pytest.raises(TypeError, match=r"'time' has a cftime coordinate in the '360_day' calendar"):
        enc.encode([10.0], dim="time")


def test_other_calendar_for_cftime_dim_raises():
    enc = CoordEncoding("cftime", TIME_UNITS, "360_day")
    noleap = [cftime.datetime(2000, 1, 1, calendar="noleap")]
    with pytest.raises(TypeError, match=r"'360_day' calendar; got calendar\(s\) \['noleap'\]"):
        enc.encode(noleap, dim="time")


def test_datetime64_for_cftime_dim_raises():
    enc = CoordEncoding("cftime", TIME_UNITS, "noleap")
    with pytest.raises(TypeError, match="dtype datetime64"):
        enc.encode(np.array(["2000-01-01"], dtype="datetime64[ns]"))


def test_cftime_for_datetime_dim_raises():
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    with pytest.raises(TypeError, match=r"cftime.*calendar '360_day'"):
        enc.encode([cftime.datetime(2000, 1, 1, calendar="360_day")], dim="time")


def test_datetimes_for_numeric_dim_raise():
    enc = CoordEncoding("numeric", "m")
    with pytest.raises(TypeError, match=r"dim 'x' has a numeric coordinate.*numbers in 'm'.*datetime64"):
        enc.encode(np.array(["2000-01-01"], dtype="datetime64[s]"), dim="x")


def test_python_datetimes_accepted_for_datetime_dim():
    import datetime

    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    assert enc.encode([datetime.datetime(1970, 1, 3, 12)]).tolist() == [2.5]


def test_nat_in_new_values_raises():
    enc = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian")
    with pytest.raises(ValueError, match="1 of 2 new coordinate values"):
        enc.encode(np.array(["2000-01-01", "NaT"], dtype="datetime64[ns]"), dim="time")


def test_string_coordinate_raises():
    with pytest.raises(TypeError, match=r"dim 'station'.*<U"):
        encode_coord(_da("station", ["a", "b"]), "station")


def test_missing_dim_raises():
    with pytest.raises(ValueError, match=r"'z' is not in the data"):
        encode_coord(_da("x", [0.0, 1.0]), "z")


def test_coord_kind():
    assert coord_kind(np.array([1, 2], dtype=np.uint8)) == "numeric"
    assert coord_kind(np.array([True, False])) is None
    assert coord_kind(np.array([1 + 1j])) is None
    assert coord_kind(np.array([np.timedelta64(1, "D")])) is None
    assert coord_kind(np.array([cftime.datetime(2000, 1, 1, calendar="360_day")])) == "cftime"
    assert coord_kind(np.array(["a", 1], dtype=object)) is None


# --------------------------------------------------------------------------- decode (inverse of encode)

_DECODE_CASES = {
    "numeric": np.array([3.0, 1.0, -2.5]),
    "index": None,
    "datetime-ns": np.array(["1999-12-31T23:59:59", "2000-01-01", "2024-02-29T07:13:11"], dtype="datetime64[ns]"),
    "datetime-s": np.array(["1850-01-01", "2100-06-30T06:00"], dtype="datetime64[s]"),
    "cftime-360_day": xr.date_range("2000-01-01", periods=5, freq="7h", calendar="360_day", use_cftime=True),
    "cftime-julian": xr.date_range("1850-01-01", periods=5, freq="MS", calendar="julian", use_cftime=True),
    "cftime-noleap": xr.date_range("2001-03-01T00:00:01", periods=4, freq="6h", calendar="noleap", use_cftime=True),
}


def _training(case):
    """Encoded training values, their encoding and the values themselves."""
    values = _DECODE_CASES[case]
    if values is None:
        return (*encode_coord(xr.DataArray(np.zeros(4), dims="t"), "t"), np.arange(4.0))
    return (*encode_coord(_da("t", values), "t"), np.asarray(values))


@pytest.mark.parametrize("case", list(_DECODE_CASES))
def test_decode_inverts_encode_for_every_kind(case):
    x, enc, values = _training(case)
    decoded = enc.decode(x)
    assert decoded.shape == x.shape
    if enc.kind == "datetime":
        assert decoded.dtype == np.dtype("datetime64[ns]")
        assert (decoded == values.astype("datetime64[ns]")).all()
    else:
        assert list(decoded) == list(values)
    assert enc.encode(decoded).tobytes() == x.tobytes()


@pytest.mark.parametrize("case", ["numeric", "datetime-ns", "cftime-360_day", "cftime-julian"])
def test_encode_inverts_decode_between_training_points(case):
    x, enc, _ = _training(case)
    numbers = np.linspace(x.min(), x.max(), 7).reshape(7, 1)
    decoded = enc.decode(numbers)
    assert decoded.shape == (7, 1)
    resolution = {"datetime": 1e-9 / 86_400, "cftime": 1e-6 / 86_400}.get(enc.kind, 0.0)  # days
    tolerance = resolution / 2 + 4 * np.spacing(np.abs(numbers).max())
    np.testing.assert_allclose(enc.encode(decoded), numbers, rtol=0, atol=tolerance)


def test_decode_of_legacy_units_counts_from_1970():
    dates = CoordEncoding("datetime", TIME_UNITS, "proleptic_gregorian").decode([10957.5, -0.25, np.nan])
    expected = np.array(["2000-01-01T12:00", "1969-12-31T18:00", "NaT"], dtype="datetime64[ns]")
    assert dates.astype(str).tolist() == expected.astype(str).tolist()
    days = CoordEncoding("cftime", TIME_UNITS, "360_day").decode([10801.0, np.nan])
    assert days.tolist() == [cftime.datetime(2000, 1, 2, calendar="360_day"), None]
