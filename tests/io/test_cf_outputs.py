"""CF correctness of every file xkron writes, checked by ``cfchecks`` (cfchecker, with UDUNITS-2) and cf_xarray.

The files: the demo's prediction and fit (``xkron demo``), the command line's fit, prediction and
batch fit (``xkron fit``, ``predict``, ``batch``), and the library's predictions, sample fields and
fits written with ``to_netcdf``, on the bundled air temperature (whose time coordinate names a
``time_bnds`` variable that the DataArray does not carry) and on datetime64 data. ``cfchecks``
must find 0 errors; the only warning accepted is :data:`ACCEPTED_WARNINGS`. The rules the issue
lists (``history``, ``ancillary_variables``, no ``_FillValue`` on coordinates, times as
floating-point ``days since``, no absolute local paths) are asserted directly too.

There is no network: the standard-name table is the one ``compliance-checker`` ships, and the
area-type and region tables are small local ones (``tests/data/cf/``).
"""

from __future__ import annotations

import datetime
import importlib.resources
import json
import os
import re
from pathlib import Path

import cf_xarray  # noqa: F401  (registers .cf)
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main
from xkron.datasets import load_air_temperature
from xkron.io.cf import no_fill_on_coords

TABLES = Path(__file__).parents[1] / "data" / "cf"
REPO = Path(xkron.__file__).resolve().parents[1]
ACCEPTED_WARNINGS = (
    # The data's cell_methods ("time: mean (interval: 6 hour)") are kept on mean, sd and quantiles (their values
    # are annual means still), but the time bounds are not: the DataArray does not carry the time_bnds variable,
    # and new times have none. CF recommends, not requires, bounds there.
    "(7.3): Coordinate variable time should have bounds or climatology attribute",
)
HISTORY_LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ: ")
OWN_HISTORY = "1999-01-01T00:00:00Z: written by hand for the tests"


def _checker():
    """A ``CFChecker`` on the local tables; skipped without cfchecker (no UDUNITS-2), failed on CI."""
    try:
        from cfchecker.cfchecks import CFChecker
    except (ImportError, OSError) as err:  # cfunits loads libudunits2 when imported
        if os.environ.get("CI"):
            pytest.fail(f"cfchecker cannot be imported on CI, where .ci/run installs it: {err}")
        pytest.skip(f"cfchecker cannot be imported (it needs the UDUNITS-2 library): {err}")
    names = importlib.resources.files("compliance_checker") / "data" / "cf-standard-name-table.xml"
    return CFChecker(
        cfStandardNamesXML=str(names),
        cfAreaTypesXML=str(TABLES / "area-type-table.xml"),
        cfRegionNamesXML=str(TABLES / "region-names.xml"),
        silent=True,
    )


def assert_cf_valid(path) -> list[str]:
    """``cfchecks`` finds no fatal error and no error in ``path``, and no warning beyond :data:`ACCEPTED_WARNINGS`;
    returns the warnings."""
    checker = _checker()
    checker.checker(str(path))
    results = [("global", checker.results["global"]), *checker.results["variables"].items()]
    errors = [f"{where}: {m}" for where, r in results for m in r["FATAL"] + r["ERROR"]]
    warnings = [m for _, r in results for m in r["WARN"]]
    assert not errors, f"cfchecks found errors in {Path(path).name}: {errors}"
    assert set(warnings) <= set(ACCEPTED_WARNINGS), f"unexpected cfchecks warnings in {Path(path).name}: {warnings}"
    assert checker.get_counts()["ERROR"] == 0
    return warnings


def _attrs_everywhere(path):
    """``(where, name, value)`` of every attribute of the file: root, groups and variables."""
    with netCDF4.Dataset(path) as nc:
        stack = [nc]
        while stack:
            group = stack.pop()
            yield from ((group.path, k, group.getncattr(k)) for k in group.ncattrs())
            for name, var in group.variables.items():
                yield from ((f"{group.path}{name}", k, var.getncattr(k)) for k in var.ncattrs())
            stack.extend(group.groups.values())


