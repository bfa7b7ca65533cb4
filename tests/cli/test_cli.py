"""Tests of the command-line interface (xkron.cli.app, .demo, .info): ``xkron demo``, ``xkron info``, ``--help``."""

from __future__ import annotations

import struct
import subprocess
import sys

import click
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main
from xkron.cli.demo import DEMO_FIT, DEMO_PLOT, DEMO_PREDICTION
from xkron.datasets import load_air_temperature

YEARS = 5  # a short record keeps the end-to-end run well under a minute
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run ``xkron demo`` once, end to end, through click's CliRunner."""
    out = tmp_path_factory.mktemp("demo") / "nested" / "out"
    result = CliRunner().invoke(main, ["demo", "--out", str(out), "--years", str(YEARS)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return out, result


def test_demo_exits_cleanly_and_writes_three_files(demo_run):
    out, result = demo_run
    assert result.exit_code == 0, result.output
    for name in (DEMO_PREDICTION, DEMO_FIT, DEMO_PLOT):
        path = out / name
        assert path.is_file() and path.stat().st_size > 0, name
        assert str(path) in result.output


def test_demo_summary(demo_run):
    _, result = demo_run
    text = result.output
    for expected in (
        f"last {YEARS} of 240 years (2095-2099)",
        "optimizer: converged",
        "ls_time ",
        " days (= ",
        " degrees_north",
        " degrees_east",
        "timings:",
        "fit ",
    ):
        assert expected in text, expected
    for name in ("amplitude", "noise", "mean"):
        assert any(line.split()[:1] == [name] and line.rstrip().endswith(" K") for line in text.splitlines()), name


def test_demo_reports_heldout_rmse(demo_run):
    pytest.importorskip("iris_sample_data")
    _, result = demo_run
    lines = {line.strip().split("  ")[0]: line for line in result.output.splitlines()}
    rmse = float(lines["RMSE of the GP mean"].split()[-2])
    bilinear = float(lines["RMSE of bilinear interpolation"].split()[-2])
    assert 0 < rmse < 1.0  # kelvin; the field spans ~40 K
    assert rmse < bilinear  # the GP beats bilinear interpolation at the held-out cells
    assert "3 × 1,338" in result.output or "4,014 values" in result.output


def test_prediction_netcdf(demo_run):
    out, _ = demo_run
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(out / DEMO_PREDICTION, decode_times=decode) as ds:
        ds = ds.load()
    for name in ("mean", "sd"):
        var = ds[name]
        assert var.dims == ("time", "latitude", "longitude")
        assert var.attrs["units"] == "K"
        assert "long_name" in var.attrs
        assert np.isfinite(var.values).all()
    assert dict(ds.sizes) == {"time": 3, "latitude": 37, "longitude": 49}
    assert (ds["sd"] > 0).all()
    assert ds.attrs["Conventions"].startswith("CF-")
    assert ds["latitude"].attrs["units"] == "degrees_north"
    assert ds["longitude"].attrs["units"] == "degrees_east"
    assert ds["time"].dt.calendar == "360_day"
    assert [t.year for t in ds["time"].values] == [2097, 2098, 2099]

    # The fine grid holds the training grid at every second point; the latent mean there is
    # close to the data (within a few noise sd), and its sd is lower than between the points.
    air = load_air_temperature()
    np.testing.assert_allclose(ds["latitude"].values[::2], air["latitude"].values)
    np.testing.assert_allclose(ds["longitude"].values[::2], air["longitude"].values)
    assert int(ds["in_training_grid"].sum()) == 19 * 25
    on_grid = ds["mean"].isel(latitude=slice(None, None, 2), longitude=slice(None, None, 2))
    truth = air.isel(time=slice(-3, None)).values
    assert float(np.abs(on_grid.values - truth).max()) < 1.5
    flag = ds["in_training_grid"] == 1
    assert float(ds["sd"].where(flag).mean()) < float(ds["sd"].where(~flag).mean())


def test_fit_netcdf_reopens_and_reproduces_prediction(demo_run):
    out, _ = demo_run
    fit = xkron.open_fit(out / DEMO_FIT)
    assert fit.method == "map"
    assert fit.data.sizes == {"time": YEARS, "latitude": 19, "longitude": 25}
    assert fit.params["amplitude"].attrs["units"] == "K"
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(out / DEMO_PREDICTION, decode_times=decode) as ds:
        ds = ds.load()
    again = fit.predict(time=ds["time"].values, latitude=ds["latitude"].values, longitude=ds["longitude"].values)
    np.testing.assert_allclose(again["mean"].values, ds["mean"].values, rtol=0, atol=1e-9)
    np.testing.assert_allclose(again["sd"].values, ds["sd"].values, rtol=0, atol=1e-9)


def test_png_is_valid(demo_run):
    out, _ = demo_run
    data = (out / DEMO_PLOT).read_bytes()
    assert data[:8] == PNG_SIGNATURE
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width > 600 and height > 300
    assert data[-8:-4] == b"IEND"
    import matplotlib.image

    image = matplotlib.image.imread(out / DEMO_PLOT)
    assert image.shape[:2] == (height, width)
    assert image.std() > 0.05  # not blank


def test_info_on_written_fit(demo_run):
    out, _ = demo_run
    result = CliRunner().invoke(main, ["info", str(out / DEMO_FIT)])
    assert result.exit_code == 0, result.output
    text = result.output
    for expected in (
        "<xkron.KronFit (map; gaussian, marginal)>",
        "kernels: time: Matern12, latitude×longitude: Matern52",
        "air_temperature [K]",
        "ls_time",
        "ls_latitude",
        "ls_longitude",
        'priors:\n  ls_time       Prior("LogNormal"',
        "ls_time      = ",  # the value with its units, once (the repr's)
        "optimizer: converged",
    ):
        assert expected in text, expected
    assert text.count("ls_latitude") == 2  # its value, then its prior


def test_info_errors(tmp_path, demo_run):
    runner = CliRunner()
    missing = runner.invoke(main, ["info", str(tmp_path / "missing.nc")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output
    out, _ = demo_run
    not_a_fit = runner.invoke(main, ["info", str(out / DEMO_PREDICTION)])
    assert not_a_fit.exit_code == 1
    assert f"{out / DEMO_PREDICTION} is not an xkron fit (a NetCDF file without" in " ".join(not_a_fit.output.split())


@pytest.mark.parametrize("years", ["1", "241", "x"])
def test_demo_rejects_bad_years(years, tmp_path):
    result = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--years", years])
    assert result.exit_code == 2
    assert "--years" in result.output
    assert not any(tmp_path.iterdir())


def _commands():
    yield (), main
    for name, command in main.commands.items():
        yield (name,), command


@pytest.mark.parametrize(("args", "command"), list(_commands()), ids=["xkron", *main.commands])
def test_help_mentions_every_option(args, command):
    result = CliRunner().invoke(main, [*args, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                assert opt in result.output, f"{opt} missing from {' '.join(args)} --help"
            assert param.help or param.name in ("help", "version"), f"{param.name} has no help text"
        else:
            assert param.human_readable_name in result.output
    if args == ("demo",):
        for name in (DEMO_PREDICTION, DEMO_FIT, DEMO_PLOT, "[default: out]", "[default: 240"):
            assert name in result.output


def test_group_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert "demo" in result.output and "info" in result.output
    version = CliRunner().invoke(main, ["--version"])
    assert version.exit_code == 0 and xkron.__version__ in version.output


def test_python_dash_m(tmp_path):
    for args in (["--help"], ["demo", "--help"], ["info", "--help"]):
        proc = subprocess.run(
            [sys.executable, "-m", "xkron", *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.startswith("Usage: xkron")
