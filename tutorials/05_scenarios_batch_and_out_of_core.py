# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Tutorial 5: many fits on a dask cluster, and fields larger than memory
#
# Climate archives hold many fields of one kind: ensemble members, scenarios, variables,
# regions. They also hold fields too big to load at once. This tutorial shows both sides of
# scaling xkron out with dask:
#
# 1. Stack the two emission scenarios bundled with iris-sample-data (A1B and E1: annual
#    near-surface air temperature over North America, 1860-2099) along a `scenario` dim.
# 2. Fit one model per scenario as a batch on a `distributed.LocalCluster`
#    (`fit(..., batch_dims="scenario")`), check that the cluster gives the same
#    hyperparameters as a run one after the other, and compare the scenarios' predictions.
# 3. Fit the two scenarios as replicates sharing their hyperparameters (`shared=True`).
# 4. Smooth a field stored on disk in chunks without loading it: fit the hyperparameters on a
#    subsample, condition on the whole field lazily, and stream the posterior mean and sd back
#    to disk. Check the result against the in-memory computation.
#
# Run it as a script (`python tutorials/05_scenarios_batch_and_out_of_core.py`) or open it as
# a notebook with jupytext. Figures and files go to `$XKRON_TUTORIAL_OUT` (a fresh temporary
# folder by default).

# %%
import os
import sys
import tempfile
import time
from pathlib import Path

import matplotlib

if "MPLBACKEND" not in os.environ and "ipykernel" not in sys.modules:
    matplotlib.use("Agg")

import dask
import distributed
import iris_sample_data
import matplotlib.pyplot as plt
import numpy as np
import xarray as xr

import xkron

T_START = time.perf_counter()
OUT = Path(os.environ.get("XKRON_TUTORIAL_OUT") or tempfile.mkdtemp(prefix="xkron-tutorial-"))
OUT.mkdir(parents=True, exist_ok=True)
print(f"figures and files go to {OUT}")


def save(fig, name):
    path = OUT / name
    fig.savefig(path, dpi=100, bbox_inches="tight")
    print(f"saved {path}")


# %% [markdown]
# ## Two scenarios on one grid
#
# Both files hold the same 240 years × 37 latitudes × 49 longitudes of Met Office Unified
# Model output, one under the SRES A1B emissions scenario and one under the E1 mitigation
# scenario (British Crown copyright, Open Government Licence). We keep the 21st century,
# every second latitude and longitude, and stack the two along a new `scenario` dim.

# %%
times = xr.coders.CFDatetimeCoder(use_cftime=True)
fields = {
    name: xr.open_dataset(Path(iris_sample_data.path) / f"{name}_north_america.nc", decode_times=times)[
        "air_temperature"
    ]
    for name in ("A1B", "E1")
}
both = xr.concat(list(fields.values()), dim="scenario").assign_coords(scenario=list(fields))
both = both.drop_vars([c for c in both.coords if c not in both.dims])
both = both.sel(time=both["time.year"] >= 2000).isel(latitude=slice(None, None, 2), longitude=slice(None, None, 2))
both = both.load()
print(both.sizes)

# %% [markdown]
# ## A batch of independent fits on a LocalCluster
#
# `batch_dims="scenario"` fits each scenario as its own model. When a `distributed.Client`
# is active the slices run as tasks on the cluster (xkron never starts one itself: here we
# do, for the length of a `with` block); without one they run here, one after the other.
# Each slice gets `random_seed + k`, so both ways give the same numbers. (In a notebook the
# workers can be spawned as usual; a script forks them, see below.)

# %%
KERNELS = {"time": xkron.Matern12(), ("latitude", "longitude"): xkron.Matern52()}
options = {"batch_dims": "scenario", "restarts": 1, "random_seed": 0, "progressbar": False}

start = time.perf_counter()
one_by_one = both.kron.fit(KERNELS, **options)
sequential_s = time.perf_counter() - start

# Worker processes are forked from this one: a script has no `if __name__ == "__main__"` guard,
# and the default (spawn) would re-run it in every worker.
with (
    dask.config.set({"distributed.worker.multiprocessing-method": "fork"}),
    distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster,
    distributed.Client(cluster),
):
    start = time.perf_counter()
    batch = both.kron.fit(KERNELS, **options)
    cluster_s = time.perf_counter() - start
print(batch)
print(f"one after the other: {sequential_s:.1f} s; on 2 workers: {cluster_s:.1f} s (including the workers' imports)")
print(batch.params.to_dataframe().T.round(3))
xr.testing.assert_allclose(batch.params, one_by_one.params, rtol=1e-10)

# %% [markdown]
# The two scenarios share the same physics, so their lengthscales are close; the E1 run
# warms less, which shows in the predicted mean of the last decade. Predictions of a batch
# carry the batch dim.

# %%
decade = batch.predict(time=both["time"].values[-10:])
difference = (decade["mean"].sel(scenario="A1B") - decade["mean"].sel(scenario="E1")).mean("time")
print(f"A1B minus E1 over 2090-2099, map mean: {float(difference.mean()):.2f} K")
assert float(difference.mean()) > 0.5

