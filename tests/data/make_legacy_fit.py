"""Write ``legacy_fit_epoch1970.nc`` and ``legacy_pred_epoch1970.nc`` (run once, with xkron at commit 7a4b3db).

That version encoded time coordinates as days since 1970-01-01 (format ``xkron-fit-1`` without
per-variable time dtypes). ``tests/test_io_legacy.py`` checks that the current version opens the
file and predicts bit-identically to the predictions that version wrote.

    python tests/data/make_legacy_fit.py tests/data
"""

import sys
from pathlib import Path

import numpy as np
import xarray as xr

import xkron


def main(folder: Path) -> None:
    time = np.array(["2001-03-01T00", "2001-03-01T06", "2001-03-01T18", "2001-03-02T00"], dtype="datetime64[ns]")
    model_time = xr.date_range("1990-01-16", periods=3, freq="MS", calendar="360_day", use_cftime=True).values
    x = np.array([0.0, 1.0, 2.5])
    rng = np.random.default_rng(11)
    da = xr.DataArray(
        rng.normal(size=(4, 3, 3)),
        coords={"time": time, "model_time": model_time, "x": x},
        dims=("time", "model_time", "x"),
        name="v",
        attrs={"units": "K"},
    )
    kernels = {"time": xkron.Matern52(ls=0.7), "model_time": xkron.ExpQuad(ls=40.0), "x": xkron.Matern32(ls=1.5)}
    fit = xkron.fit(da, kernels, amplitude=1.2, noise=0.3, mean=0.1, progressbar=False)
    fit.to_netcdf(folder / "legacy_fit_epoch1970.nc")
    request = {
        "time": np.array(["2001-02-28T13:17:05.123456789", "2001-03-01T09:00", "2001-03-03"], dtype="datetime64[ns]"),
        "model_time": xr.date_range("1989-12-01", periods=4, freq="20D", calendar="360_day", use_cftime=True).values,
        "x": np.array([-0.5, 1.7]),
    }
    pred = fit.predict(request, noise=True)
    pred.to_netcdf(folder / "legacy_pred_epoch1970.nc")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
