"""Issue 16, item 6 (CLI like CDO/NCO): ``--grid`` in years, months and calendar steps (numpy datetime
and cftime 360_day fits), bare numbers refused on time dims, ``--grid REF.nc`` (a reference file's
coordinates), and ``--sel``/``--squeeze`` on ``fit``, ``predict`` and ``batch``.

Every prediction written by the command is compared with the library's own ``predict`` at the
coordinates it should have used, which are written out independently here (dates from
``datetime``/``cftime`` constructors, not from the code under test).
"""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from cli_calls import FAST
from cli_calls import ok as _ok
from cli_calls import run as _run

import xkron

KERNELS = ["--kernel", "time=Matern32", "--kernel", "latitude,longitude=ExpQuad"]


def _open(path):
    decode = xr.coders.CFDatetimeCoder(use_cftime=None)
    with xr.open_dataset(path, decode_times=decode) as ds:
        return ds.load()


def _dataset(times, members=0):
    rng = np.random.default_rng(1)
    lat, lon = np.linspace(10.0, 30.0, 5), np.linspace(0.0, 30.0, 4)
    t = np.arange(len(times), dtype=float)
    field = np.sin(t / 2)[:, None, None] + np.cos(lat / 10)[None, :, None] * np.sin(lon / 10)[None, None, :]
    data = {"tas": (("time", "latitude", "longitude"), field + 0.1 * rng.standard_normal(field.shape), {"units": "K"})}
    coords = {"time": times, "latitude": lat, "longitude": lon}
    if members:
        ens = field + 0.1 * rng.standard_normal((members, *field.shape))
        data["ens"] = (("member", "time", "latitude", "longitude"), ens, {"units": "K"})
        coords["member"] = [f"m{i}" for i in range(members)]
    return xr.Dataset(data, coords=coords)


@pytest.fixture(scope="module")
def fits(tmp_path_factory):
    """Two tiny fits: numpy datetime times (yearly, 1985-1990) and cftime 360_day (monthly), and a batch fit."""
    root = tmp_path_factory.mktemp("cli_grids")
    yearly = pd.date_range("1985-01-01", periods=6, freq="YS")
    _dataset(yearly, members=2).to_netcdf(root / "dt.nc")
    months = xr.date_range("1990-01-01", periods=6, freq="MS", calendar="360_day", use_cftime=True)
    _dataset(months).to_netcdf(root / "360.nc")
    for name in ("dt", "360"):
        _ok("fit", root / f"{name}.nc", "--var", "tas", *KERNELS, *FAST, "--out", root / f"{name}_fit.nc")
    _ok("batch", root / "dt.nc", "--var", "ens", "--batch-dim", "member", *KERNELS, *FAST, "--out", root / "b.nc")
    return root


