"""Benchmark: sampling a joint (latitude, longitude) factor onto large new grids, union root against anchors.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_joint_sampling.py [--fields 50] [--sizes 1000,10000] [--skip-exact-above N]

The bundled A1B air temperature (the last 20 years, each cell's mean removed; 20 × 19 × 25) is
fitted by MAP with ``Matern32`` in time and a joint ``Matern52`` factor over (latitude,
longitude) of 475 inputs. ``sample(fields)`` then draws onto a new latitude-longitude grid of
about ``size`` points per factor (a 1:2 grid over the same region), twice in this process:

- ``union root`` (the method before anchors): the prior draw from the eigendecomposition of the
  union of the 475 training and the new inputs (``SAMPLE_EXACT_UNION`` raised above it);
- ``anchored`` (the default above ``SAMPLE_EXACT_UNION`` = 3,000): the training inputs and a spread of
  the new ones, 3,000 in all, drawn exactly, the other new inputs conditioned on them.

Each row: wall time of ``sample()``, tracemalloc peak, the largest residual share reported, and
the fields' sd against the exact ``predict()`` sd (median and 5-95% of the ratio over cells; the
Monte Carlo sd of a ratio from ``n`` fields is about ``1/√(2n)``).
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np


def run(fields: int, sizes: list[int], skip_exact_above: int) -> None:
    from threadpoolctl import threadpool_limits

    import xkron
    import xkron.posterior.fields as fields_module
    from xkron.datasets import load_air_temperature

    threadpool_limits(1, "blas")
    da = load_air_temperature().isel(time=slice(-20, None))
    da = da - da.mean("time")
    fit = da.kron.fit({"time": xkron.Matern32(), ("latitude", "longitude"): xkron.Matern52()}, progressbar=False)
    print(f"fit: {dict(fit.params.to_array().to_series().round(3))}")
    default = fields_module.SAMPLE_EXACT_UNION
    for size in sizes:
        n_lat = round(np.sqrt(size / 2))
        new = {"latitude": np.linspace(15, 60, n_lat), "longitude": np.linspace(225, 315, 2 * n_lat)}
        exact_sd = fit.predict(**new)["sd"]
        print(f"\n{n_lat} × {2 * n_lat} = {2 * n_lat * n_lat:,} new points per factor, {fields} fields")
        for name, limit in (("union root", 10**9), ("anchored", default)):
            if limit > default and 2 * n_lat * n_lat > skip_exact_above:
                print(f"  {name:10s}: skipped (--skip-exact-above {skip_exact_above})")
                continue
            fields_module.SAMPLE_EXACT_UNION = limit
            tracemalloc.start()
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the union root's cost warning
                out = fit.sample(fields, random_seed=0, progressbar=False, **new)
            seconds = time.perf_counter() - t0
            peak = tracemalloc.get_traced_memory()[1] / 1e9
            tracemalloc.stop()
            fields_module.SAMPLE_EXACT_UNION = default
            ratio = (out["f"].std("sample") / exact_sd).values.ravel()
            note = out.attrs.get("prior_draw", "exact union root")
            share = note.split("at most ")[1].split(" of")[0] if "at most" in note else "0 (exact)"
            q = np.quantile(ratio, [0.05, 0.5, 0.95])
            print(f"  {name:10s}: {seconds:7.1f} s, peak {peak:5.2f} GB, residual share {share}, "
                  f"sd / exact sd {q[1]:.3f} (5-95%: {q[0]:.3f}-{q[2]:.3f})")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fields", type=int, default=50)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--skip-exact-above", type=int, default=10**9)
    args = parser.parse_args()
    run(args.fields, [int(s) for s in args.sizes.split(",")], args.skip_exact_above)
