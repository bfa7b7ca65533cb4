"""Tests of xkron.spec.validation: input checks and their error messages."""

import numpy as np
import pytest
import xarray as xr

from xkron.spec.kernels import ExpQuad, Kernel, Matern12, Matern52, Periodic
from xkron.spec.validation import check_coords, check_data, normalize_kernels


@pytest.fixture
def da():
    return xr.DataArray(
        np.zeros((3, 4, 5)),
        coords={"time": np.arange(3.0), "lat": [10.0, 20.0, 30.0, 40.0], "lon": np.linspace(0, 8, 5)},
        dims=("time", "lat", "lon"),
    )


# --------------------------------------------------------------------------- normalize_kernels


def test_normalize_orders_by_data_dims(da):
    k_space, k_time = ExpQuad(ls=2.0), Matern12()
    out = normalize_kernels(da, {("lon", "lat"): k_space, "time": k_time})
    assert out == [(("time",), k_time), (("lat", "lon"), k_space)]


def test_normalize_single_dims_and_names(da):
    out = normalize_kernels(da, {"lon": "expquad", "lat": "Matern52", "time": "PERIODIC"})
    assert [dims for dims, _ in out] == [("time",), ("lat",), ("lon",)]
    assert [type(k) for _, k in out] == [Periodic, Matern52, ExpQuad]
    assert out[0][1] == Periodic()


def test_kernels_not_mapping(da):
    with pytest.raises(TypeError, match=r"kernels must be a mapping.*got list"):
        normalize_kernels(da, [ExpQuad()])


def test_kernels_empty(da):
    with pytest.raises(TypeError, match=r"kernels is empty.*'time'.*'lat'.*'lon'"):
        normalize_kernels(da, {})


def test_bad_key_type(da):
    with pytest.raises(TypeError, match=r"kernels key 3 \(int\)"):
        normalize_kernels(da, {3: ExpQuad()})


def test_empty_tuple_key(da):
    with pytest.raises(ValueError, match=r"kernels key \(\) names no dim"):
        normalize_kernels(da, {(): ExpQuad()})


def test_dim_repeated_within_key(da):
    with pytest.raises(ValueError, match=r"\('lat', 'lat'\) lists dim\(s\) \['lat'\] more than once"):
        normalize_kernels(da, {("lat", "lat"): ExpQuad()})


def test_unknown_dim_suggests_close_name(da):
    with pytest.raises(ValueError, match=r"dim 'tme' is not in the data.*\('time', 'lat', 'lon'\).*'time'\?"):
        normalize_kernels(da, {"tme": ExpQuad(), "lat": ExpQuad(), "lon": ExpQuad()})


def test_unknown_dim_in_tuple_key(da):
    with pytest.raises(ValueError, match=r"kernels key \('lat', 'depth'\): dim 'depth' is not in the data"):
        normalize_kernels(da, {"time": ExpQuad(), ("lat", "depth"): ExpQuad()})


def test_dim_mapped_twice(da):
    kernels = {"time": ExpQuad(), "lat": ExpQuad(), ("lat", "lon"): ExpQuad()}
    with pytest.raises(ValueError, match=r"dim 'lat' is mapped twice: by key 'lat' and by key \('lat', 'lon'\)"):
        normalize_kernels(da, kernels)


def test_unmapped_dims(da):
    with pytest.raises(ValueError, match=r"\['lat', 'lon'\] have no kernel.*'lat': xkron.ExpQuad\(\).*isel\(lat=0\)"):
        normalize_kernels(da, {"time": ExpQuad()})


def test_unmapped_dim_mentions_batch(da):
    with pytest.raises(ValueError, match="Batch dims are not supported yet"):
        normalize_kernels(da, {"time": ExpQuad(), "lat": ExpQuad()})


def test_unknown_kernel_name(da):
    with pytest.raises(ValueError, match=r"kernels\['lat'\]: unknown kernel 'Matern'.*Available kernels: ExpQuad"):
        normalize_kernels(da, {"time": ExpQuad(), "lat": "Matern", "lon": ExpQuad()})


