"""Batch fits: independent slices (locally and on a dask LocalCluster) and shared hyperparameters."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import xarray as xr

import xkron

RNG = np.random.default_rng(3)
T, X = np.linspace(0, 3, 8), np.linspace(0, 1, 6)
KERNELS = {"t": xkron.Matern32(), "x": xkron.ExpQuad()}


def _members(n=3):
    truth = np.sin(2 * T)[:, None] * np.cos(3 * X)[None, :]
    values = truth + 0.1 * RNG.normal(size=(n, 8, 6)) + RNG.normal(size=(n, 1, 1))
    names = [f"r{i}" for i in range(n)]
    return xr.DataArray(values, coords={"member": names, "t": T, "x": X}, dims=("member", "t", "x"), name="tas")


def _batch(da, **kwargs):
    return da.kron.fit(KERNELS, batch_dims="member", restarts=0, random_seed=4, progressbar=False, **kwargs)


def test_independent_slices_equal_separate_fits(tmp_path):
    da = _members()
    batch = _batch(da)
    assert isinstance(batch, xkron.BatchFit) and batch.params["ls_t"].dims == ("member",)
    for k, name in enumerate(da["member"].values):
        alone = da.sel(member=name).kron.fit(KERNELS, restarts=0, random_seed=4 + k, progressbar=False)
        for var in alone.params:
            assert float(batch.params[var].sel(member=name)) == pytest.approx(float(alone.params[var]), rel=1e-10)
        np.testing.assert_allclose(
            batch.predict(t=[0.5])["mean"].sel(member=name).values, alone.predict(t=[0.5])["mean"].values, rtol=1e-10
        )
    assert batch.predict()["mean"].dims == ("member", "t", "x")
    assert batch.sample(2, random_seed=0)["f"].sizes["member"] == 3
    batch.to_netcdf(tmp_path / "batch.nc")
    again = xkron.open_fit(tmp_path / "batch.nc")
    xr.testing.assert_identical(again.params, batch.params)
    xr.testing.assert_identical(again.predict(x=[0.25]), batch.predict(x=[0.25]))


def test_shared_hyperparameters_are_one_fit_of_independent_replicates():
    da = _members()
    values = {"amplitude": 0.8, "noise": 0.2, "mean": 0.1}
    kernels = {"t": xkron.Matern32(ls=1.2), "x": xkron.ExpQuad(ls=0.4)}
    shared = da.kron.fit(kernels, batch_dims="member", shared=True, progressbar=False, **values)
    assert isinstance(shared, xkron.KronFit)
    reference = sum(
        da.sel(member=m).kron.fit(kernels, progressbar=False, **values).model.compile_logp()({})
        for m in da["member"].values
    )
    assert shared.model.compile_logp()({}) == pytest.approx(reference, rel=1e-12)
    free = da.kron.fit(KERNELS, batch_dims="member", shared=True, restarts=0, progressbar=False)
    assert free.params["ls_t"].dims == () and "member" not in free.params.dims
    assert free.predict()["mean"].dims == ("member", "t", "x")


def test_failing_slice_raises_by_default_and_is_recorded_on_request():
    da = _members()
    da[1] = np.nan
    with pytest.raises(xkron.BatchError, match=r"member='r1'.*every one of the 48 cells"):
        _batch(da)
    recorded = _batch(da, errors="record")
    assert recorded.errors.sel(member="r1").item().startswith("ValueError")
    assert recorded.errors.sel(member="r0").item() == ""
    assert np.isnan(recorded.params["ls_t"].sel(member="r1")) and np.isfinite(recorded.params["ls_t"].sel(member="r2"))
    assert bool(recorded.predict()["mean"].sel(member="r1").isnull().all())


def test_bad_batch_input_fails_before_any_fit():
    da = _members()
    with pytest.raises(ValueError, match="not dims of the data"):
        da.kron.fit(KERNELS, batch_dims="ensemble", progressbar=False)
    with pytest.raises(ValueError, match="both a batch dim and a kernel dim"):
        da.kron.fit({**KERNELS, "member": "ExpQuad"}, batch_dims="member", progressbar=False)
    with pytest.raises(ValueError, match="errors="):
        da.kron.fit(KERNELS, batch_dims="member", errors="ignore", progressbar=False)


@pytest.fixture(scope="module")
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _one_by_one(da) -> xr.Dataset:
    """The batch's params from plain fits of each slice in this process (no batch machinery)."""
    fits = [
        da.isel(member=k).kron.fit(KERNELS, restarts=0, random_seed=4 + k, progressbar=False).params
        for k in range(da.sizes["member"])
    ]
    return xr.concat(fits, dim="member").assign_coords(member=da["member"].values)


def test_cluster_batch_equals_the_sequential_batch(cluster_client):
    da = _members(4)
    on_cluster = _batch(da)  # the active client runs the slices as tasks
    xr.testing.assert_allclose(on_cluster.params.drop_attrs(), _one_by_one(da).drop_attrs(), rtol=1e-12)


def test_cluster_batch_survives_a_worker_restart(cluster_client):
    import os

    da = _members(6)
    reference = _one_by_one(da)
    started, restarted = threading.Event(), {}
    before = set(cluster_client.run(os.getpid).values())

    def restart_one():
        started.wait()
        time.sleep(0.5)
        worker = next(iter(cluster_client.scheduler_info()["workers"]))
        restarted["at"] = time.perf_counter()  # the restart is issued now; it completes later
        cluster_client.restart_workers([worker])

    thread = threading.Thread(target=restart_one)
    thread.start()
    started.set()
    survived = _batch(da)
    finished = time.perf_counter()
    thread.join()
    assert set(cluster_client.run(os.getpid).values()) != before  # a worker process was replaced
    assert restarted["at"] < finished  # ... issued while the batch was running
    xr.testing.assert_allclose(survived.params.drop_attrs(), reference.drop_attrs(), rtol=1e-12)
