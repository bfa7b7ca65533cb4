"""End-to-end tests of ``xkron fit``, ``xkron predict`` and ``xkron batch`` (xkron.cli.commands, xkron.cli.jobs).

Tiny synthetic grids (6 × 5 × 4, time × latitude × longitude, a few NaN) written to NetCDF in
a temporary directory, run through click's CliRunner and compared with direct library calls.
"""

from __future__ import annotations

import click
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main
from xkron.cli.errors import JobInputError
from xkron.cli.grids import grid_values
from xkron.cli.jobs import run_predict
from xkron.cli.parsing import GridSpec, parse_grid, parse_kernel
from xkron.spec.coords import CoordEncoding

KERNEL_ARGS = ["--kernel", "time=Matern32", "--kernel", "latitude,longitude=ExpQuad"]
KERNELS = {"time": xkron.Matern32(), ("latitude", "longitude"): xkron.ExpQuad()}
FAST = ["--restarts", "0", "--seed", "0"]
FAST_KWARGS = {"restarts": 0, "random_seed": 0, "progressbar": False}


def _field(rng, times, extra_dims=()):
    lat, lon = np.linspace(10, 30, 5), np.linspace(0, 30, 4)
    t = np.arange(len(times), dtype=float)
    field = np.sin(t / 2)[:, None, None] + np.cos(lat / 10)[None, :, None] * np.sin(lon / 10)[None, None, :]
    shape = tuple(n for _, n in extra_dims) + field.shape
    y = field + 0.1 * rng.standard_normal(shape)
    dims = (*(d for d, _ in extra_dims), "time", "latitude", "longitude")
    coords = {"time": times, "latitude": lat, "longitude": lon}
    coords.update({d: [f"{d}{i}" for i in range(n)] for d, n in extra_dims})
    return y, dims, coords


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """``data.nc``: tas (datetime time, 2 NaN), a land mask, per-cell noise sd, an ensemble."""
    root = tmp_path_factory.mktemp("cli_jobs")
    rng = np.random.default_rng(0)
    times = pd.date_range("2000-01-01", periods=6, freq="30D")
    y, dims, coords = _field(rng, times)
    y[1, 2, 3] = y[4, 0, 0] = np.nan
    ens, ens_dims, _ = _field(rng, times, extra_dims=(("member", 3),))
    ens[2] = np.nan  # a member that cannot be fitted
    land = np.ones((5, 4), dtype="i1")
    land[0, :2] = 0
    ds = xr.Dataset(
        {
            "tas": (dims, y, {"units": "K", "long_name": "air temperature"}),
            "land": (("latitude", "longitude"), land),
            "tas_sd": (("latitude", "longitude"), np.full((5, 4), 0.05)),
            "ens": (ens_dims, ens, {"units": "K"}),
        },
        coords={**coords, "member": ["m0", "m1", "m2"]},
    )
    ds["latitude"].attrs["units"] = "degrees_north"
    ds.to_netcdf(root / "data.nc")
    return root


@pytest.fixture(scope="module")
def fitted(files):
    """``xkron fit`` once through the CliRunner; returns (fit path, CliRunner result)."""
    out = files / "fit.nc"
    result = CliRunner().invoke(
        main, ["fit", str(files / "data.nc"), "--var", "tas", *KERNEL_ARGS, *FAST, "--out", str(out)]
    )
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return out, result


def _load(path, var):
    with xr.open_dataset(path) as ds:
        return ds[var].load()


