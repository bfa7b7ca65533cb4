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
from xkron.coords import TIME_UNITS

DATA = Path(__file__).parent / "data"
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
