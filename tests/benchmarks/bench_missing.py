"""Benchmark: Gaussian fits with missing cells, iterative solver against the exact dense one.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_missing.py                 # both tasks
    .venv/bin/python tests/benchmarks/bench_missing.py --tasks moderate

Tasks (issue 4):

- ``moderate``: a 60 x 60 x 20 grid (ExpQuad factors, lengthscales 8, 8, 4 grid spacings,
  amplitude 1, noise 0.1), 30% of cells missing at random. Time per logp + gradient and for the
  whole MAP fit, iterative (``solver="iterative"``) against dense Cholesky on the observed cells
  (``solver="dense"``). The dense side is tried at full size under a 20 GB address-space limit
  and at 30 x 30 x 10, where both run.
- ``large``: a 100 x 100 x 100 grid, 30% missing at random plus a static mask of 20% of the
  (x, y) plane, the same at every t. MAP fit with the iterative solver [under 10 minutes on 2
  cores]; hyperparameters against the generating values [within 2%]. Two static masks:
  scattered cells (islands), and one round land mass (preconditioned by ``xkron.linalg.gaps``).

Data are drawn from the GP itself (a Kronecker prior draw by eigen roots), so the generating
hyperparameters are the reference. Each measurement runs in a fresh child process
(``bench_core.run_child``) and reports its peak RSS.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import bench_core as core  # noqa: E402

TRUTH = {"amplitude": 1.0, "noise": 0.1}


def _grid(shape, ls, seed, land_fraction=0.0, missing=0.3, land="blob"):
    """A GP draw on ``shape`` (ExpQuad factors, lengthscales ``ls`` in grid spacings) with holes."""
    import numpy as np
    import xarray as xr

    import xkron  # noqa: F401  (registers the .kron accessor)

    rng = np.random.default_rng(seed)
    coords = {f"d{i}": np.arange(n, dtype=float) for i, n in enumerate(shape)}
    z = rng.standard_normal(shape)
    for axis, (n, length) in enumerate(zip(shape, ls, strict=True)):
        x = np.arange(n, dtype=float)
        lam, Q = np.linalg.eigh(np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / length**2))
        root = Q * np.sqrt(np.clip(lam, 0, None))
        z = np.moveaxis(np.tensordot(root, z, axes=([1], [axis])), 0, axis)
    y = TRUTH["amplitude"] * z + TRUTH["noise"] * rng.standard_normal(shape)
    observed = rng.random(shape) >= missing
    if land_fraction and land == "blob":  # one round land mass, the same at every step of the last dim
        a, b = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
        radius = np.sqrt(land_fraction * shape[0] * shape[1] / np.pi)
        observed &= ~(((a - 0.35 * shape[0]) ** 2 + (b - 0.6 * shape[1]) ** 2 < radius**2)[:, :, None])
    elif land_fraction:  # scattered static cells (islands, lakes), the same at every step of the last dim
        observed &= ~(rng.random(shape[:2]) < land_fraction)[:, :, None]
    return xr.DataArray(np.where(observed, y, np.nan), coords=coords, dims=list(coords))


def _kernels(da):
    import xkron

    return {d: xkron.ExpQuad() for d in da.dims}


def job_logp_grad(shape, ls, seed, solver, repeat=3, land_fraction=0.0, land="blob") -> dict:
    """Time one log-likelihood + gradient at the generating values (what each MAP step costs).

    The array-level systems that the fit's PyTensor Op calls (:class:`xkron.linalg.dense.DenseSystem`,
    :class:`xkron.linalg.iterative.IterativeSystem`), on the data of the MAP task.
    """
    import numpy as np

    from xkron.linalg.dense import DenseSystem
    from xkron.linalg.iterative import IterativeSystem

    da = _grid(shape, ls, seed, land_fraction, land=land)
    y = da.values
    observed = np.isfinite(y)
    factors = [np.exp(-0.5 * np.subtract.outer(np.arange(n * 1.0), np.arange(n * 1.0)) ** 2 / length**2)
               for n, length in zip(shape, ls, strict=True)]  # fmt: skip
    eta2, noise = TRUTH["amplitude"] ** 2, TRUTH["noise"] ** 2
    times, iterations = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        system = (DenseSystem if solver == "dense" else IterativeSystem)(factors, eta2, noise, observed)
        result = system.loglik(np.where(observed, y, 0.0), gradient=True)
        times.append(time.perf_counter() - start)
        iterations = getattr(getattr(result, "cg", None), "iterations", None)
    return {"seconds": float(np.median(times)), "logp": float(result.logp), "cg_iterations": iterations,
            "n_observed": int(observed.sum())}  # fmt: skip


def job_map(shape, ls, seed, solver, land_fraction=0.0, land="blob") -> dict:
    """Whole MAP fit (one start), wall and CPU time, and the fitted hyperparameters."""
    import numpy as np

    da = _grid(shape, ls, seed, land_fraction, land=land)
    start, cpu = time.perf_counter(), time.process_time()
    fit = da.kron.fit(_kernels(da), solver=solver, mean="zero", restarts=0, progressbar=False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    params = {k: float(v) for k, v in fit.params.items()}
    truth = {**{f"ls_{d}": length for d, length in zip(da.dims, ls, strict=True)}, **TRUTH}
    errors = {k: params[k] / truth[k] - 1 for k in truth}
    return {
        "seconds": wall,
        "cpu_seconds": cpu,
        "params": params,
        "relative_errors": errors,
        "optimizer": {k: fit.optimizer.get(k) for k in ("success", "message", "nit")},
        "n_observed": int(da.notnull().sum()),
        "observed_fraction": float(da.notnull().mean()),
        "max_abs_error": float(np.max(np.abs(list(errors.values())))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="moderate,large", help="moderate, large, or logp (the timings only)")
    args = parser.parse_args(argv)
    tasks = args.tasks.split(",")
    os.environ.update(OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    print(f"load average at start: {os.getloadavg()}", flush=True)
    full, small, ls = (60, 60, 20), (30, 30, 10), (8.0, 8.0, 4.0)
    if "moderate" in tasks or "logp" in tasks:
        for shape in (small, full):
            for solver in ("iterative", "dense"):
                limit = 20 if solver == "dense" else None
                r = core.run_child(job_logp_grad, shape=shape, ls=ls, seed=1, solver=solver, mem_limit_gb=limit)
                core.show(f"logp+grad {shape} {solver}", r)
    if "moderate" in tasks:
        for shape in (small, full):
            for solver in ("iterative", "dense"):
                if solver == "dense" and shape == full:
                    continue  # needs 2 x 20 GB matrices: the logp+grad child above shows it cannot run
                r = core.run_child(job_map, shape=shape, ls=ls, seed=1, solver=solver, timeout=3600)
                core.show(f"MAP {shape} {solver}", r)
    if "large" in tasks:
        big = {"shape": (100, 100, 100), "ls": (10.0, 10.0, 5.0), "seed": 2, "solver": "iterative"}
        big["land_fraction"] = 0.2
        r = core.run_child(job_map, **big, land="scattered", timeout=3600)
        core.show("MAP (100, 100, 100), 30% random + 20% static scattered", r)
        r = core.run_child(job_map, **big, land="blob", timeout=3600)
        core.show("MAP (100, 100, 100), 30% random + 20% static land mass", r)
    print(f"load average at end: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