def _predict(args):
    result = CliRunner().invoke(main, ["predict", *args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def _open(path):
    with xr.open_dataset(path) as ds:
        return ds.load()


# ------------------------------------------------------------------------------- fit


def test_fit_writes_fit_equal_to_direct_fit(files, fitted):
    out, result = fitted
    fit = xkron.open_fit(out)
    direct = xkron.fit(_load(files / "data.nc", "tas"), KERNELS, **FAST_KWARGS)
    assert fit.method == "map" and fit.data.sizes == {"time": 6, "latitude": 5, "longitude": 4}
    xr.testing.assert_allclose(fit.params, direct.params, rtol=1e-10)
    for expected in ("<xkron.KronFit (map; gaussian, marginal)>", "ls_time", "days", "optimizer: converged", str(out)):
        assert expected in result.output, expected


def test_fit_mask_noise_sd_and_chunks(files, tmp_path):
    out = tmp_path / "masked.nc"
    args = ["fit", str(files / "data.nc"), "--var", "tas", *KERNEL_ARGS, *FAST, "--solver", "dense"]
    args += ["--mask-var", "land", "--noise-sd-var", "tas_sd", "--chunks", "time=2", "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    data = _load(files / "data.nc", "tas")
    mask, sd = _load(files / "data.nc", "land") != 0, _load(files / "data.nc", "tas_sd")
    direct = xkron.fit(data, KERNELS, mask=mask, noise_sd=sd, solver="dense", **FAST_KWARGS)
    fit = xkron.open_fit(out)
    xr.testing.assert_allclose(fit.params, direct.params, rtol=1e-10)
    assert fit.mask is not None and int((~fit.mask).sum()) == 2 * 6

    # --mask puts the fit's mask back on the training grid: NaN where land == 0.
    pred_path = tmp_path / "masked_pred.nc"
    _predict([str(out), "--mask", "--out", str(pred_path)])
    pred = _open(pred_path)
    assert bool(pred["mean"].isel(latitude=0, longitude=slice(0, 2)).isnull().all())
    assert int(pred["mean"].isnull().sum()) == 2 * 6


# ---------------------------------------------------------------------------- predict


def test_predict_training_grid_equals_direct(fitted, tmp_path):
    fit_path, _ = fitted
    out = tmp_path / "pred.nc"
    result = _predict([str(fit_path), "--out", str(out)])
    assert str(out) in result.output
    written = _open(out)
    direct = xkron.open_fit(fit_path).predict()
    xr.testing.assert_allclose(written[["mean", "sd"]], direct, rtol=1e-12)
    assert written["mean"].attrs["units"] == "K"
    assert written.attrs["Conventions"].startswith("CF-")
    assert "xkron predict" in written.attrs["history"] and f"--out {out.name}" in written.attrs["history"]
    assert str(out.parent) not in written.attrs["history"]  # no local folders in the file
    assert "xkron" in written.attrs["source"] and "Matern32(time)" in written.attrs["source"]
    assert "_FillValue" not in written["latitude"].encoding


def test_predict_grid_quantiles_noise(fitted, tmp_path):
    fit_path, _ = fitted
    out = tmp_path / "grid.nc"
    args = [str(fit_path), "--grid", "time=2000-01-01:2000-06-01T12:00:7", "--grid", "latitude=10:30:9"]
    _predict([*args, "--quantiles", "0.05,0.95", "--noise", "--out", str(out)])
    written = _open(out)
    assert dict(written.sizes) == {"time": 7, "latitude": 9, "longitude": 4, "quantile": 2}
    assert written["time"].values[0] == np.datetime64("2000-01-01")
    assert written["time"].values[-1] == np.datetime64("2000-06-01T12:00")
    np.testing.assert_allclose(written["latitude"].values, np.linspace(10, 30, 9))
    fit = xkron.open_fit(fit_path)
    direct = fit.predict(
        time=written["time"].values, latitude=written["latitude"].values, noise=True, quantiles=[0.05, 0.95]
    )
    xr.testing.assert_allclose(written[["mean", "sd", "quantiles"]], direct, rtol=1e-10)
    assert written.attrs["includes_noise"] == 1


def test_predict_coords_from(fitted, tmp_path):
    fit_path, _ = fitted
    stations = xr.Dataset(
        coords={"latitude": ("station", [12.0, 25.5]), "longitude": ("station", [3.0, 28.0]), "station": [1, 2]}
    )
    stations.to_netcdf(tmp_path / "stations.nc")
    out = tmp_path / "stations_pred.nc"
    _predict([str(fit_path), "--coords-from", str(tmp_path / "stations.nc"), "--out", str(out)])
    written = _open(out)
    assert written["mean"].dims == ("time", "station")
    direct = xkron.open_fit(fit_path).predict(stations)
    np.testing.assert_allclose(written["mean"].values, direct["mean"].values, rtol=1e-12)


def test_predict_chunks_is_lazy_and_writes_same_numbers(fitted, tmp_path):
    fit_path, _ = fitted
    plain, chunked = tmp_path / "plain.nc", tmp_path / "chunked.nc"
    _predict([str(fit_path), "--grid", "latitude=10:30:9", "--out", str(plain)])
    _predict(
        [
            str(fit_path),
            "--grid",
            "latitude=10:30:9",
            "--chunks",
            "latitude=4",
            "--chunks",
            "time=4",
            "--out",
            str(chunked),
        ]
    )
    xr.testing.assert_allclose(_open(plain), _open(chunked), rtol=1e-12)

    lazy = run_predict(fit_path, tmp_path / "lazy.nc", chunks={"time": 4})
    assert lazy.prediction["mean"].chunks == ((4, 2), (5,), (4,))
    xr.testing.assert_allclose(_open(tmp_path / "lazy.nc"), xkron.open_fit(fit_path).predict(), rtol=1e-12)


def test_zarr_input_and_output(files, fitted, tmp_path):
    pytest.importorskip("zarr")
    fit_path, _ = fitted
    store = tmp_path / "data.zarr"
    with xr.open_dataset(files / "data.nc") as ds:
        ds[["tas"]].load().to_zarr(store)
    refit = tmp_path / "refit.nc"
    result = CliRunner().invoke(
        main, ["fit", str(store), "--var", "tas", *KERNEL_ARGS, *FAST, "--chunks", "time=3", "--out", str(refit)]
    )
    assert result.exit_code == 0, result.output
    xr.testing.assert_allclose(xkron.open_fit(refit).params, xkron.open_fit(fit_path).params, rtol=1e-10)

    out = tmp_path / "pred.zarr"
    _predict([str(fit_path), "--chunks", "time=3", "--out", str(out)])
    with xr.open_zarr(out) as ds:
        written = ds.load()
    xr.testing.assert_allclose(written[["mean", "sd"]], xkron.open_fit(fit_path).predict(), rtol=1e-12)
    assert "xkron predict" in written.attrs["history"]


def test_predict_on_local_cluster(fitted, tmp_path):
    """``--workers 1``: a LocalCluster runs the lazy prediction (slow to start: the only one)."""
    pytest.importorskip("distributed")
    fit_path, _ = fitted
    out = tmp_path / "cluster.nc"
    _predict([str(fit_path), "--chunks", "time=3", "--workers", "1", "--out", str(out)])
    xr.testing.assert_allclose(_open(out)[["mean", "sd"]], xkron.open_fit(fit_path).predict(), rtol=1e-12)


# ------------------------------------------------------------------------------ batch


@pytest.mark.skipif(
    not hasattr(xkron, "BatchFit"), reason="xkron.inference.batch (fit(batch_dims=...)) is not available"
)
def test_batch_equals_direct_batch_fit(files, tmp_path):
    out = tmp_path / "batch.nc"
    args = ["batch", str(files / "data.nc"), "--var", "ens", "--batch-dim", "member", *KERNEL_ARGS, *FAST]
    result = CliRunner().invoke(main, [*args, "--errors", "record", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 slices (member: 3), one fit each" in result.output and "failed:     1" in result.output
    assert "member=m2: ValueError: every one of the 120 cells is NaN" in result.output
    direct = xkron.fit(_load(files / "data.nc", "ens"), KERNELS, batch_dims=["member"], errors="record", **FAST_KWARGS)
    reopened = xkron.open_fit(out)
    xr.testing.assert_allclose(reopened.params, direct.params, rtol=1e-10)
    assert reopened.params.sizes["member"] == 3 and bool(reopened.params["amplitude"].isel(member=2).isnull())

    # predict on a batch fit predicts every slice
    pred_path = tmp_path / "batch_pred.nc"
    _predict([str(out), "--grid", "latitude=10:30:3", "--out", str(pred_path)])
    assert dict(_open(pred_path)["mean"].sizes) == {"member": 3, "time": 6, "latitude": 3, "longitude": 4}

    # --errors raise (the default) stops with the failed slice's error
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "raised.nc")])
    assert result.exit_code == 1 and "1 of 3 slices failed" in result.output
    assert not (tmp_path / "raised.nc").exists()


# ------------------------------------------------------------------------ bad inputs


def _fit_args(files, tmp_path, *extra, var="tas", kernels=KERNEL_ARGS):
    return ["fit", str(files / "data.nc"), "--var", var, *kernels, *extra, "--out", str(tmp_path / "f.nc")]


@pytest.mark.parametrize(
    ("kernels", "extra", "message"),
    [
        (["--kernel", "time:Matern32"], [], "is not DIMS=KERNEL"),
        (["--kernel", "time=Matern33", *KERNEL_ARGS[2:]], [], "unknown kernel 'Matern33'"),
        (["--kernel", "time=ExpQuad(lengthscale=2)", *KERNEL_ARGS[2:]], [], "no hyperparameter 'lengthscale'"),
        (["--kernel", "time=ExpQuad(ls=x)", *KERNEL_ARGS[2:]], [], "is not a literal value"),
        (["--kernel", "tim=Matern32", *KERNEL_ARGS[2:]], [], "'tim' (in 'tim=Matern32') is not a dim of 'tas'"),
        (["--kernel", "time=Matern32"], [], "dims ['latitude', 'longitude'] of 'tas' have no kernel"),
        ([*KERNEL_ARGS, "--kernel", "latitude=Matern52"], [], "dim 'latitude' has two kernels"),
        (KERNEL_ARGS, ["--chunks", "depth=2"], "cannot chunk ['depth']"),
        (KERNEL_ARGS, ["--chunks", "time=0"], "is not dim=n with a positive integer n"),
        (KERNEL_ARGS, ["--mask-var", "nope"], "no variable 'nope'"),
        (KERNEL_ARGS, ["--workers", "1", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
    ],
)
def test_fit_rejects_bad_input(files, tmp_path, kernels, extra, message):
    result = CliRunner().invoke(main, _fit_args(files, tmp_path, *extra, kernels=kernels))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "f.nc").exists()


@pytest.fixture(scope="module")
def counts_file(tmp_path_factory):
    """``counts.nc``: event counts with a per-cell exposure and per-cell trials."""
    rng = np.random.default_rng(1)
    times = pd.date_range("2000-01-01", periods=6, freq="30D")
    _, dims, coords = _field(rng, times)
    shape = (6, 5, 4)
    days = rng.integers(20, 31, size=shape).astype(float)
    trials = rng.integers(5, 12, size=shape)
    ds = xr.Dataset(
        {
            "events": (dims, rng.poisson(0.2 * days).astype(float)),
            "days": (dims, days, {"units": "days"}),
            "hits": (dims, rng.binomial(trials, 0.3).astype(float)),
            "tries": (dims, trials),
        },
        coords=coords,
    )
    path = tmp_path_factory.mktemp("cli_counts") / "counts.nc"
    ds.to_netcdf(path)
    return path


@pytest.mark.parametrize(
    ("args", "field", "expected"),
    [
        (["--var", "events", "--likelihood", "poisson", "--exposure-var", "days"], "exposure", "days"),
        (["--var", "hits", "--likelihood", "binomial", "--trials", "12"], "trials", 12),
        (["--var", "hits", "--likelihood", "binomial", "--trials", "tries"], "trials", "tries"),
    ],
)
def test_exposure_and_trials_reach_the_likelihood(counts_file, tmp_path, monkeypatch, args, field, expected):
    seen = {}

    def capture(da, kernels, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("captured")

    monkeypatch.setattr(xkron, "fit", capture)
    out = str(tmp_path / "f.nc")
    result = CliRunner().invoke(main, ["fit", str(counts_file), *args, *KERNEL_ARGS, "--out", out])
    assert "captured" in result.output
    value = getattr(seen["likelihood"], field)
    assert seen["likelihood"].name == args[3]
    if isinstance(expected, str):
        xr.testing.assert_identical(value, _load(counts_file, expected))
    else:
        assert value == expected


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--var", "events", "--exposure-var", "days"], "--exposure-var applies to the poisson and negative_binomial"),
        (["--var", "events", "--likelihood", "bernoulli", "--trials", "3"], "--trials applies to the binomial"),
        (["--var", "hits", "--likelihood", "binomial"], "the binomial likelihood needs --trials"),
        (["--var", "hits", "--likelihood", "binomial", "--trials", "2.5"], "'2.5' is not a whole number of trials"),
        (["--var", "hits", "--likelihood", "binomial", "--trials", "nope"], "no variable 'nope'"),
        (["--var", "events", "--likelihood", "poisson", "--exposure-var", "nope"], "no variable 'nope'"),
    ],
)
def test_bad_exposure_or_trials_is_rejected_before_fitting(counts_file, tmp_path, monkeypatch, args, message):
    monkeypatch.setattr(xkron, "fit", None)  # must not be reached
    result = CliRunner().invoke(main, ["fit", str(counts_file), *args, *KERNEL_ARGS, "--out", str(tmp_path / "f.nc")])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output


def test_fit_rejects_unknown_var(files, tmp_path):
    result = CliRunner().invoke(main, _fit_args(files, tmp_path, var="pr"))
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "Invalid value for '--var'" in text and "no variable 'pr'" in text and "ens, land, tas, tas_sd" in text


def test_batch_rejects_bad_batch_dim(files, tmp_path):
    args = ["batch", str(files / "data.nc"), "--var", "ens", "--batch-dim", "members", *KERNEL_ARGS]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "b.nc")])
    assert result.exit_code == 2
    assert "'members' is not a dim of 'ens'" in " ".join(result.output.split())
    args[5] = "member"
    result = CliRunner().invoke(main, [*args, "--shared", "--errors", "record", "--out", str(tmp_path / "b.nc")])
    assert result.exit_code == 2
    assert "--shared makes one fit" in result.output


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grid", "latitude=10:30"], "is not dim=start:stop:num"),
        (["--grid", "depth=0:1:3"], "'depth' is not a dim of the fit"),
        (["--grid", "time=2000-13-01:2001-01-01:3"], "is not a date"),
        (["--grid", "latitude=north:south:3"], "is not dim=start:stop:num"),
        (["--quantiles", "0.05,1.5"], "probabilities in (0, 1)"),
        (["--mask", "nope.nc:land"], "no file or zarr store nope.nc"),
        (["--grid", "time=10950:11315:12"], "'10950' is not a date; on a time dim give a year (1990: four digits)"),
        (["--chunks", "depth=2"], "cannot chunk ['depth']"),
    ],
)
def test_predict_rejects_bad_input(fitted, tmp_path, extra, message):
    fit_path, _ = fitted
    result = CliRunner().invoke(main, ["predict", str(fit_path), *extra, "--out", str(tmp_path / "p.nc")])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "p.nc").exists()