def assert_no_local_paths(path, *folders):
    """No attribute of the file names a local folder: ``folders``, the repository, or any existing folder."""
    for where, name, value in _attrs_everywhere(path):
        text = str(value)
        for folder in (*folders, REPO, Path.home()):
            assert str(folder) not in text, f"{where}:{name} holds the local path {folder}"
        for token in re.findall(r"(?:^|[\s=(\"'])(/[^\s\"'),;]+)", text):
            parent = os.path.dirname(token)
            assert parent == "/" or not os.path.isdir(parent), f"{where}:{name} holds the local path {token}"


def assert_cf_coordinates(path, float_times=True, group="/"):
    """Coordinates without ``_FillValue``; times as ``days``/``hours since`` with a calendar, never int64
    nanoseconds, and as float64 where ``float_times`` (predictions; a fit file's ``/data`` keeps the training
    times as whole numbers of their units, losslessly)."""
    with netCDF4.Dataset(path) as nc:
        for name, var in nc[group].variables.items() if group != "/" else nc.variables.items():
            if var.dimensions == (name,):
                assert "_FillValue" not in var.ncattrs(), f"coordinate {name} has a _FillValue"
            if "since" in getattr(var, "units", ""):
                assert re.match(r"(days|hours) since \d", var.units) and var.calendar, (name, var.units)
                assert var.dtype == np.float64 or not float_times, f"{name} is written as {var.dtype}, not float64"


def assert_history(ds, action):
    """A new timestamped line of xkron's, then the data's own history."""
    first, *rest = ds.attrs["history"].splitlines()
    assert HISTORY_LINE.match(first) and f"xkron {xkron.__version__}" in first and action in first, first
    assert rest == [OWN_HISTORY]


def _air(hist=True) -> xr.DataArray:
    """A small slice of the bundled air temperature (360-day calendar, CF attrs, time bounds named), 4 × 7 × 7."""
    da = load_air_temperature().isel(time=slice(-4, None), latitude=slice(0, None, 3), longitude=slice(0, None, 4))
    da["latitude"].attrs["actual_range"] = np.array([15.0, 60.0], dtype="f4")
    da["latitude"].attrs["valid_range"] = np.array([15.0, 60.0], dtype="f4")
    if hist:
        da.attrs["history"] = OWN_HISTORY
    return da


NEW_GRID = {"latitude": np.linspace(14.0, 61.0, 9), "longitude": np.linspace(230.0, 310.0, 6)}


@pytest.fixture(scope="module")
def air_fit():
    da = _air()
    kernels = {"time": xkron.Matern12(), ("latitude", "longitude"): xkron.Matern52()}
    return da.kron.fit(kernels, restarts=0, random_seed=0, progressbar=False)


# ---------------------------------------------------------------------------- the library


def test_api_prediction_on_a_new_grid_with_quantiles_is_cf(air_fit, tmp_path):
    """The issue's case: the bundled data's coordinates name time_bnds and carry value ranges; on a new grid
    (new times between the training ones too) they are dropped, and cfchecks finds no error."""
    t = air_fit.data["time"].values
    times = np.array([t[0] + datetime.timedelta(days=90), t[-1] - datetime.timedelta(days=45)])
    pred = air_fit.predict(time=times, **NEW_GRID, quantiles=(0.05, 0.5, 0.95))
    path = tmp_path / "prediction.nc"
    pred.to_netcdf(path)
    warnings = assert_cf_valid(path)
    assert warnings  # the time-bounds warning of cell_methods: it is the one accepted, and it occurs here
    assert_cf_coordinates(path)
    assert_no_local_paths(path, tmp_path)

    back = xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    assert back["mean"].attrs["ancillary_variables"] == "sd quantiles"
    assert back["mean"].attrs["standard_name"] == "air_temperature"
    assert back["sd"].attrs["standard_name"] == "air_temperature standard_error"  # a CF standard-name modifier
    assert back["quantiles"].attrs["standard_name"] == "air_temperature"
    for var in ("mean", "sd", "quantiles"):
        assert back[var].attrs["cell_methods"] == "time: mean (interval: 6 hour)"  # the data's, kept
        assert back[var].attrs["units"] == "K"
    assert back["quantile"].attrs == {"units": "1", "long_name": "probability of a value below the quantile"}
    for dim in ("time", "latitude"):
        assert not {"bounds", "actual_range", "valid_range"} & set(back[dim].attrs), back[dim].attrs
    assert back["latitude"].attrs["standard_name"] == "latitude"  # what still holds is kept
    assert back["time"].encoding["calendar"] == "360_day"
    assert list(back["time"].values) == list(times)  # written as float days, read back exactly
    assert back.attrs["Conventions"] == "CF-1.8"
    assert_history(back, "predict")

    # cf_xarray finds the axes, the coordinates, the standard names and the ancillary variables.
    assert back.cf.axes == {"X": ["longitude"], "Y": ["latitude"], "T": ["time"]}
    assert back.cf["latitude"].name == "latitude"
    assert back.cf.standard_names["air_temperature"] == ["mean", "quantiles"]
    assert back.cf.standard_names["air_temperature standard_error"] == ["sd"]
    assert back.cf.get_associated_variable_names("mean")["ancillary_variables"] == ["sd", "quantiles"]


