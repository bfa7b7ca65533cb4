"""Out-of-core application of a fit: dask-backed data give lazy, chunked, exact results."""

from __future__ import annotations

import tempfile

import dask
import numpy as np
import pytest
import xarray as xr

import xkron

RNG = np.random.default_rng(8)
T, X, Z = np.linspace(0, 5, 30), np.linspace(0, 1, 20), np.linspace(0, 2, 24)
KERNELS = {"t": xkron.ExpQuad(), "x": xkron.ExpQuad(), "z": xkron.Matern32()}
CHUNKS = {"t": 10, "x": 10, "z": 12}


class _RaiseIfComputed:
    """A dask scheduler that fails the test if anything is computed (as in cf_xarray's tests)."""

    def __call__(self, dsk, keys, **kwargs):
        raise AssertionError("dask computed something it should have left lazy")


@pytest.fixture(scope="module")
def field():
    truth = np.sin(T)[:, None, None] * np.cos(3 * X)[None, :, None] * np.sin(2 * Z)[None, None, :]
    da = xr.DataArray(
        truth + 0.1 * RNG.normal(size=truth.shape),
        coords={"t": T, "x": X, "z": Z},
        dims=("t", "x", "z"),
        name="v",
        attrs={"units": "K"},
    )
    return da, da.kron.fit(KERNELS, restarts=0, progressbar=False)


def test_lazy_predictions_equal_in_memory_ones_and_keep_chunks(field):
    da, fit = field
    lazy = fit.condition(da.chunk(CHUNKS))
    new_t = np.linspace(0, 6, 17)
    with dask.config.set(scheduler=_RaiseIfComputed()):
        smooth, extended = lazy.predict(), lazy.predict(t=new_t, noise=True)
    assert smooth["mean"].chunks == da.chunk(CHUNKS).chunks
    assert extended["mean"].chunksizes["x"] == (10, 10) and extended["mean"].chunksizes["z"] == (12, 12)
    xr.testing.assert_allclose(smooth.compute(), fit.predict(), rtol=0, atol=1e-10)
    xr.testing.assert_allclose(extended.compute(), fit.predict(t=new_t, noise=True), rtol=0, atol=1e-10)
    assert smooth["mean"].attrs["units"] == "K"


def test_lazy_sample_fields_are_exact_draws(field):
    da, fit = field
    lazy = fit.condition(da.chunk(CHUNKS))
    with dask.config.set(scheduler=_RaiseIfComputed()):
        draws = lazy.sample(600, random_seed=1, observed=True)
    assert draws["f"].chunksizes["x"] == (10, 10)
    reference = fit.predict()
    f = draws["f"].compute()
    se = reference["sd"] / np.sqrt(600)
    assert float((abs(f.mean("sample") - reference["mean"]) / se).max()) < 5
    ratio = f.std("sample") / reference["sd"]
    assert abs(float(ratio.mean()) - 1) < 0.01 and float(abs(ratio - 1).max()) < 0.2
    again = lazy.sample(3, random_seed=1)["f"].compute()
    np.testing.assert_array_equal(again.values, lazy.sample(3, random_seed=1)["f"].values)


def test_subsample_fit_then_condition_on_the_full_field(field):
    da, _ = field
    thin = da.kron.fit(KERNELS, subsample={"t": 2}, restarts=0, progressbar=False)
    direct = da.isel(t=slice(None, None, 2)).kron.fit(KERNELS, restarts=0, progressbar=False)
    xr.testing.assert_identical(thin.params, direct.params)
    assert thin.data.sizes["t"] == 30
    lazy = da.chunk(CHUNKS).kron.fit(KERNELS, subsample={"t": 2}, restarts=0, progressbar=False)
    with dask.config.set(scheduler=_RaiseIfComputed()):
        smooth = lazy.predict()
    xr.testing.assert_allclose(smooth.compute(), thin.predict(), rtol=0, atol=1e-10)


def test_condition_rejects_what_it_cannot_honour(field):
    da, fit = field
    with pytest.raises(ValueError, match=r"gaps=False, but 2880 cell\(s\) are NaN or masked"):
        fit.condition(da.where(da.t > 1), gaps=False)
    gappy = fit.condition(da.where(da.t > 1).chunk(CHUNKS))  # dask without gaps=True: taken as complete, lazily
    with pytest.raises(ValueError, match=r"NaN/inf cells in a chunk.*condition\(data, gaps=True\)"):
        gappy.predict()["mean"].compute()
    with pytest.raises(ValueError, match="dims"):
        fit.condition(da.rename(z="w"))
    with pytest.raises(NotImplementedError, match="scattered points"):
        fit.condition(da.chunk(CHUNKS)).predict(xr.Dataset({"t": ("p", [0.5]), "x": ("p", [0.1]), "z": ("p", [1.0])}))
    with pytest.raises(ValueError, match="subsample"):
        da.kron.fit(KERNELS, subsample={"w": 2}, progressbar=False)