def test_kernel_class_instead_of_instance(da):
    with pytest.raises(TypeError, match=r"kernels\['time'\] is the class Matern52, not an instance.*Matern52\(\)"):
        normalize_kernels(da, {"time": Matern52, "lat": ExpQuad(), "lon": ExpQuad()})


def test_kernel_base_class_rejected(da):
    with pytest.raises(TypeError, match=r"kernels\['time'\].*not a kernel.*Available kernels"):
        normalize_kernels(da, {"time": Kernel(), "lat": ExpQuad(), "lon": ExpQuad()})


def test_pymc_cov_object_rejected(da):
    import pymc as pm

    cov = pm.gp.cov.Matern52(1, ls=1.0)
    with pytest.raises(TypeError, match=r"kernels\['time'\] is a pymc\.gp\.cov\.Matern52 object.*xkron\.Matern52"):
        normalize_kernels(da, {"time": cov, "lat": ExpQuad(), "lon": ExpQuad()})


def test_other_object_rejected(da):
    with pytest.raises(TypeError, match=r"kernels\['lon'\] is 1\.5 \(float\), not a kernel.*Available kernels"):
        normalize_kernels(da, {"time": ExpQuad(), "lat": ExpQuad(), "lon": 1.5})


# --------------------------------------------------------------------------- check_coords


def test_check_coords_accepts_valid(da):
    check_coords(da, ["time", "lat", "lon"])
    check_coords(da.isel(lat=slice(None, None, -1)), ["lat"])  # decreasing
    check_coords(da.drop_vars("lon"), ["lon"])  # no coordinate: positions


def test_check_coords_accepts_times():
    times = xr.date_range("2000-01-01", periods=3, freq="D", calendar="360_day", use_cftime=True)
    check_coords(xr.DataArray(np.zeros(3), coords={"time": times}, dims="time"), ["time"])
    dt = np.array(["2000-01-01", "2000-01-02"], dtype="datetime64[s]")
    check_coords(xr.DataArray(np.zeros(2), coords={"time": dt}, dims="time"), ["time"])


def test_check_coords_unknown_dim(da):
    with pytest.raises(ValueError, match="dim 'depth' is not in the data"):
        check_coords(da, ["depth"])


def test_too_few_points(da):
    with pytest.raises(ValueError, match=r"dim 'lat' has 1 point\(s\).*at least 2.*squeeze\('lat'"):
        check_coords(da.isel(lat=[0]), ["lat"])


def test_string_coordinate(da):
    bad = da.assign_coords(lon=["a", "b", "c", "d", "e"])
    with pytest.raises(TypeError, match=r"coordinate 'lon' has dtype <U1.*strings.*drop_vars\('lon'\)"):
        check_coords(bad, ["lon"])


def test_bool_coordinate(da):
    bad = da.isel(lat=[0, 1]).assign_coords(lat=[True, False])
    with pytest.raises(TypeError, match="coordinate 'lat' has dtype bool"):
        check_coords(bad, ["lat"])


def test_timedelta_coordinate(da):
    bad = da.assign_coords(time=np.arange(3) * np.timedelta64(1, "h"))
    with pytest.raises(TypeError, match=r"coordinate 'time' has dtype timedelta64"):
        check_coords(bad, ["time"])


def test_multiindex_coordinate(da):
    stacked = da.stack(space=("lat", "lon"))
    with pytest.raises(TypeError, match=r"dim 'space' is a stacked MultiIndex.*unstack\('space'\)"):
        check_coords(stacked, ["space"])


def test_nan_coordinate(da):
    bad = da.assign_coords(lat=[10.0, np.nan, 30.0, np.inf])
    with pytest.raises(
        ValueError, match=r"coordinate 'lat' has 2 missing or non-finite.*out of 4.*position\(s\) \[1, 3\]"
    ):
        check_coords(bad, ["lat"])