def test_api_prediction_on_the_training_grid_keeps_what_holds(air_fit, tmp_path):
    """On the training grid the value ranges still hold and are kept; the dangling bounds still go."""
    pred = air_fit.predict()
    assert pred["latitude"].attrs["valid_range"].tolist() == [15.0, 60.0]
    assert "bounds" not in pred["time"].attrs
    assert pred["mean"].attrs["ancillary_variables"] == "sd"
    pred.to_netcdf(tmp_path / "training_grid.nc")
    assert_cf_valid(tmp_path / "training_grid.nc")
    assert_cf_coordinates(tmp_path / "training_grid.nc")


def test_api_prediction_at_points_keeps_cell_methods_only_where_they_name_something(air_fit, tmp_path):
    """At scattered points the dims become auxiliary coordinates: "time: mean" still names one (by its
    standard_name, which CF allows); a name that is neither a dim nor a standard name is dropped (CF §7.3)."""
    t = air_fit.data["time"].values
    points = xr.Dataset(
        {"time": ("point", t[[0, 2]]), "latitude": ("point", [20.0, 41.0]), "longitude": ("point", [240.0, 300.0])}
    )
    pred = air_fit.predict(points, quantiles=(0.5,))
    assert pred["mean"].dims == ("point",) and pred["mean"].attrs["cell_methods"] == "time: mean (interval: 6 hour)"
    pred.to_netcdf(tmp_path / "points.nc")
    assert_cf_valid(tmp_path / "points.nc")
    assert_cf_coordinates(tmp_path / "points.nc")

    x = np.linspace(0.0, 1.0, 5)
    da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, name="v", attrs={"units": "K", "long_name": "v"})
    da.attrs["cell_methods"] = "a: mean"  # "a" is no standard name
    for dim in "ab":
        da[dim].attrs.update(units="km", long_name=dim)
    fit = da.kron.fit({"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)}, amplitude=1.0, noise=0.1,
                      mean="zero", progressbar=False)  # fmt: skip
    assert fit.predict(a=[0.5])["mean"].attrs["cell_methods"] == "a: mean"  # a grid: "a" is a dim
    pred = fit.predict(xr.Dataset({"a": ("point", [0.1, 0.5]), "b": ("point", [0.2, 0.9])}))
    assert "cell_methods" not in pred["mean"].attrs
    pred.to_netcdf(tmp_path / "ab_points.nc")
    assert_cf_valid(tmp_path / "ab_points.nc")


def test_api_sample_fields_are_cf(air_fit, tmp_path):
    fields = air_fit.sample(2, **NEW_GRID, random_seed=0, progressbar=False)
    path = tmp_path / "samples.nc"
    fields.to_netcdf(path)
    assert_cf_valid(path)
    assert_cf_coordinates(path)
    back = xr.open_dataset(path, decode_times=False)
    assert back["f"].attrs["cell_methods"] == "time: mean (interval: 6 hour)"
    assert_history(back, "sample")


def test_datetime_times_are_written_as_float_days_not_int64(tmp_path):
    """Data made in memory (no file encoding) on datetime64 times: predictions between them are written as
    float64 ``days since`` the fit's first time with a calendar, on new and on training times."""
    times = pd.date_range("2001-01-01", periods=5, freq="7D")
    x = np.linspace(0.0, 1.0, 4)
    values = np.sin(np.arange(5.0))[:, None] + x[None, :]
    da = xr.DataArray(values, coords={"time": times, "x": x}, dims=("time", "x"), name="v", attrs={"units": "m"})
    da.attrs.update(long_name="level", history=OWN_HISTORY)
    da["time"].attrs["standard_name"] = "time"
    da["x"].attrs.update(units="km", long_name="distance along the section")
    fit = da.kron.fit({"time": xkron.Matern32(ls=10.0), "x": xkron.ExpQuad(ls=0.5)}, amplitude=1.0, noise=0.1,
                      mean="zero", progressbar=False)  # fmt: skip
    new = times[:-1] + pd.Timedelta(hours=7)
    for name, pred in {"new": fit.predict(time=new), "training": fit.predict()}.items():
        path = tmp_path / f"{name}.nc"
        pred.to_netcdf(path)
        assert_cf_valid(path)
        assert_cf_coordinates(path)
        with netCDF4.Dataset(path) as nc:
            assert nc["time"].units == "days since 2001-01-01" and nc["time"].calendar == "proleptic_gregorian"
        assert (xr.open_dataset(path)["time"].values == pred["time"].values).all()


def test_fit_file_root_describes_the_fit_and_is_cf(air_fit, tmp_path):
    """``xr.open_dataset`` of a fit file shows a useful root: title, model, parameters, CF attributes and a
    comment pointing to the groups; its /data group, written on its own, is CF too."""
    path = tmp_path / "fit.nc"
    air_fit.to_netcdf(path)
    assert_cf_valid(path)
    assert_no_local_paths(path, tmp_path)
    root = xr.open_dataset(path).attrs
    assert root["Conventions"] == "CF-1.8" and root["title"] == "xkron fit of Near-surface air temperature"
    assert "Matern12(time) * Matern52(latitude, longitude)" in root["model"]
    assert re.search(r"ls_time=[\d.e+]+ days", root["parameters"])
    assert "amplitude=" in root["parameters"] and " K" in root["parameters"]
    assert "xarray.open_datatree" in root["comment"] and "xkron.open_fit" in root["comment"]
    first, *rest = root["history"].splitlines()
    assert (
        HISTORY_LINE.match(first) and first.endswith(f"xkron {xkron.__version__} fit (map)") and rest == [OWN_HISTORY]
    )
    assert "source" not in json.loads(root["xkron_spec"])["data_encoding"]  # the bundled file's local path

    data = xr.open_dataset(path, group="data")
    assert "bounds" not in data["time"].attrs  # names a variable the fit does not hold
    assert xkron.open_fit(path).data["time"].attrs["bounds"] == "time_bnds"  # restored: the data as they were
    assert_cf_coordinates(path, float_times=False, group="data")  # training times kept losslessly (whole days)
    flat = data.assign_attrs(Conventions=root["Conventions"])  # in the file, the root's
    no_fill_on_coords(flat)  # as written in the group (xarray would add one on writing what it read)
    flat.to_netcdf(tmp_path / "data_group.nc")
    assert_cf_valid(tmp_path / "data_group.nc")


# ---------------------------------------------------------------------------- the command line and the demo


@pytest.fixture(scope="module")
def cli_files(tmp_path_factory):
    """``xkron fit``, ``predict`` (new grid, quantiles) and ``batch`` run on a slice of the bundled data."""
    root = tmp_path_factory.mktemp("cf_cli")
    _air().to_dataset().to_netcdf(root / "air.nc")
    kernels = ["--kernel", "time=Matern12", "--kernel", "latitude,longitude=Matern52"]
    runs = {
        "fit": ["fit", str(root / "air.nc"), "--var", "air_temperature", *kernels, "--restarts", "0",
                "--out", str(root / "fit.nc")],
        "predict": ["predict", str(root / "fit.nc"), "--grid", "latitude=14:61:9", "--grid", "longitude=230:310:6",
                    "--quantiles", "0.1,0.9", "--out", str(root / "pred.nc")],
        "batch": ["batch", str(root / "air.nc"), "--var", "air_temperature", "--batch-dim", "time",
                  "--kernel", "latitude,longitude=Matern52", "--restarts", "0", "--out", str(root / "batch.nc")],
    }  # fmt: skip
    for args in runs.values():
        result = CliRunner().invoke(main, args)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception
        assert result.exit_code == 0, result.output
    return root


@pytest.mark.parametrize("name", ["fit.nc", "pred.nc", "batch.nc"])
def test_cli_outputs_are_cf(cli_files, name):
    path = cli_files / name
    assert_cf_valid(path)
    assert_cf_coordinates(path, float_times=name == "pred.nc")  # fit files keep the training times losslessly
    assert_no_local_paths(path, cli_files)
    attrs = xr.open_dataset(path).attrs
    assert attrs["Conventions"] == "CF-1.8" and HISTORY_LINE.match(attrs["history"])


def test_cli_prediction_records_its_command_line_without_folders(cli_files):
    pred = xr.open_dataset(cli_files / "pred.nc")
    first, *rest = pred.attrs["history"].splitlines()
    assert "xkron predict fit.nc --grid latitude=14:61:9" in first and first.endswith(f"(xkron {xkron.__version__})")
    assert rest == [OWN_HISTORY]
    assert pred["mean"].attrs["ancillary_variables"] == "sd quantiles"
    assert pred["quantile"].attrs["units"] == "1"
    assert "from fit.nc" in pred.attrs["source"]


@pytest.mark.parametrize(
    ("name", "command"), [("fit.nc", "xkron fit air.nc --var"), ("batch.nc", "xkron batch air.nc")]
)
def test_cli_fits_record_their_command_line_without_folders(cli_files, name, command):
    first, *rest = xr.open_dataset(cli_files / name).attrs["history"].splitlines()
    assert command in first and first.endswith(f"(xkron {xkron.__version__})") and str(cli_files) not in first
    assert rest == ([OWN_HISTORY] if name == "fit.nc" else [])


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory):
    from xkron.cli.demo import run_demo

    out = tmp_path_factory.mktemp("cf_demo")
    return run_demo(out, years=3, plot=False).paths