def _check_against_library(fit_path, pred_path, **coords):
    written = _open(pred_path)
    direct = xkron.open_fit(fit_path).predict(**coords)
    np.testing.assert_allclose(written["mean"].values, direct["mean"].values, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(written["sd"].values, direct["sd"].values, rtol=1e-10, atol=1e-12)
    return written


# ------------------------------------------------------------------------- calendar grids


def test_year_grid_on_datetime_fit_gives_1990_to_2000(fits, tmp_path):
    _ok("predict", fits / "dt_fit.nc", "--grid", "time=1990:2000:1y", "--out", tmp_path / "p.nc")
    expected = np.array([f"{y}-01-01" for y in range(1990, 2001)], dtype="datetime64[ns]")
    written = _check_against_library(fits / "dt_fit.nc", tmp_path / "p.nc", time=expected)
    np.testing.assert_array_equal(written["time"].values, expected)  # not 1975 (days since 1970)
    # A month grid, and a date-time grid in 6 h steps, on the same fit.
    _ok("predict", fits / "dt_fit.nc", "--grid", "time=1990-06:1991-06:1M", "--out", tmp_path / "m.nc")
    months = _open(tmp_path / "m.nc")["time"].values
    assert months.size == 13 and pd.DatetimeIndex(months).day.tolist() == [1] * 13
    assert str(months[0])[:10] == "1990-06-01" and str(months[-1])[:10] == "1991-06-01"
    _ok("predict", fits / "dt_fit.nc", "--grid", "time=1990-01-01T00:00:1990-01-02:6h", "--out", tmp_path / "h.nc")
    hours = _open(tmp_path / "h.nc")["time"].values
    np.testing.assert_array_equal(hours, np.datetime64("1990-01-01", "ns") + np.arange(5) * np.timedelta64(6, "h"))


def test_year_and_month_grids_on_360_day_fit(fits, tmp_path):
    _ok("predict", fits / "360_fit.nc", "--grid", "time=1990:2000:1Y", "--out", tmp_path / "y.nc")
    expected = [cftime.Datetime360Day(y, 1, 1) for y in range(1990, 2001)]
    written = _check_against_library(fits / "360_fit.nc", tmp_path / "y.nc", time=expected)
    assert [(t.year, t.month, t.day, t.calendar) for t in written["time"].values] == [
        (y, 1, 1, "360_day") for y in range(1990, 2001)
    ]
    # 30 February exists in a 360_day calendar; a month step lands on the 1st of each month.
    _ok("predict", fits / "360_fit.nc", "--grid", "time=1990-02-30:1990-05-30:1MS", "--out", tmp_path / "m.nc")
    assert [(t.month, t.day) for t in _open(tmp_path / "m.nc")["time"].values] == [(3, 1), (4, 1), (5, 1)]
    # NUM evenly spaced dates: 360 days in a 360_day year.
    _ok("predict", fits / "360_fit.nc", "--grid", "time=1990:1991:3", "--out", tmp_path / "n.nc")
    assert [(t.year, t.month, t.day) for t in _open(tmp_path / "n.nc")["time"].values] == [
        (1990, 1, 1),
        (1990, 7, 1),
        (1991, 1, 1),
    ]


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        (
            "time=10950:11315:12",
            "'10950' is not a date; on a time dim give a year (1990: four digits), a month (1990-06)",
        ),
        ("time=7300.5:7665:12", "a bare number is refused"),
        ("time=1990:2000:1m", "'1m' is ambiguous: write 1M for months or 1min for minutes"),
        ("time=1990:2000:1W", "is not a number of points nor a time step such as 1Y"),
        ("time=2000:1990:1Y", "no date every 1YS from 2000 to 1990"),
        ("time=1990-02-31:1990-03-01:1D", "is not a date of the 360_day calendar"),
        ("latitude=10:30:1D", "'latitude' is a numeric dim: give a number of points"),
        ("time=1990:2000", "is not dim=start:stop:num (or :step on time dims)"),
        ("nofile.nc", "is neither DIM=START:STOP:NUM"),
    ],
)
def test_bad_time_grids_are_refused_with_the_accepted_forms(fits, tmp_path, grid, message):
    result = _run("predict", fits / "360_fit.nc", "--grid", grid, "--out", tmp_path / "p.nc")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "p.nc").exists()


def test_cf_units_number_is_accepted_on_a_time_dim(fits, tmp_path):
    grid = "time=7305 days since 1970-01-01:7306 days since 1970-01-01:3"
    _ok("predict", fits / "dt_fit.nc", "--grid", grid, "--out", tmp_path / "p.nc")
    expected = np.datetime64("1990-01-01", "ns") + np.array([0, 12, 24]) * np.timedelta64(1, "h")
    np.testing.assert_array_equal(_open(tmp_path / "p.nc")["time"].values, expected)


# ------------------------------------------------------------------------- reference file


def test_grid_from_reference_file(fits, tmp_path):
    lat, lon = np.linspace(12.0, 28.0, 9), np.array([5.0, 15.0])
    ref = xr.Dataset(
        {"orog": (("latitude", "longitude"), np.zeros((9, 2)))}, coords={"latitude": lat, "longitude": lon}
    )
    ref.to_netcdf(tmp_path / "ref.nc")
    _ok("predict", fits / "dt_fit.nc", "--grid", tmp_path / "ref.nc", "--grid", "time=1988:1990:1Y",
        "--out", tmp_path / "p.nc")  # fmt: skip
    times = np.array(["1988-01-01", "1989-01-01", "1990-01-01"], dtype="datetime64[ns]")
    written = _check_against_library(fits / "dt_fit.nc", tmp_path / "p.nc", time=times, latitude=lat, longitude=lon)
    np.testing.assert_array_equal(written["latitude"].values, lat)
    # --coords-from is the same reference; both at once is refused.
    _ok("predict", fits / "dt_fit.nc", "--coords-from", tmp_path / "ref.nc", "--out", tmp_path / "c.nc")
    _check_against_library(fits / "dt_fit.nc", tmp_path / "c.nc", latitude=lat, longitude=lon)
    both = _run("predict", fits / "dt_fit.nc", "--grid", tmp_path / "ref.nc", "--coords-from", tmp_path / "ref.nc",
                "--out", tmp_path / "x.nc")  # fmt: skip
    assert both.exit_code == 2 and "give one reference file" in both.output


# ------------------------------------------------------------------------- --sel / --squeeze


