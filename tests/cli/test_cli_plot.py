"""Issue 16 item 3: ``xkron plot FILE.nc`` on predictions, fits and batch fits, and its errors."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner

from xkron.cli.app import main

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A fit, a batch fit over three members (one of them failed) and its prediction on (member, x, time)."""
    root = tmp_path_factory.mktemp("cli_plot")
    x, t = np.linspace(0, 1, 6), np.arange(5.0)
    rng = np.random.default_rng(0)
    y = np.sin(3 * x)[:, None] + np.cos(t)[None, :] + 0.1 * rng.standard_normal((6, 5))
    coords = {"x": ("x", x, {"units": "km"}), "time": ("time", t, {"units": "days"})}
    da = xr.DataArray(y, coords=coords, dims=("x", "time"), name="tas", attrs={"units": "K"})
    kernels = {"x": "ExpQuad", "time": "Matern32"}
    da.kron.fit(kernels, progressbar=False).to_netcdf(root / "fit.nc")
    ens = xr.concat([da, da.where(False), 1.5 * da], dim="member").assign_coords(member=["r1", "bad", "r2"])
    batch = ens.kron.fit(kernels, batch_dims="member", errors="record", progressbar=False)
    batch.to_netcdf(root / "batch.nc")
    batch.predict(x=np.linspace(0, 1, 11)).to_netcdf(root / "pred.nc")
    xr.Dataset({"t": ("x", x)}).to_netcdf(root / "other.nc")
    (root / "notes.txt").write_text("not a NetCDF file\n")
    return root


def _image(path):
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert len(np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50
    return image


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_plot_prediction_default_out(files, tmp_path):
    pred = tmp_path / "pred.nc"
    pred.write_bytes((files / "pred.nc").read_bytes())
    result = _run("plot", pred)
    assert result.exit_code == 0, result.output
    assert (
        result.output.strip()
        == f"wrote {tmp_path / 'pred.png'}: maps of mean and sd at member=r2 of the prediction in {pred}"
    )
    _image(tmp_path / "pred.png")
    again = _run("plot", pred)
    assert again.exit_code == 2 and "exists; pass --overwrite" in again.output
    assert _run("plot", pred, "--overwrite").exit_code == 0


def test_plot_prediction_sel(files, tmp_path):
    out = tmp_path / "r1.png"
    result = _run("plot", files / "pred.nc", "--sel", "member=r1", "--out", out)
    assert result.exit_code == 0, result.output
    assert "at member=r1" in result.output
    _image(out)
    bad = _run("plot", files / "pred.nc", "--sel", "member=r9", "--out", tmp_path / "x.png")
    assert bad.exit_code == 2 and "no such point of 'member'" in bad.output
    unknown = _run("plot", files / "pred.nc", "--sel", "level=850", "--out", tmp_path / "x.png")
    assert unknown.exit_code == 2 and "'level' is not a dim of 'mean'" in unknown.output


def test_plot_fit(files, tmp_path):
    out = tmp_path / "fit.png"
    result = _run("plot", files / "fit.nc", "--out", out)
    assert result.exit_code == 0, result.output
    assert "hyperparameters and fitted vs observed of the fit" in result.output
    _image(out)
    refused = _run("plot", files / "fit.nc", "--sel", "x=0", "--out", tmp_path / "x.png")
    assert refused.exit_code == 2 and "is a single fit" in refused.output


def test_plot_batch_fit_slice(files, tmp_path):
    out = tmp_path / "b.png"
    result = _run("plot", files / "batch.nc", "--sel", "member=r2", "--out", out)
    assert result.exit_code == 0, result.output
    assert "of the slice member='r2' of the batch fit" in result.output
    _image(out)
    unchosen = _run("plot", files / "batch.nc", "--out", tmp_path / "x.png")
    assert unchosen.exit_code == 2 and "is a batch fit over {'member': 3}: choose one slice" in unchosen.output
    assert "--sel member=r1" in unchosen.output
    failed = _run("plot", files / "batch.nc", "--sel", "member=bad", "--out", tmp_path / "x.png")
    assert failed.exit_code == 1 and "the slice member='bad' of" in failed.output and "nothing to fit" in failed.output
    other = _run("plot", files / "batch.nc", "--sel", "x=0", "--out", tmp_path / "x.png")
    assert other.exit_code == 2 and "by its batch dims ['member'], not ['x']" in other.output
    assert not (tmp_path / "x.png").exists()


def test_plot_errors(files, tmp_path):
    missing = _run("plot", tmp_path / "missing.nc")
    assert missing.exit_code == 2 and "does not exist" in missing.output
    text = _run("plot", files / "notes.txt", "--out", tmp_path / "a.png")
    assert text.exit_code == 1 and "is neither an xkron fit nor a prediction: xarray cannot open it" in text.output
    other = _run("plot", files / "other.nc", "--out", tmp_path / "b.png")
    assert other.exit_code == 1
    assert "a prediction has variables 'mean' and 'sd' (xkron predict), and this file has ['t']" in other.output
    pdf = _run("plot", files / "fit.nc", "--out", tmp_path / "fit.pdf")
    assert pdf.exit_code == 2 and "give a name ending in .png" in pdf.output
    assert not list(tmp_path.glob("*.png")) and not (tmp_path / "fit.pdf").exists()