def _spill_layers(*arrays) -> set:
    """Names of the exchanges through disk that computing ``arrays`` runs."""
    from dask.core import flatten
    from dask.optimization import cull

    tasks = [cull(dict(a.__dask_graph__()), list(flatten(a.__dask_keys__())))[0] for a in arrays]
    return {key[0] for dsk in tasks for key in dsk if isinstance(key, tuple) and key[0].startswith("spill-read")}


@pytest.fixture
def forced_spill(monkeypatch, tmp_path):
    """Every exchange between mode products goes through disk, into ``tmp_path`` (the default folder)."""
    from xkron.linalg import lazy

    monkeypatch.setattr(lazy, "SPILL_BYTES", 0)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_small_grids_keep_dasks_in_memory_rechunk(field):
    da, fit = field
    smooth = fit.condition(da.chunk(CHUNKS)).predict()
    assert _spill_layers(smooth["mean"].data, smooth["sd"].data) == set()


def test_spilled_predictions_equal_in_memory_ones_keep_chunks_and_leave_no_files(field, forced_spill, monkeypatch):
    from xkron.linalg import lazy

    monkeypatch.setattr(lazy, "BLOCK_BYTES", 2000)  # three groups of axes, and working layouts cut further
    da, fit = field
    lazy_fit = fit.condition(da.chunk(CHUNKS))
    new_t = np.linspace(0, 6, 17)
    with dask.config.set(scheduler=_RaiseIfComputed()):
        smooth, extended = lazy_fit.predict(), lazy_fit.predict(t=new_t, noise=True)
    assert _spill_layers(smooth["mean"].data) and _spill_layers(extended["sd"].data)
    assert smooth["mean"].chunks == smooth["sd"].chunks == da.chunk(CHUNKS).chunks
    assert extended["mean"].chunksizes["x"] == (10, 10) and extended["mean"].chunksizes["z"] == (12, 12)
    reference = fit.predict()
    for _ in range(2):  # the same lazy arrays computed twice
        xr.testing.assert_allclose(smooth.compute(), reference, rtol=0, atol=1e-10)
        assert list(forced_spill.iterdir()) == []
    xr.testing.assert_allclose(extended.compute(), fit.predict(t=new_t, noise=True), rtol=0, atol=1e-10)
    assert list(forced_spill.iterdir()) == []


def test_fields_chunked_along_one_dim_need_three_exchanges(field, forced_spill, monkeypatch):
    from xkron.linalg import lazy

    # As for 1000 x 100 x 1000 cells chunked along time with default sizes: x and z go together, then t.
    monkeypatch.setattr(lazy, "BLOCK_BYTES", 40_000)
    monkeypatch.setattr(lazy, "SPILL_BYTES", 50_000)
    da, fit = field
    smooth = fit.condition(da.chunk({"t": 10})).predict()
    mean, sd = smooth["mean"].data, smooth["sd"].data
    assert len(_spill_layers(mean)) == 2 and len(_spill_layers(sd)) == 1  # t whole and back; W made with t whole
    assert mean.chunks == da.chunk({"t": 10}).chunks
    xr.testing.assert_allclose(smooth.compute(), fit.predict(), rtol=0, atol=1e-10)


def test_spilled_sample_fields_equal_in_memory_ones(field, forced_spill, monkeypatch):
    from xkron.linalg import lazy

    da, fit = field
    lazy_fit = fit.condition(da.chunk(CHUNKS))
    with dask.config.set(scheduler=_RaiseIfComputed()):
        spilled = lazy_fit.sample(3, random_seed=2)["f"]
    assert _spill_layers(spilled.data)
    assert spilled.chunks == lazy_fit.sample(3, random_seed=2)["f"].chunks
    monkeypatch.setattr(lazy, "SPILL_BYTES", 2**40)
    in_memory = lazy_fit.sample(3, random_seed=2)["f"]
    assert not _spill_layers(in_memory.data)
    np.testing.assert_allclose(spilled.values, in_memory.values, rtol=0, atol=1e-10)
    assert list(forced_spill.iterdir()) == []


def test_mode_products_spill_into_the_given_folder(tmp_path):
    import dask.array as dsa

    from xkron.linalg.lazy import lazy_mode_products

    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 8, 10))
    mats = [rng.normal(size=(5, 6)), None, rng.normal(size=(10, 10))]
    folder = tmp_path / "not yet made"
    out = lazy_mode_products(dsa.from_array(x, chunks=(2, 4, 5)), mats, [(5,), (4, 4), (5, 5)], spill_dir=folder,
                             spill_bytes=0)  # fmt: skip
    assert out.chunks == ((5,), (4, 4), (5, 5)) and _spill_layers(out)
    expected = np.einsum("ai,ijk,ck->ajc", mats[0], x, mats[2])
    np.testing.assert_allclose(out.compute(scheduler="threads"), expected, rtol=0, atol=1e-10)
    np.testing.assert_allclose(out.compute(scheduler="sync"), expected, rtol=0, atol=1e-10)
    assert list(folder.iterdir()) == []
