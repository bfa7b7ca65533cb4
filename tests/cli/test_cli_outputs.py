"""Items 2 and 3 of issue 11 on the command line: outputs are checked before any work, never
replace an input, replace an existing file only with --overwrite, and are written atomically."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main
from xkron.io.atomic import TEMP_MARKER

KERNELS = ["--kernel", "time=ExpQuad", "--kernel", "x=Matern32"]
FAST = ["--restarts", "0", "--seed", "0"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_outputs")
    rng = np.random.default_rng(3)
    ds = xr.Dataset(
        {"v": (("time", "x"), rng.normal(size=(5, 4)), {"units": "K"})},
        coords={"time": np.arange(5.0), "x": np.linspace(0.0, 3.0, 4)},
    )
    ds.to_netcdf(root / "data.nc")
    result = CliRunner().invoke(
        main, ["fit", str(root / "data.nc"), "--var", "v", *KERNELS, *FAST, "--out", str(root / "fit.nc")]
    )
    assert result.exit_code == 0, result.output
    xr.Dataset(coords={"x": [0.5, 1.5]}).to_netcdf(root / "points.nc")
    return root


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if a command starts fitting: its output checks must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("the command started fitting before checking its output path")

    monkeypatch.setattr(xkron, "fit", refuse)


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _fit_cmd(folder, out, *extra):
    return ("fit", folder / "data.nc", "--var", "v", *KERNELS, *FAST, "--out", out, *extra)


def _unchanged(path, before):
    assert path.read_bytes() == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_fit_refuses_to_write_over_its_input(folder, no_fitting, overwrite):
    before = (folder / "data.nc").read_bytes()
    result = _run(*_fit_cmd(folder, folder / "data.nc", *overwrite))
    assert result.exit_code == 2, result.output
    assert f"{folder / 'data.nc'} is the input" in " ".join(result.output.split())
    _unchanged(folder / "data.nc", before)


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_fit_refuses_an_input_reached_through_a_link(folder, tmp_path, no_fitting, link):
    out = tmp_path / "alias.nc"
    (os.symlink if link == "symlink" else os.link)(folder / "data.nc", out)
    before = (folder / "data.nc").read_bytes()
    result = _run(*_fit_cmd(folder, out, "--overwrite"))
    assert result.exit_code == 2 and "is the input" in result.output, result.output
    _unchanged(folder / "data.nc", before)


def test_batch_refuses_to_write_over_its_input(folder, no_fitting):
    before = (folder / "data.nc").read_bytes()
    args = ("batch", folder / "data.nc", "--var", "v", "--batch-dim", "time", "--kernel", "x=ExpQuad")
    result = _run(*args, "--out", folder / "data.nc", "--overwrite")
    assert result.exit_code == 2 and "is the input" in result.output, result.output
    _unchanged(folder / "data.nc", before)


@pytest.mark.parametrize("target", ["fit.nc", "points.nc"])
def test_predict_refuses_to_write_over_its_inputs(folder, target):
    before = (folder / target).read_bytes()
    args = ("predict", folder / "fit.nc", "--coords-from", folder / "points.nc", "--out", folder / target)
    result = _run(*args, "--overwrite")
    assert result.exit_code == 2 and f"{folder / target} is the input" in " ".join(result.output.split())
    _unchanged(folder / target, before)
    xkron.open_fit(folder / "fit.nc")


def test_existing_output_needs_overwrite(folder, tmp_path, no_fitting):
    out = tmp_path / "old.nc"
    out.write_bytes(b"an earlier result")
    result = _run(*_fit_cmd(folder, out))
    assert result.exit_code == 2, result.output
    assert "exists; pass --overwrite" in " ".join(result.output.split())
    _unchanged(out, b"an earlier result")
    pred = _run("predict", folder / "fit.nc", "--out", out)
    assert pred.exit_code == 2 and "exists; pass --overwrite" in " ".join(pred.output.split())
    _unchanged(out, b"an earlier result")


def test_overwrite_replaces_an_existing_output(folder, tmp_path):
    out = tmp_path / "pred.nc"
    out.write_bytes(b"an earlier result")
    result = _run("predict", folder / "fit.nc", "--out", out, "--overwrite")
    assert result.exit_code == 0, result.output
    with xr.open_dataset(out) as pred:
        np.testing.assert_array_equal(pred["mean"].values, xkron.open_fit(folder / "fit.nc").predict()["mean"].values)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc is Linux's")
def test_unwritable_folder_is_found_before_fitting(folder, no_fitting):
    result = _run(*_fit_cmd(folder, "/proc/xkron_fit.nc"))
    assert result.exit_code == 2, result.output
    assert "cannot write /proc/xkron_fit.nc: the folder /proc is not writable" in " ".join(result.output.split())


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs permissions that apply (not root)")
def test_read_only_folder_is_found_before_fitting(folder, tmp_path, no_fitting):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _run(*_fit_cmd(folder, locked / "fit.nc"))
    finally:
        locked.chmod(0o755)
    assert result.exit_code == 2 and "is not writable" in result.output, result.output


def _failing_writer(monkeypatch, cls):
    """Make ``cls.to_netcdf`` write part of a file, then fail as a full disk would."""

    def half_write(self, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"\x89HDF half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cls, "to_netcdf", half_write)


def test_failed_prediction_write_keeps_the_previous_output(folder, tmp_path, monkeypatch):
    out = tmp_path / "pred.nc"
    assert _run("predict", folder / "fit.nc", "--out", out).exit_code == 0
    before = out.read_bytes()
    _failing_writer(monkeypatch, xr.Dataset)
    result = _run("predict", folder / "fit.nc", "--grid", "x=0:3:7", "--out", out, "--overwrite")
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    _unchanged(out, before)
    assert not [p for p in os.listdir(tmp_path) if TEMP_MARKER in p]


def test_failed_fit_write_keeps_the_previous_fit(folder, tmp_path, monkeypatch):
    out = tmp_path / "fit.nc"
    assert _run(*_fit_cmd(folder, out)).exit_code == 0
    before = out.read_bytes()
    _failing_writer(monkeypatch, xr.DataTree)
    result = _run(*_fit_cmd(folder, out, "--overwrite"))
    assert result.exit_code == 1 and "No space left on device" in result.output, result.output
    _unchanged(out, before)
    assert not [p for p in os.listdir(tmp_path) if TEMP_MARKER in p]


def test_fit_of_reanalysis_times_is_written_readable(tmp_path):
    """Item 1 on the command line: the fit of 'hours since 1-1-1' data used to be written, then exit 1."""
    times = np.array(["1979-01-01T00", "1979-01-01T06", "1979-01-01T12", "1979-01-01T18"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"t2m": (("time", "x"), np.random.default_rng(8).normal(size=(4, 4)))},
        coords={"time": times, "x": np.linspace(0.0, 3.0, 4)},
    )
    ds["time"].encoding = {"units": "hours since 1-1-1 00:00:0.0", "calendar": "gregorian", "dtype": "int64"}
    ds.to_netcdf(tmp_path / "era.nc")
    fit = _run("fit", tmp_path / "era.nc", "--var", "t2m", *KERNELS, *FAST, "--out", tmp_path / "fit.nc")
    assert fit.exit_code == 0, fit.output
    pred = _run("predict", tmp_path / "fit.nc", "--grid", "time=1979-01-01:1979-01-02:5", "--out", tmp_path / "p.nc")
    assert pred.exit_code == 0, pred.output
    with xr.open_dataset(tmp_path / "p.nc") as back:
        assert back["time"].values[-1] == np.datetime64("1979-01-02", "ns")