fig, axes = plt.subplots(1, 3, figsize=(15, 3.8), constrained_layout=True)
for ax, name in zip(axes[:2], ("A1B", "E1"), strict=True):
    decade["mean"].sel(scenario=name).mean("time").plot(ax=ax, cmap="RdYlBu_r", vmin=270, vmax=305)
    ax.set_title(f"{name}: posterior mean, 2090-2099")
difference.plot(ax=axes[2], cmap="Reds")
axes[2].set_title("A1B minus E1")
save(fig, "scenarios.png")

# %% [markdown]
# ## Shared hyperparameters
#
# With `shared=True` the scenarios are replicates: one set of hyperparameters, and fields
# independent given them. This is one exact Kronecker fit, with an `xkron.Independent` factor
# over `scenario`. Its log-likelihood is the sum of the scenarios' (checked here at the shared
# optimum).

# %%
shared = both.kron.fit(KERNELS, batch_dims="scenario", shared=True, restarts=1, progressbar=False)
print(shared.params.to_dataframe().round(3) if shared.params.dims else shared.params.to_array().to_series().round(3))
at_optimum = {k: float(v) for k, v in shared.params.items()}
fixed_kernels = {
    "time": xkron.Matern12(ls=at_optimum["ls_time"]),
    ("latitude", "longitude"): xkron.Matern52(ls=[at_optimum["ls_latitude"], at_optimum["ls_longitude"]]),
}
fixed = {k: at_optimum[k] for k in ("amplitude", "noise", "mean")}
joint = both.kron.fit(fixed_kernels, batch_dims="scenario", shared=True, progressbar=False, **fixed)
parts = [both.sel(scenario=s).kron.fit(fixed_kernels, progressbar=False, **fixed) for s in ("A1B", "E1")]
assert np.isclose(joint.model.compile_logp()({}), sum(p.model.compile_logp()({}) for p in parts), rtol=1e-12)

# %% [markdown]
# ## Smoothing a field that stays on disk
#
# Now the other kind of scale. We write the full-resolution A1B field (all 240 years and the
# original 37 × 49 grid, in kelvin) to NetCDF in chunks and open it lazily with `chunks=`.
# It is small enough here to check against memory, but nothing below loads it:
#
# - `fit(..., subsample={"time": 4, "latitude": 2, "longitude": 2})` fits the
#   hyperparameters on every 4th year and every 2nd grid point (this is the one step that
#   reads values: a 16th of the field), then conditions on the whole field with
#   `KronFit.condition`; lengthscales are in coordinate units, and thinning keeps the noise
#   level, so the hyperparameters carry over;
# - `predict()` is then a dask graph of chunked Kronecker products, and writing it with
#   `to_netcdf` streams chunk by chunk, with memory bounded by the chunk sizes.

# %%
source, target = OUT / "a1b_full.nc", OUT / "a1b_smoothed.nc"
full = fields["A1B"].drop_vars([c for c in fields["A1B"].coords if c not in fields["A1B"].dims])
full.to_dataset(name="tas").to_netcdf(source, encoding={"tas": {"chunksizes": (60, 37, 49)}})
lazy = xr.open_dataset(source, chunks={"time": 60}, decode_times=times)["tas"]
print("chunks on disk and in dask:", lazy.chunks)

smooth_fit = lazy.kron.fit(KERNELS, subsample={"time": 4, "latitude": 2, "longitude": 2}, restarts=1, progressbar=False)
smoothed = smooth_fit.predict()
print("lazy result, chunked like the input:", smoothed["mean"].chunks)
assert smoothed["mean"].chunks == lazy.chunks
start = time.perf_counter()
smoothed.to_netcdf(target)
print(f"streamed the posterior mean and sd to {target.name} in {time.perf_counter() - start:.1f} s")

# The same computation in memory gives the same numbers.
in_memory = smooth_fit.condition(full.load()).predict()
written = xr.open_dataset(target, decode_times=times)
assert float(abs(written["mean"] - in_memory["mean"]).max()) < 1e-10
# (The variance agrees to 1e-10; its square root amplifies rounding where the sd is small.)
assert float(abs(written["sd"] ** 2 - in_memory["sd"] ** 2).max()) < 1e-10

fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), constrained_layout=True)
full.isel(time=-1).plot(ax=axes[0], cmap="RdYlBu_r")
axes[0].set_title("A1B 2099: the data")
written["sd"].isel(time=-1).plot(ax=axes[1], cmap="viridis")
axes[1].set_title("posterior sd of the smoothed field (K)")
save(fig, "out_of_core.png")
written.close()

with dask.config.set(scheduler="synchronous"):  # a small check that the lazy sample fields stream too
    fields_2099 = smooth_fit.sample(2, random_seed=1, time=full["time"].values[-1:])["f"].compute()
print("sample fields:", dict(fields_2099.sizes))
print(f"tutorial finished in {time.perf_counter() - T_START:.0f} s")
