"""Write ``legacy_fit_reanalysis.nc`` (run once, with xkron at commit 7a4b3db).

A fit of data whose time axis uses the reanalysis encoding ``hours since 1-1-1 00:00:0.0``
(gregorian calendar), as ``xkron fit`` wrote it: that version wrote such files but could not
read them back (``unable to decode time units 'hours since 0001-01-01'``).

    python tests/data/make_legacy_reanalysis_fit.py tests/data
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import xarray as xr

import xkron


def main(folder: Path) -> None:
    time = np.array(["1979-01-01T00", "1979-01-01T06", "1979-01-01T12", "1979-01-02T00"], dtype="datetime64[ns]")
    ds = xr.Dataset(
        {"t2m": (("time", "x"), np.random.default_rng(4).normal(size=(4, 3)), {"units": "K"})},
        coords={"time": time, "x": [0.0, 1.0, 2.0]},
    )
    ds["time"].encoding = {"units": "hours since 1-1-1 00:00:0.0", "calendar": "gregorian", "dtype": "int64"}
    with tempfile.TemporaryDirectory() as tmp:
        ds.to_netcdf(Path(tmp) / "input.nc")
        with xr.open_dataset(Path(tmp) / "input.nc") as opened:
            da = opened["t2m"].load()
    kernels = {"time": xkron.Matern32(ls=0.5), "x": xkron.ExpQuad(ls=1.0)}
    fit = xkron.fit(da, kernels, amplitude=1.1, noise=0.2, mean=0.0, progressbar=False)
    fit.to_netcdf(folder / "legacy_fit_reanalysis.nc")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