def test_nat_coordinate(da):
    times = np.array(["2000-01-01", "NaT", "2000-01-03"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match=r"coordinate 'time' has 1 missing.*position\(s\) \[1\]"):
        check_coords(da.assign_coords(time=times), ["time"])


def test_duplicated_coordinate(da):
    bad = da.assign_coords(lat=[10.0, 20.0, 20.0, 30.0])
    with pytest.raises(ValueError, match=r"coordinate 'lat' has 1 duplicated value\(s\): \[20\.0\].*drop_duplicates"):
        check_coords(bad, ["lat"])


def test_duplicated_datetime_coordinate(da):
    times = np.array(["2000-01-01", "2000-01-02", "2000-01-01"], dtype="datetime64[ns]")
    with pytest.raises(ValueError, match=r"coordinate 'time' has 1 duplicated value\(s\): \['2000-01-01'\]"):
        check_coords(da.assign_coords(time=times), ["time"])


def test_non_monotonic_coordinate(da):
    bad = da.assign_coords(lon=[0.0, 1.0, 5.0, 3.0, 4.0])
    with pytest.raises(ValueError, match=r"'lon' is not monotonic.*position 3 \(5\.0 -> 3\.0\).*sortby\('lon'\)"):
        check_coords(bad, ["lon"])


def test_non_monotonic_decreasing_start(da):
    bad = da.assign_coords(lat=[40.0, 30.0, 35.0, 10.0])
    with pytest.raises(ValueError, match=r"decreases from position 0 but increases at position 2"):
        check_coords(bad, ["lat"])


def test_non_monotonic_cftime():
    times = xr.date_range("2000-01-01", periods=3, freq="D", calendar="noleap", use_cftime=True)
    da = xr.DataArray(np.zeros(3), coords={"time": times[[0, 2, 1]]}, dims="time")
    with pytest.raises(ValueError, match=r"'time' is not monotonic.*position 2 \('2000-01-03T00:00:00'"):
        check_coords(da, ["time"])


# --------------------------------------------------------------------------- check_data


def test_check_data_accepts_numbers(da):
    check_data(da)
    check_data(da.astype(np.int32))
    check_data(da.astype(np.uint8))
    check_data(da.astype(np.float32))


@pytest.mark.parametrize(
    ("dtype", "advice"),
    [
        (bool, r"dtype bool.*astype\(float\)"),
        (complex, r"dtype complex128.*da\.real and da\.imag"),
        (object, r"dtype object.*astype\(float\)"),
        (str, r"dtype <U.*astype\(float\)"),
        ("datetime64[ns]", r"dtype datetime64\[ns\].*timedelta64"),
    ],
)
def test_check_data_rejects_dtypes(da, dtype, advice):
    with pytest.raises(TypeError, match=advice):
        check_data(da.astype(dtype))


def test_check_data_nan_and_inf(da):
    bad = da.copy()
    bad[0, 1, 2] = np.nan
    bad[2, 3, 4] = np.inf
    bad[1, 0, 0] = -np.inf
    msg = (
        r"data has 1 NaN and 2 ±inf value\(s\) out of 60, at \[\{'time': 0\.0, 'lat': 20\.0, 'lon': 4\.0\}, "
        r"\{'time': 1\.0, 'lat': 10\.0, 'lon': 0\.0\}, \{'time': 2\.0, 'lat': 40\.0, 'lon': 8\.0\}\]"
        r".*needs a complete grid: fit with latent=True.*fillna"
    )
    with pytest.raises(ValueError, match=msg):
        check_data(bad)


def test_check_data_lists_at_most_five(da):
    bad = da.copy()
    bad[0] = np.nan
    with pytest.raises(ValueError, match=r"20 NaN and 0 ±inf.*'lon': 8\.0\}, \.\.\.\]") as info:
        check_data(bad)
    assert str(info.value).count("{'time'") == 5


def test_check_data_positions_and_datetimes():
    times = np.array(["2000-01-01", "2000-01-02T06:00"], dtype="datetime64[ns]")
    bad = xr.DataArray([[1.0, 2.0], [3.0, np.nan]], coords={"time": times}, dims=("time", "x"))
    with pytest.raises(ValueError, match=r"at \[\{'time': '2000-01-02T06:00', 'x': 1\}\]"):
        check_data(bad)


def test_check_data_empty():
    with pytest.raises(ValueError, match=r"data are empty \(sizes \{'x': 0\}\)"):
        check_data(xr.DataArray(np.zeros(0), dims="x"))