def test_sel_range_and_point_on_predict(fits, tmp_path):
    out = tmp_path / "p.nc"
    _ok("predict", fits / "dt_fit.nc", "--sel", "time=1986:1988", "--sel", "latitude=15", "--out", out)
    with xr.open_dataset(fits / "dt.nc") as ds:
        times = ds["time"].values[1:4]
    written = _check_against_library(fits / "dt_fit.nc", out, time=times, latitude=[15.0])
    assert dict(written["mean"].sizes) == {"time": 3, "latitude": 1, "longitude": 4}
    squeezed = tmp_path / "s.nc"
    _ok("predict", fits / "dt_fit.nc", "--sel", "latitude=15", "--squeeze", "--out", squeezed)
    assert _open(squeezed)["mean"].dims == ("time", "longitude")
    assert float(_open(squeezed)["latitude"]) == 15.0  # kept as a scalar coordinate
    # Selections on a reference file apply to its own dims (here a station dim).
    stations = xr.Dataset(
        coords={"latitude": ("station", [12.0, 20.0, 26.0]), "longitude": ("station", [1.0, 9.0, 17.0])}
    )
    stations.to_netcdf(tmp_path / "stations.nc")
    _ok("predict", fits / "dt_fit.nc", "--grid", tmp_path / "stations.nc", "--sel", "station=1:2",
        "--out", tmp_path / "st.nc")  # fmt: skip
    assert _open(tmp_path / "st.nc").sizes["station"] == 2


def test_sel_on_batch_fit_predicts_only_those_slices(fits, tmp_path):
    _ok("predict", fits / "b.nc", "--sel", "member=m1", "--squeeze", "--out", tmp_path / "p.nc")
    written = _open(tmp_path / "p.nc")
    assert "member" not in written.dims and str(written["member"].values) == "m1"
    direct = xkron.open_fit(fits / "b.nc").fit_at(member="m1").predict()
    np.testing.assert_allclose(written["mean"].values, direct["mean"].values, rtol=1e-10)


def test_sel_range_on_fit_and_batch(fits, tmp_path):
    _ok("fit", fits / "dt.nc", "--var", "tas", *KERNELS, *FAST, "--sel", "time=1986:1989", "--out", tmp_path / "f.nc")
    with xr.open_dataset(fits / "dt.nc") as ds:
        data = ds["tas"].sel(time=slice("1986", "1989")).load()
    fit = xkron.open_fit(tmp_path / "f.nc")
    np.testing.assert_array_equal(fit.data["time"].values, data["time"].values)
    kernels = {"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad()}
    direct = xkron.fit(data, kernels, restarts=0, random_seed=0, progressbar=False)
    xr.testing.assert_allclose(fit.params, direct.params, rtol=1e-8)
    _ok("batch", fits / "dt.nc", "--var", "ens", "--batch-dim", "member", *KERNELS, *FAST,
        "--sel", "latitude=10:25", "--out", tmp_path / "b.nc")  # fmt: skip
    batch = xkron.open_fit(tmp_path / "b.nc")
    assert batch.fit_at(member="m0").data.sizes["latitude"] == 4


@pytest.mark.parametrize(
    ("sel", "message"),
    [
        ("time=2050:2060", "time=2050:2060: the range holds no point of 'time'"),
        ("depth=1", "'depth' is not a dim of the fit"),
        ("latitude=11", "latitude=11: no such point of 'latitude' (its values: 10.0, 15.0"),
    ],
)
def test_bad_sel_on_predict(fits, tmp_path, sel, message):
    result = _run("predict", fits / "dt_fit.nc", "--sel", sel, "--out", tmp_path / "p.nc")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


def test_info_lists_a_batch_fit_and_sel_picks_a_slice(fits):
    listing = _ok("info", fits / "b.nc").output
    assert "<xkron.BatchFit (member: 2): 2 fitted, 0 failed>" in listing and "--sel member=m0" in listing
    one = _ok("info", fits / "b.nc", "--sel", "member=m1").output
    assert "(slice member='m1')" in one and "ls_time" in one
    params = one.split("\n  params:\n", 1)[1].splitlines()
    ls = float(next(line.split()[2] for line in params if line.split()[0] == "ls_time"))  # "ls_time = 1.2 days"
    expected = float(xkron.open_fit(fits / "b.nc").fit_at(member="m1").params["ls_time"])
    assert ls == pytest.approx(expected, rel=1e-3)  # printed to 4 significant digits
    for args, message in [
        (("--sel", "time=1990"), "by its batch dims ['member'], not ['time']"),
        (("--sel", "member=m9"), "member=m9: no such point of 'member'"),
    ]:
        result = _run("info", fits / "b.nc", *args)
        assert result.exit_code == 2 and message in " ".join(result.output.split()), result.output
    single = _run("info", fits / "dt_fit.nc", "--sel", "member=m1")
    assert single.exit_code == 2 and "is a single fit" in single.output
