"""Task 7 of ``bench_latent.py`` (issue 14): yes/no events on a real 10⁵-cell grid, Laplace and INLA.

    .venv/bin/python tests/benchmarks/bench_latent.py --tasks 7 [--real-methods laplace,inla]

Data: the A1B annual air temperature bundled with xkron (``xkron.datasets.load_air_temperature``,
240 years × 19 × 25 = 114,000 cells). A year is an *event* in a cell when it is warmer than the
cell's 1860–1899 90th percentile (as in ``tutorials/06_warm_events_laplace_inla.py``). A random
fifth of the cells is held out (``numpy.random.default_rng(6)``, as the tutorial). Each method runs
in its own child process (see ``bench_core.py``):

- ``fit(likelihood="bernoulli", method=..., subsample={"year": 2, "latitude": 2, "longitude": 2})``:
  the hyperparameters on the 31,200-cell thinned grid (every year: thinning years biased the
  year lengthscale, which is about one year, and saved little), the Laplace posterior of the field on all
  114,000 (:meth:`xkron.KronFit.condition`), INLA's at each of its design points;
- ``predict(scale="response")``: the event probability's mean and sd on every cell.

Scores: the held-out log loss against two climatologies of the training cells (one rate per year,
one per cell). NUTS over a 114,000-value field is out of reach here; the tutorial compares Laplace
and INLA with NUTS on a window.
"""

from __future__ import annotations

import os

import bench_core as core

SUBSAMPLE = {"latitude": 2, "longitude": 2}


def events_and_mask():
    """``(events, train)``: the event grid and the training mask (module docstring)."""
    import numpy as np
    import xarray as xr

    from xkron.datasets import load_air_temperature

    air = load_air_temperature()
    annual = air.assign_coords(year=("time", air["time"].dt.year.values)).swap_dims(time="year").drop_vars("time")
    threshold = annual.sel(year=slice(1860, 1899)).quantile(0.9, dim="year").drop_vars("quantile")
    events = (annual > threshold).astype(float).rename("warm_year")
    rng = np.random.default_rng(6)
    train = xr.DataArray(rng.random(events.shape) >= 0.2, coords=events.coords, dims=events.dims)
    return events, train


def job_real(method) -> dict:
    import numpy as np

    import xkron

    events, train = events_and_mask()
    kernels = {d: xkron.Matern52() for d in events.dims}
    with core._Timer() as fit_t:
        fit = events.kron.fit(kernels, likelihood="bernoulli", method=method, mask=train, subsample=SUBSAMPLE,
                              progressbar=False)  # fmt: skip
    with core._Timer() as pred_t:
        prob = fit.predict(scale="response")
        mean, sd = prob["mean"].values, prob["sd"].values
    held = ~train
    seen = events.where(train)
    y = events.values[held.values]

    def log_loss(p):
        p = np.clip(np.asarray(p)[held.values], 1e-12, 1 - 1e-12)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))

    per_year = seen.mean(("latitude", "longitude")).broadcast_like(events).values
    per_cell = seen.mean("year").broadcast_like(events).values
    weights = fit.draw_weights
    return {
        "fit_wall": fit_t.wall, "predict_wall": pred_t.wall, "cells": int(events.size),
        "log_loss": log_loss(mean), "per_year": log_loss(per_year), "per_cell": log_loss(per_cell),
        "sd_median": float(np.median(sd)), "design_points": 1 if weights is None else len(weights),
        "params": {k: float(v.mean()) for k, v in fit.params.items()},
    }  # fmt: skip


def task7(report, args, tmp):
    methods = [m.strip() for m in args.real_methods.split(",") if m.strip()]
    report.note(f"\n== Task 7: real A1B events on 114,000 cells, subsample={SUBSAMPLE}; load {core._load()}")
    for method in methods:
        r = core.run_child(job_real, compiledir=os.path.join(tmp, f"t7-{method}"), method=method)
        core._fail_note(report, f"task 7 {method}", r)
        report.raw[f"task7-{method}"] = r
        if not r.get("ok"):
            continue
        report.row(
            f"7 {method} real events {r['cells']:,} cells",
            "n/a",
            f"fit {core._fmt_s(r['fit_wall'])} + predict {core._fmt_s(r['predict_wall'])}",
            "n/a",
            "n/a",
            core._fmt_mb(r["peak_mb"]),
            f"mem<4GB: {'yes' if r['peak_mb'] < 4096 else 'NO'}",
            f"held-out log loss {r['log_loss']:.4f} (rate per year {r['per_year']:.4f}, per cell {r['per_cell']:.4f}); "
            f"{r['design_points']} design point(s)",
        )
        report.note(f"  {method}: params {r['params']}, median sd of P(event) {r['sd_median']:.3f}")
