"""``xkron validate``: cross-validation from the command line, scores as NetCDF, a reliability PNG, clear errors."""

from __future__ import annotations

import subprocess
import sys

import matplotlib.image
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KERNELS = ["--kernel", "time=Matern52(ls=3)", "--kernel", "lat,lon=ExpQuad(ls=[2,2])"]


def _data() -> xr.Dataset:
    """8 × 6 × 5 smooth field with clouds (NaN) and a land mask variable."""
    t, a, b = np.arange(8.0), np.linspace(0, 5, 6), np.linspace(0, 4, 5)
    rng = np.random.default_rng(0)
    f = np.sin(t / 2)[:, None, None] + np.cos(a / 2)[None, :, None] * np.sin(b / 2)[None, None, :]
    f = f + 0.05 * rng.normal(size=f.shape)
    f[rng.random(f.shape) < 0.25] = np.nan
    land = np.ones((6, 5))
    land[:2, :2] = 0
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), f, {"units": "K"}), "lsm": (("lat", "lon"), land)},
        coords={"time": t, "lat": a, "lon": b},
    )


@pytest.fixture(scope="module")
def data_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("validate") / "data.nc"
    _data().to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def run(data_path):
    out, png = data_path.parent / "scores.nc", data_path.parent / "reliability.png"
    args = ["validate", str(data_path), "--var", "sst", *KERNELS, "--scheme", "clouds", "--folds", "3",
            "--mask", "lsm", "--out", str(out), "--png", str(png)]  # fmt: skip
    result = CliRunner().invoke(main, args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result, out, png


def test_validate_writes_scores_and_a_png(run):
    result, out, png = run
    assert result.exit_code == 0, result.output
    assert "scheme 'clouds', 3 folds" in result.output and f"wrote {out}" in result.output
    for model in ("gp", "linear", "climatology"):
        assert any(line.startswith(model) for line in result.output.splitlines()), model
    with xr.open_dataset(out) as root:
        assert root["rmse"].dims == ("model",) and root["rmse"].attrs["units"] == "K"
        assert "xkron validate" in root.attrs["history"] and "--scheme clouds" in root.attrs["history"]
    with xr.open_datatree(out) as tree:
        assert tree["folds"]["crps"].dims == ("fold", "model") and tree["folds"].sizes["fold"] == 3
        cells = tree["predictions"].to_dataset()
        assert not bool(((cells["lat"] < 2) & (cells["lon"] < 2)).any())  # land is never held out
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert matplotlib.image.imread(png).shape[1] > 700


def test_validate_is_the_library_call(run, data_path):
    """The command's scores are those of xkron.cross_validate with the same options."""
    _, out, _ = run
    with xr.open_dataset(data_path) as ds:
        da, mask = ds["sst"].load(), ds["lsm"].load() != 0
    kernels = {"time": xkron.Matern52(ls=3), ("lat", "lon"): xkron.ExpQuad(ls=[2, 2])}
    cv = xkron.cross_validate(da, kernels, "clouds", folds=3, mask=mask,
                              seed=0, random_seed=0, progressbar=False)  # fmt: skip
    with xr.open_dataset(out) as root:
        np.testing.assert_allclose(root["rmse"], cv.summary["rmse"], rtol=1e-10)
        np.testing.assert_allclose(root["coverage"], cv.summary["coverage"], rtol=1e-10)


@pytest.mark.parametrize(
    ("extra", "code", "message"),
    [
        (["--var", "temp", "--scheme", "random"], 2, "no variable 'temp'"),
        (["--var", "sst", "--scheme", "cloud"], 2, "'cloud' is not one of 'random', 'blocks', 'clouds'"),
        (["--var", "sst", "--blocks", "time=2"], 2, "--blocks applies to --scheme blocks"),
        (["--var", "sst", "--png", "rel.jpg"], 2, "written as PNG"),
        (["--var", "sst", "--out", "same.nc", "--png", "same.nc"], 2, "are the same file"),
        (["--var", "sst", "--space", "lat"], 2, "two dims joined by a comma"),
    ],
)
def test_validate_refuses_bad_input_before_any_fit(data_path, extra, code, message):
    result = CliRunner().invoke(main, ["validate", str(data_path), *KERNELS, *extra])
    assert result.exit_code == code, result.output
    assert message in result.output


def test_validate_clouds_on_complete_data_says_what_to_do(tmp_path):
    path = tmp_path / "complete.nc"
    _data().fillna(0.0).to_netcdf(path)
    result = CliRunner().invoke(main, ["validate", str(path), "--var", "sst", *KERNELS, "--scheme", "clouds"])
    assert result.exit_code == 1 and "use scheme='random' or 'blocks'" in result.output


def test_validate_refuses_an_existing_output(run, data_path):
    _, out, _ = run
    result = CliRunner().invoke(main, ["validate", str(data_path), "--var", "sst", *KERNELS, "--out", str(out)])
    assert result.exit_code == 2 and "pass --overwrite" in result.output


def test_validate_help_leaves_pymc_out():
    code = (
        "import sys\nfrom click.testing import CliRunner\nfrom xkron.cli.app import main\n"
        "assert CliRunner().invoke(main, ['validate', '--help']).exit_code == 0\n"
        "print(sorted(m for m in ('pymc', 'pytensor') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "[]"