@pytest.mark.parametrize("name", ["prediction", "fit"])
def test_demo_outputs_are_cf(demo_files, name):
    path = demo_files[name]
    assert_cf_valid(path)
    assert_cf_coordinates(path)
    assert_no_local_paths(path, path.parent)
    if name == "prediction":
        pred = xr.open_dataset(path)
        assert pred["mean"].attrs["ancillary_variables"] == "sd"
        assert HISTORY_LINE.match(pred.attrs["history"]) and "demo --years 3" in pred.attrs["history"]


def test_api_prediction_with_components_is_cf(tmp_path):
    """The parts of a sum kernel label their dim by a CF auxiliary coordinate of character labels (coordinate
    variables are numeric in CF), indexed so that ``sel(component_name=...)`` works before and after a file."""
    da = _air().isel(latitude=slice(0, 3), longitude=slice(0, 3))
    fit = da.kron.fit({"time": "Matern12 + ExpQuad", ("latitude", "longitude"): "Matern52"}, restarts=0,
                      random_seed=0, progressbar=False)  # fmt: skip
    pred = fit.predict(components="time")
    assert list(pred["component_name"].values) == ["Matern12", "c*ExpQuad"]  # c: its variance weight
    part = pred["components"].sel(component_name="c*ExpQuad")
    path = tmp_path / "components.nc"
    pred.to_netcdf(path)
    assert_cf_valid(path)
    assert_cf_coordinates(path)
    back = xr.open_dataset(path).set_xindex("component_name")
    np.testing.assert_array_equal(back["components"].sel(component_name="c*ExpQuad").values, part.values)
    assert back["component_name"].attrs["long_name"].startswith("additive part of the time factor")