# ------------------------------------------------------------------ parsing and help


def test_parse_kernel_and_grid():
    spec = parse_kernel(" latitude , longitude = Periodic(ls=[2, 3], period=12.5)")
    assert spec.key == ("latitude", "longitude")
    assert spec.kernel == xkron.Periodic(ls=[2, 3], period=12.5)
    assert parse_kernel("x=matern52").kernel == xkron.Matern52()
    with pytest.raises(JobInputError, match="give Matern52's hyperparameters by name"):
        parse_kernel("x=Matern52(2)")
    assert parse_grid("time=2000-01-01T06:00:2000-01-02T06:00:5") == GridSpec(
        "time", "2000-01-01T06:00", "2000-01-02T06:00", 5
    )
    assert parse_grid("x=-1.5:2e3:4") == GridSpec("x", "-1.5", "2e3", 4)


def test_grid_values_cftime_and_days():
    enc = CoordEncoding("cftime", "days since 1970-01-01", "360_day")
    values = grid_values(enc, GridSpec("time", "2000-01-01", "2000-02-01", 2))
    assert [(v.year, v.month, v.day, v.calendar) for v in values] == [(2000, 1, 1, "360_day"), (2000, 2, 1, "360_day")]
    dt = CoordEncoding("datetime", "days since 1970-01-01", "proleptic_gregorian")
    cf = GridSpec("time", "0 days since 1970-01-01", "1.5 days since 1970-01-01", 2)
    assert grid_values(dt, cf)[-1] == np.datetime64("1970-01-02T12:00")
    with pytest.raises(JobInputError, match="a bare number is refused"):
        grid_values(dt, GridSpec("time", "0", "1.5", 2))


@pytest.mark.parametrize("name", ["fit", "predict", "batch"])
def test_help_lists_every_option(name):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ")
    command = main.commands[name]
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in (*param.opts, *param.secondary_opts):
                assert opt in result.output, f"{opt} missing from {name} --help"
            assert param.help, f"{name} {param.name} has no help text"
        else:
            assert param.human_readable_name in result.output
    assert f"xkron {name} " in result.output  # an example command line
    assert name in main.commands and name in CliRunner().invoke(main, ["--help"]).output


def test_fit_on_scheduler_address(files, fitted, tmp_path):
    """``--scheduler ADDRESS`` connects to a running scheduler (here an in-process one)."""
    distributed = pytest.importorskip("distributed")
    fit_path, _ = fitted
    out = tmp_path / "sched.nc"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        args = ["fit", str(files / "data.nc"), "--var", "tas", *KERNEL_ARGS, *FAST, "--chunks", "time=2"]
        result = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address, "--out", str(out)])
        assert result.exit_code == 0, result.output
    xr.testing.assert_allclose(xkron.open_fit(out).params, xkron.open_fit(fit_path).params, rtol=1e-10)
