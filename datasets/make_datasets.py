"""Build the small datasets bundled with xkron.

Run from the repository root (or anywhere) with::

    python datasets/make_datasets.py

The script reads ``A1B_north_america.nc`` from the installed
``iris-sample-data`` package and writes
``datasets/a1b_north_america_air_temperature.nc`` next to this script.
It is deterministic: the same input file always gives the same data,
coordinates and attributes.
"""

from __future__ import annotations

from pathlib import Path

import iris_sample_data
import numpy as np
import xarray as xr

SOURCE_FILE = "A1B_north_america.nc"
OUTPUT_FILE = "a1b_north_america_air_temperature.nc"
VARIABLE = "air_temperature"
STRIDE = 2  # keep every 2nd latitude and longitude, starting from the first

HERE = Path(__file__).resolve().parent


def source_path() -> Path:
    """Path of ``A1B_north_america.nc`` inside the installed iris-sample-data."""
    path = Path(iris_sample_data.path) / SOURCE_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; install iris-sample-data")
    return path


def build_air_temperature() -> xr.Dataset:
    """Return the subset of the A1B North America air temperature as a Dataset."""
    src = source_path()
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(src, decode_times=decode, engine="netcdf4") as ds:
        ds = ds.load()

    sub = ds[[VARIABLE, "time_bnds"]].isel(
        latitude=slice(None, None, STRIDE), longitude=slice(None, None, STRIDE)
    )
    # Drop the scalar / auxiliary coordinates that come along with the variable
    # (forecast_period, forecast_reference_time, height) and the grid-mapping
    # variable; keep only time, latitude and longitude (plus the time bounds).
    sub = sub.drop_vars(
        [c for c in sub.coords if c not in ("time", "latitude", "longitude")]
    )
    sub = xr.Dataset(
        {VARIABLE: sub[VARIABLE], "time_bnds": sub["time_bnds"]},
        coords={k: sub[k] for k in ("time", "latitude", "longitude")},
    )

    # --- attributes -------------------------------------------------------
    orig = ds[VARIABLE].attrs
    attrs = {
        "standard_name": orig["standard_name"],
        "long_name": orig.get("long_name", "Near-surface air temperature"),
        "units": orig["units"],
        "cell_methods": orig["cell_methods"],
        "source": orig["source"],
        "ukmo__um_stash_source": orig["ukmo__um_stash_source"],
        # renamed from "Model scenario" (CF names should not contain spaces)
        "model_scenario": orig["Model scenario"],
        "comment": (
            f"Original scalar coordinate height = {float(ds['height']):g} "
            f"{ds['height'].attrs['units']} (dropped in this subset)."
        ),
    }
    sub[VARIABLE].attrs = attrs
    sub[VARIABLE].encoding = {}
    for name in ("latitude", "longitude"):
        sub[name].attrs = {
            k: ds[name].attrs[k] for k in ("axis", "units", "standard_name")
        }
        sub[name].attrs["long_name"] = name
        sub[name].encoding = {}
    sub["time"].attrs = {
        "axis": "T",
        "bounds": "time_bnds",
        "standard_name": "time",
        "long_name": "time",
    }
    sub["time"].encoding = {}
    sub["time_bnds"].attrs = {}
    sub["time_bnds"].encoding = {}

    n_lat, n_lon = sub.sizes["latitude"], sub.sizes["longitude"]
    sub.attrs = {
        "title": "A1B scenario near-surface air temperature over North America "
        "(1860-2099, annual), subset",
        "source": (
            "iris-sample-data 2.5.2 (PyPI), file A1B_north_america.nc, variable "
            "air_temperature: Met Office Unified Model (UM 6.05) climate "
            "simulation under the SRES A1B scenario (the Iris gallery describes "
            "it as HadGEM2-AO)"
        ),
        "history": (
            f"Subset of iris-sample-data A1B_north_america.nc by "
            f"datasets/make_datasets.py (xkron): all {sub.sizes['time']} times, "
            f"every {STRIDE}nd latitude and longitude starting from the first "
            f"({ds.sizes['latitude']}x{ds.sizes['longitude']} -> {n_lat}x{n_lon}); "
            "kept air_temperature, time, time_bnds, latitude, longitude; dropped "
            "forecast_period, forecast_reference_time, height and the "
            "latitude_longitude grid mapping; added long_name attributes; "
            "renamed attribute 'Model scenario' to 'model_scenario'; stored as "
            "float32 with zlib compression."
        ),
        "references": "https://github.com/SciTools/iris-sample-data",
        "license": (
            "British Crown copyright, 2018. Open Government Licence "
            "(http://www.nationalarchives.gov.uk/doc/open-government-licence)"
        ),
        "Conventions": "CF-1.8",
    }
    return sub


def encoding_for(ds: xr.Dataset) -> dict[str, dict]:
    """NetCDF encodings: float32 + zlib data, no fill values on coordinates."""
    time_units = "hours since 1970-01-01 00:00:00"
    return {
        VARIABLE: {
            "dtype": "float32",
            "zlib": True,
            "complevel": 9,
            "shuffle": True,
            "chunksizes": tuple(ds[VARIABLE].shape),
            "_FillValue": None,
        },
        "time": {
            "dtype": "float64",
            "units": time_units,
            "calendar": "360_day",
            "_FillValue": None,
        },
        "time_bnds": {
            "dtype": "float64",
            "units": time_units,
            "calendar": "360_day",
            "_FillValue": None,
        },
        "latitude": {"dtype": "float32", "_FillValue": None},
        "longitude": {"dtype": "float32", "_FillValue": None},
    }


def main() -> None:
    """Write every bundled dataset next to this script."""
    ds = build_air_temperature()
    out = HERE / OUTPUT_FILE
    ds.to_netcdf(out, format="NETCDF4", engine="netcdf4", encoding=encoding_for(ds))

    # sanity check: round trip is exact
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(out, decode_times=decode) as check:
        np.testing.assert_array_equal(check[VARIABLE].values, ds[VARIABLE].values)
        assert (check["time"].values == ds["time"].values).all()
    print(f"wrote {out} ({out.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
