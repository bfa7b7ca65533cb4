"""Benchmark: out-of-core smoothing of a field larger than memory, and batch fits on a LocalCluster.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_scale.py                  # both tasks
    .venv/bin/python tests/benchmarks/bench_scale.py --tasks outofcore --cells 1e8
    .venv/bin/python tests/benchmarks/bench_scale.py --tasks batch

Tasks (issue 5):

- ``outofcore``: a float32 field of ``--cells`` cells (default 10⁸: 1000 time x 100 lat x 1000 lon)
  is written to NetCDF in chunks (never held in memory), opened with ``chunks=``, its
  hyperparameters fitted on a subsample (every 10th time step, every 4th lat/lon) and the
  posterior mean and sd at every cell written back to NetCDF through dask
  [peak RSS of the whole process < 1.5 GB]. The same smoothing of a 10⁷-cell field in memory
  (numpy) gives the reference throughput [out of core within 2x per cell].
- ``fit``: a MAP fit of a whole 10⁷-cell grid in memory (``--cells`` / 10), without subsampling.
- ``batch``: 16 independent MAP fits (16 members of a 40 x 12 x 16 field) on a LocalCluster with
  2 single-threaded workers against the same fits one after the other in this process
  [speed-up >= 1.7x]; the cluster is started before the clock starts.

Each task runs in a fresh child process (``bench_core.run_child``), which reports its peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import bench_core as core  # noqa: E402

KERNELS = {"time": "Matern32", "lat": "ExpQuad", "lon": "ExpQuad"}


def _shape(cells: float) -> tuple[int, int, int]:
    lon = round((cells / 100) ** 0.5)
    return (max(10, round(cells / (100 * lon))), 100, lon)


def _lazy_field(shape, chunks):
    """A smooth field plus noise, as a lazy float32 dask array (never materialised here)."""
    import dask.array as da
    import numpy as np
    import xarray as xr

    t, lat, lon = (np.linspace(0, 1, n) for n in shape)
    rng = da.random.default_rng(0)
    smooth = (
        da.from_array(np.sin(20 * t)[:, None, None], chunks=(chunks[0], 1, 1))
        * da.from_array(np.cos(6 * lat)[None, :, None], chunks=(1, chunks[1], 1))
        * da.from_array(np.sin(9 * lon)[None, None, :], chunks=(1, 1, chunks[2]))
    )
    values = (smooth + 0.2 * rng.standard_normal(shape, chunks=chunks)).astype("float32")
    coords = {"time": np.arange(shape[0], dtype=float), "lat": np.linspace(-40, 40, shape[1]),
              "lon": np.linspace(0, 360, shape[2], endpoint=False)}  # fmt: skip
    return xr.DataArray(values, coords=coords, dims=("time", "lat", "lon"), name="sst", attrs={"units": "K"})


def job_outofcore(cells: float, folder: str) -> dict:
    import dask
    import xarray as xr

    import xkron  # noqa: F401  (registers .kron)

    shape = _shape(cells)
    chunks = tuple(min(c, n) for c, n in zip((100, 50, 250), shape, strict=True))
    source, target = os.path.join(folder, "field.nc"), os.path.join(folder, "smooth.nc")
    field = _lazy_field(shape, chunks)
    encoding = {"sst": {"chunksizes": chunks}}
    start = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        field.to_dataset().to_netcdf(source, encoding=encoding)
    write_s = time.perf_counter() - start
    da = xr.open_dataset(source, chunks=dict(zip(field.dims, chunks, strict=True)))["sst"]
    start = time.perf_counter()
    fit = da.kron.fit(KERNELS, subsample={"time": 10, "lat": 4, "lon": 4}, restarts=0, progressbar=False)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    out = fit.predict()
    out_encoding = {v: {"chunksizes": chunks} for v in out.data_vars}
    with dask.config.set(scheduler="threads", num_workers=2):
        out.to_netcdf(target, encoding=out_encoding)
    smooth_s = time.perf_counter() - start
    return {"shape": shape, "cells": int(da.size), "write_input_s": write_s, "fit_subsample_s": fit_s,
            "smooth_and_write_s": smooth_s, "us_per_cell": 1e6 * smooth_s / da.size,
            "params": {k: float(v) for k, v in fit.params.items()}}  # fmt: skip


def job_inmemory(cells: float) -> dict:
    import numpy as np
    from threadpoolctl import threadpool_limits

    import xkron  # noqa: F401

    threadpool_limits(2)  # the same two cores the out-of-core run gets through dask's threads
    shape = _shape(cells)
    field = _lazy_field(shape, (shape[0], shape[1], shape[2])).compute().astype(float)
    fit = field.kron.fit(KERNELS, subsample={"time": 10, "lat": 4, "lon": 4}, restarts=0, progressbar=False)
    start = time.perf_counter()
    out = fit.predict()
    float(np.sum(out["sd"].values))
    smooth_s = time.perf_counter() - start
    return {"shape": shape, "cells": int(field.size), "smooth_s": smooth_s, "us_per_cell": 1e6 * smooth_s / field.size}


def job_fit_inmemory(cells: float) -> dict:
    """A MAP fit of a whole in-memory grid (no subsample), exact Kronecker path."""
    from threadpoolctl import threadpool_limits

    import xkron  # noqa: F401

    threadpool_limits(2)
    shape = _shape(cells)
    field = _lazy_field(shape, shape).compute().astype(float)
    start = time.perf_counter()
    fit = field.kron.fit(KERNELS, restarts=0, progressbar=False)
    return {"shape": shape, "cells": int(field.size), "fit_s": time.perf_counter() - start,
            "success": fit.optimizer["success"], "params": {k: float(v) for k, v in fit.params.items()}}  # fmt: skip


def _members(n: int):
    import numpy as np
    import xarray as xr

    rng = np.random.default_rng(5)
    t, x, y = np.linspace(0, 4, 40), np.linspace(0, 1, 12), np.linspace(0, 1, 16)
    truth = np.sin(2 * t)[:, None, None] * np.cos(3 * x)[None, :, None] * np.sin(4 * y)[None, None, :]
    values = truth[None] + 0.2 * rng.standard_normal((n, 40, 12, 16))
    coords = {"member": np.arange(n), "time": t, "lat": x, "lon": y}
    return xr.DataArray(values, coords=coords, dims=("member", "time", "lat", "lon"))


def job_batch(n: int) -> dict:
    import distributed

    import xkron  # noqa: F401

    da = _members(n)
    kwargs = {"batch_dims": "member", "restarts": 1, "random_seed": 0, "progressbar": False}
    start = time.perf_counter()
    sequential = da.kron.fit(KERNELS, **kwargs)
    sequential_s = time.perf_counter() - start
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster):
            da.isel(member=slice(0, 2)).kron.fit(KERNELS, **kwargs)  # warm the workers' imports
            start = time.perf_counter()
            parallel = da.kron.fit(KERNELS, **kwargs)
            parallel_s = time.perf_counter() - start
    same = bool((abs(parallel.params - sequential.params) <= 1e-10 * abs(sequential.params)).all().to_array().all())
    return {"fits": n, "sequential_s": sequential_s, "cluster_s": parallel_s,
            "speed_up": sequential_s / parallel_s, "same_params": same}  # fmt: skip


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="outofcore,batch")
    parser.add_argument("--cells", type=float, default=1e8)
    args = parser.parse_args(argv)
    os.environ.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    if "outofcore" in args.tasks:
        with tempfile.TemporaryDirectory() as folder:
            result = core.run_child(job_outofcore, cells=args.cells, folder=folder)
            core.show(f"out of core, {args.cells:.0e} cells", result)
        core.show(f"in memory, {args.cells / 10:.0e} cells", core.run_child(job_inmemory, cells=args.cells / 10))
    if "fit" in args.tasks.split(","):
        result = core.run_child(job_fit_inmemory, cells=args.cells / 10)
        core.show(f"MAP fit in memory, {args.cells / 10:.0e} cells", result)
    if "batch" in args.tasks:
        core.show("batch, 16 MAP fits", core.run_child(job_batch, n=16))
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
