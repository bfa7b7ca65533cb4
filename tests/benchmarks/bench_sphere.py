"""Benchmark: separate latitude and longitude factors (degrees as flat) against a chordal-distance kernel on the sphere.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_sphere.py [--years 20]           # regional (the default)
    .venv/bin/python tests/benchmarks/bench_sphere.py --field global [--step 3] [--seed 0]

``--field regional``. Data: the A1B annual air temperature of iris-sample-data
(``A1B_north_america.nc``, 37 × 49 at 1.25° × 1.875°, 15°N-60°N, 225°E-315°E), the last
``--years`` years, each cell's mean removed. At 60°N a degree of longitude is half as long as at
15°N, which separate factors in degrees cannot know. Training grid: every other latitude and
longitude (19 × 25); the held-out points are the others (off the training grid in latitude,
longitude or both), scored by latitude band (15-30°N, 30-45°N, 45-60°N): RMSE and the coverage
of the 90% predictive intervals (with the noise). Each model is fitted by MAP on the same
training grid (complete: exact Kronecker algebra):

- ``separate``: ``Matern32`` in time, ``Matern52`` in latitude and in longitude (degrees);
- ``joint, degrees``: ``Matern52`` over ``(latitude, longitude)`` with one lengthscale per dim (degrees);
- ``Spherical``: ``Spherical(Matern52)`` over ``(latitude, longitude)``, chordal distance, ``ls`` in km.

Prints one row per model: fit time, tracemalloc peak, the fitted spatial lengthscales, and the
scores by band, with the ratio of each model's RMSE to the separate factors'.

``--field global``. Data: the warming pattern of iris-sample-data's HadCM3 runs, the annual mean
1.5 m air temperature of ``A1B.2098.pp`` (Dec 2098-Nov 2099) minus ``pre-industrial.pp`` (Dec
1859-Nov 1860), read without iris (``pp_fields.py``), every ``--step``-th latitude and longitude
(3: 49 × 64 cells, 3.75° × 5.625°), longitude as -180° to 180°, so that the grid's seam in
degrees is the date line. One 2-D field (no time dim). Held out: (a) ``poles``, the cells
poleward of ±70° on a checkerboard; (b) ``date line``, every other column from 160°E to 160°W at
the other latitudes; (c) ``elsewhere``, a random tenth of the rest (``--seed``). The others are
the training data, a grid with NaN at the held-out cells, fitted by MAP (``xkron.fit``; with up
to 3,000 observed cells ``solver="auto"`` takes the exact dense solver for separate factors; a
``Spherical`` factor spans both dims, so it holds only the observed cells, a complete grid of it,
and the exact Kronecker solver runs; printed). Models:

- ``separate``: ``Matern52`` in latitude and in longitude (degrees, no wrap);
- ``separate, Circular lon``: ``Matern52`` in latitude, ``Circular(Matern52, period=360)`` in longitude;
- ``Spherical``: ``Spherical(Matern52)`` over ``(latitude, longitude)``, chordal distance, ``ls`` in km;
- ``Spherical + polar part``: ``Spherical(Matern52) + Spherical(Matern52) * PolarWeight(2)``, a
  global part plus a part of its own lengthscale whose variance grows poleward as ``sin⁴ φ``
  (its weight fitted): the field's variance is 13 times larger at 60-80°N than in the tropics.

Prints the field's semivariance at 1,000 km north-south and east-west by latitude band (how far
from isotropic and stationary it is), then per model its solver, fit + predict time, tracemalloc
peak, log posterior at the MAP and parameters, and per held-out set (the polar caps also north
and south apart) the RMSE, its ratio to the separate factors' and the coverage of the 90%
predictive intervals (noise in).
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


def load_global(step: int) -> xr.DataArray:
    """The A1B 2098 minus pre-industrial annual 1.5 m temperature, every ``step``-th cell, longitude -180° to 180°."""
    warming = full_warming()
    warming = warming.isel(latitude=slice(0, None, step), longitude=slice(0, None, step))
    warming = warming.assign_coords(longitude=(warming["longitude"] + 180) % 360 - 180).sortby("longitude")
    warming["longitude"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    return warming.assign_attrs(units="K", long_name="A1B 2098 minus pre-industrial 1.5 m air temperature")


def full_warming() -> xr.DataArray:
    """The A1B 2098 minus pre-industrial annual 1.5 m temperature at full resolution (145 × 192)."""
    from pp_fields import read_pp, sample_path

    return read_pp(sample_path("A1B.2098.pp")) - read_pp(sample_path("pre-industrial.pp"))


def semivariances(da: xr.DataArray, km: float = 1000.0) -> dict[str, tuple[float, float]]:
    """Half the mean squared difference of cells ``km`` apart north-south and east-west, by latitude band (K²)."""
    radius, out = 6371.0, {}
    dlat = float(np.radians(np.diff(da["latitude"][:2]))[0]) * radius
    dlon = float(np.radians(np.diff(da["longitude"][:2]))[0]) * radius
    north = (da.shift(latitude=-round(km / dlat)) - da) ** 2 / 2
    for lo, hi in [(0, 30), (30, 60), (60, 80), (80, 90)]:
        rows = da.sel(latitude=slice(lo, min(hi, 89.9)))
        east = [np.mean((np.roll(r, -max(1, round(km / (dlon * np.cos(np.radians(la)))))) - r) ** 2) / 2
                for la, r in zip(rows["latitude"].values, rows.values, strict=True)]  # fmt: skip
        out[f"{lo}-{hi}N"] = (float(north.sel(latitude=slice(lo, hi)).mean()), float(np.mean(east)))
    return out


def held_out(da: xr.DataArray, seed: int) -> dict[str, xr.DataArray]:
    """Three disjoint held-out sets: polar caps (checkerboard), a date-line band (every other column), random."""
    lat, lon = np.meshgrid(da["latitude"], da["longitude"], indexing="ij")
    i, j = np.indices(lat.shape)
    cap = np.abs(lat) > 70
    poles = cap & ((i + j) % 2 == 1)
    band = (np.abs(lon) >= 160) & (j % 2 == 1) & ~cap
    rest = ~(cap | band)
    elsewhere = rest & (np.random.default_rng(seed).random(lat.shape) < 0.1)
    if not (band.any() and poles.any()):
        raise ValueError(f"--step leaves no held-out cells at the poles or the date line: {dict(da.sizes)}")
    sets = {"poles": poles, "date line": band, "elsewhere": elsewhere}
    return {k: xr.DataArray(v, coords=da.coords, dims=da.dims) for k, v in sets.items()}


def global_models():
    import xkron

    return {
        "separate": {"latitude": xkron.Matern52(), "longitude": xkron.Matern52()},
        "separate, Circular lon": {"latitude": xkron.Matern52(), "longitude": xkron.Circular(xkron.Matern52())},
        "Spherical": {("latitude", "longitude"): xkron.Spherical(xkron.Matern52())},
        "Spherical + polar part": {("latitude", "longitude"): polar_kernel()},
    }


def polar_kernel():
    """``Spherical(Matern52) + c * Spherical(Matern52) * PolarWeight(2)``: variance ``η² (1 + c sin⁴ φ)``."""
    import xkron

    return xkron.Spherical(xkron.Matern52()) + xkron.Spherical(xkron.Matern52()) * xkron.PolarWeight(2)


def run_global(step: int, seed: int) -> None:
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, "blas")
    da = load_global(step)
    sets = held_out(da, seed)
    hidden = sets["poles"] | sets["date line"] | sets["elsewhere"]
    train = da.where(~hidden)
    north = da["latitude"] > 0
    scored = {"poles": sets["poles"], "  north cap": sets["poles"] & north, "  south cap": sets["poles"] & ~north,
              "date line": sets["date line"], "elsewhere": sets["elsewhere"]}  # fmt: skip
    counts = {k: int(v.sum()) for k, v in sets.items()}
    print(f"global warming pattern (A1B 2098 - pre-industrial), one cell in {step} per dim: grid {dict(da.sizes)}, "
          f"{int(train.notnull().sum())} observed, held out {counts}")  # fmt: skip
    gamma = {k: f"{ns:.2f} / {ew:.2f}" for k, (ns, ew) in semivariances(full_warming()).items()}
    print(f"semivariance at 1,000 km north-south / east-west (full resolution, K^2): {gamma}")
    base = None
    for name, kernels in global_models().items():
        tracemalloc.start()
        t0 = time.perf_counter()
        fit = train.kron.fit(kernels, progressbar=False)
        pred = fit.predict(latitude=da["latitude"], longitude=da["longitude"], noise=True)
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
        err = pred["mean"] - da
        inside = abs(err) <= 1.645 * pred["sd"]
        rmse = {k: float(np.sqrt((err**2).where(m).mean())) for k, m in scored.items()}
        cover = {k: float(inside.where(m).mean()) for k, m in scored.items()}
        base = base or rmse
        params = {k: round(float(v), 3) for k, v in fit.params.items() if v.size == 1}
        print(f"\n{name}: solver {fit.spec.solver}, fit + predict {seconds:.1f} s, tracemalloc peak {peak:.0f} MB, "
              f"log posterior at the MAP {fit.optimizer['logp']:.1f}, {params}")  # fmt: skip
        for k in scored:
            print(f"  {k}: RMSE {rmse[k]:.3f} K (x{rmse[k] / base[k]:.3f} of separate), 90% coverage {cover[k]:.3f}")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--field", choices=("regional", "global"), default="regional")
    parser.add_argument("--years", type=int, default=20, help="regional: the last years fitted")
    parser.add_argument("--step", type=int, default=3, help="global: keep every step-th latitude and longitude")
    parser.add_argument("--seed", type=int, default=0, help="global: the random held-out cells")
    args = parser.parse_args()
    if args.field == "regional":
        run(args.years)
    else:
        run_global(args.step, args.seed)
