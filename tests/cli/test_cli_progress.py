"""Item 15 of issue 11 on the command line: ``xkron fit`` shows the MAP's progress (start k of n,
iterations, log posterior, elapsed time) on stderr, and ``--no-progress`` silences it."""

from __future__ import annotations

import re

import numpy as np
import xarray as xr
from click.testing import CliRunner

from xkron.cli.app import main


def _fit(tmp_path, *extra):
    ds = xr.Dataset(
        {"v": (("time", "x"), np.random.default_rng(4).normal(size=(6, 5)))},
        coords={"time": np.arange(6.0), "x": np.linspace(0.0, 2.0, 5)},
    )
    ds.to_netcdf(tmp_path / "data.nc")
    args = ["fit", str(tmp_path / "data.nc"), "--var", "v", "--kernel", "time=ExpQuad", "--kernel", "x=Matern32"]
    result = CliRunner().invoke(main, [*args, "--restarts", "1", "--out", str(tmp_path / "fit.nc"), *extra])
    assert result.exit_code == 0, result.output
    return result.stderr


def test_fit_shows_each_map_start_on_stderr(tmp_path):
    lines = re.findall(r"MAP start (\d) of 2: \d+ iterations, log posterior -?[\d.e+-]+, [\d.]+ s", _fit(tmp_path))
    assert lines == ["1", "2"]


def test_no_progress_prints_nothing_on_stderr(tmp_path):
    assert "MAP start" not in _fit(tmp_path, "--no-progress")


def _form(text):
    """The lines with their numbers replaced, so that the CLI's and the API's can be compared."""
    return [re.sub(r"-?\d+(\.\d+)?(e[-+]?\d+)?", "N", line) for line in text.splitlines() if line.startswith("MAP")]


def test_quiet_prints_nothing_on_stderr(tmp_path):
    assert _fit(tmp_path, "--quiet") == ""


def test_cli_progress_lines_are_the_library_lines(tmp_path, capsys):
    import xkron

    cli = _form(_fit(tmp_path, "--seed", "0"))
    with xr.open_dataset(tmp_path / "data.nc") as ds:
        da = ds["v"].load()
    xkron.fit(da, {"time": xkron.ExpQuad(), "x": xkron.Matern32()}, restarts=1, random_seed=0)
    api = _form(capsys.readouterr().err)
    assert cli == api and len(cli) == 2, (cli, api)
    assert cli[0].startswith("MAP start N of N: N iterations, log posterior N, N s (")
