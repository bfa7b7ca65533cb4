"""Benchmark: separate latitude and longitude factors (degrees as flat) against a chordal-distance kernel on the sphere.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_sphere.py [--years 20]

Data: the A1B annual air temperature of iris-sample-data (``A1B_north_america.nc``, 37 × 49 at
1.25° × 1.875°, 15°N-60°N, 225°E-315°E), the last ``--years`` years, each cell's mean removed.
At 60°N a degree of longitude is half as long as at 15°N, which separate factors in degrees
cannot know. Training grid: every other latitude and longitude (19 × 25); the held-out points
are the others (off the training grid in latitude, longitude or both), scored by latitude band
(15-30°N, 30-45°N, 45-60°N): RMSE and the coverage of the 90% predictive intervals (with the
noise). Each model is fitted by MAP on the same training grid (complete: exact Kronecker algebra):

- ``separate``: ``Matern32`` in time, ``Matern52`` in latitude and in longitude (degrees);
- ``joint, degrees``: ``Matern52`` over ``(latitude, longitude)`` with one lengthscale per dim (degrees);
- ``Spherical``: ``Spherical(Matern52)`` over ``(latitude, longitude)``, chordal distance, ``ls`` in km.

Prints one row per model: fit time, tracemalloc peak, the fitted spatial lengthscales, and the
scores by band, with the ratio of each model's RMSE to the separate factors'.
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
from pathlib import Path

import numpy as np
import xarray as xr


def load(years: int) -> xr.DataArray:
    import iris_sample_data

    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(Path(iris_sample_data.path) / "A1B_north_america.nc", decode_times=coder) as ds:
        da = ds["air_temperature"].isel(time=slice(-years, None)).load()
    return da - da.mean("time")


def models():
    import xkron

    return {
        "separate": {"latitude": xkron.Matern52(), "longitude": xkron.Matern52()},
        "joint, degrees": {("latitude", "longitude"): xkron.Matern52()},
        "Spherical": {("latitude", "longitude"): xkron.Spherical(xkron.Matern52())},
    }


def run(years: int) -> None:
    from threadpoolctl import threadpool_limits

    import xkron

    threadpool_limits(1, "blas")
    da = load(years)
    train = da.isel(latitude=slice(0, None, 2), longitude=slice(0, None, 2))
    held = np.ones((da.sizes["latitude"], da.sizes["longitude"]), bool)
    held[::2, ::2] = False
    bands = {"15-30N": (15, 30), "30-45N": (30, 45), "45-60N": (45, 60.1)}
    print(f"A1B anomalies, last {years} years: train {dict(train.sizes)}, held out {int(held.sum())} points per year")
    base = None
    for name, spatial in models().items():
        tracemalloc.start()
        t0 = time.perf_counter()
        fit = train.kron.fit({"time": xkron.Matern32(), **spatial}, progressbar=False)
        pred = fit.predict(latitude=da["latitude"], longitude=da["longitude"], noise=True)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        err = (pred["mean"] - da).where(xr.DataArray(held, dims=("latitude", "longitude")))
        inside = (abs(err) <= 1.645 * pred["sd"]).where(err.notnull())
        rmse = {b: float(np.sqrt((err.sel(latitude=slice(*r)) ** 2).mean())) for b, r in bands.items()}
        cover = {b: float(inside.sel(latitude=slice(*r)).mean()) for b, r in bands.items()}
        base = base or rmse
        ls = {k: round(float(v), 2) for k, v in fit.params.items() if k.startswith("ls_") and k != "ls_time"}
        print(f"\n{name}: fit + predict {seconds:.1f} s, tracemalloc peak {peak:.0f} MB, {ls}")
        for b in bands:
            print(f"  {b}: RMSE {rmse[b]:.3f} K (x{rmse[b] / base[b]:.3f} of separate), 90% coverage {cover[b]:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--years", type=int, default=20)
    run(parser.parse_args().years)
