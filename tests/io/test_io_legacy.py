"""Fits written before start-relative times (format xkron-fit-1, days since 1970-01-01) still open
and predict bit-identically to what the version that wrote them predicted.

``tests/data/legacy_fit_epoch1970.nc`` and the predictions ``legacy_pred_epoch1970.nc`` were
written by xkron at commit 7a4b3db (``tests/data/make_legacy_fit.py``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import xarray as xr

import xkron
from xkron.spec.coords import TIME_UNITS

DATA = Path(__file__).resolve().parents[1] / "data"
CFTIME = xr.coders.CFDatetimeCoder(use_cftime=True)


def _stored_prediction():
    with xr.open_dataset(DATA / "legacy_pred_epoch1970.nc", decode_times={"model_time": CFTIME}) as ds:
        return ds.load()


def test_legacy_file_is_format_1_with_the_1970_epoch():
    with xr.open_datatree(DATA / "legacy_fit_epoch1970.nc", decode_times=False) as tree:
        spec = json.loads(tree.attrs["xkron_spec"])
    assert spec["format"] == "xkron-fit-1" and "time_types" not in spec
    assert {d: e["units"] for d, e in spec["encodings"].items() if e["kind"] != "numeric"} == {
        "time": TIME_UNITS,
        "model_time": TIME_UNITS,
    }


def test_legacy_fit_predicts_as_the_version_that_wrote_it():
    fit = xkron.open_fit(DATA / "legacy_fit_epoch1970.nc")
    assert fit.encodings["time"].units == TIME_UNITS
    stored = _stored_prediction()
    request = {d: stored[d].values for d in ("time", "model_time", "x")}
    again = fit.predict(request, noise=True)
    for var in ("mean", "sd"):
        assert again[var].values.tobytes() == stored[var].values.tobytes(), var


def test_legacy_fit_keeps_its_1970_numbers_and_resaves_readably(tmp_path):
    fit = xkron.open_fit(DATA / "legacy_fit_epoch1970.nc")
    time = fit.data["time"].values
    days = (time - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "D")  # numpy's own arithmetic
    np.testing.assert_allclose(fit.spec.factors[0].coords[0], days, rtol=1e-15)
    fit.to_netcdf(tmp_path / "resaved.nc")
    again = xkron.open_fit(tmp_path / "resaved.nc")
    assert again.encodings == fit.encodings  # still counted from 1970: the same numbers
    stored = _stored_prediction()
    request = {d: stored[d].values for d in ("time", "model_time", "x")}
    assert again.predict(request, noise=True)["mean"].values.tobytes() == stored["mean"].values.tobytes()


def _dense_mean(train_x, train_t, y, test_x, test_t, amp, noise, ls_t, ls_x, mean):
    """Posterior mean of Matern32(time) x ExpQuad(x), written out with numpy (independent of xkron)."""

    def k(t1, x1, t2, x2):
        r = np.sqrt(3.0) * np.abs(t1[:, None] - t2[None, :]) / ls_t
        return amp**2 * (1 + r) * np.exp(-r) * np.exp(-0.5 * (x1[:, None] - x2[None, :]) ** 2 / ls_x**2)

    K = k(train_t, train_x, train_t, train_x) + noise**2 * np.eye(y.size)
    return mean + k(test_t, test_x, train_t, train_x) @ np.linalg.solve(K, y - mean)


def test_legacy_reanalysis_fit_that_could_not_be_read_now_opens_and_predicts():
    """Written by 7a4b3db from data with 'hours since 1-1-1' (gregorian), which that version could not reopen."""
    fit = xkron.open_fit(DATA / "legacy_fit_reanalysis.nc")
    times = np.array(["1979-01-01T00", "1979-01-01T06", "1979-01-01T12", "1979-01-02T00"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(fit.data["time"].values, times)
    assert fit.data["time"].encoding["units"] == "hours since 0001-01-01"
    assert fit.data["time"].encoding["calendar"] == "gregorian"
    days = (times - times[0]) / np.timedelta64(1, "D")
    tt, xx = (a.ravel() for a in np.meshgrid(days, fit.data["x"].values, indexing="ij"))
    new_t = np.array(["1978-12-31T18", "1979-01-01T09"], dtype="datetime64[ns]")
    new_x = np.array([0.5, 2.5])
    nt, nx = (a.ravel() for a in np.meshgrid((new_t - times[0]) / np.timedelta64(1, "D"), new_x, indexing="ij"))
    expected = _dense_mean(xx, tt, fit.data.values.ravel(), nx, nt, 1.1, 0.2, 0.5, 1.0, 0.0)
    got = fit.predict(time=new_t, x=new_x)["mean"].transpose("time", "x").values.ravel()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_cli_reads_the_legacy_reanalysis_fit(tmp_path):
    from click.testing import CliRunner

    from xkron.cli.app import main

    info = CliRunner().invoke(main, ["info", str(DATA / "legacy_fit_reanalysis.nc")])
    assert info.exit_code == 0 and "ls_time" in info.output, info.output
    out = tmp_path / "pred.nc"
    pred = CliRunner().invoke(main, ["predict", str(DATA / "legacy_fit_reanalysis.nc"), "--out", str(out)])
    assert pred.exit_code == 0, pred.output
    with xr.open_dataset(out) as ds:
        assert ds["time"].values[0] == np.datetime64("1979-01-01T00", "ns")
