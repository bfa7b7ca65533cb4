"""Costly requests warn or are refused BEFORE the expensive step; small ones stay silent (issue 11, items 15-16).

The expensive steps (eigendecompositions) are replaced by functions that fail the test if
called: a warning or refusal must come first. Sizes are kept tiny by lowering the machine's
assumed speed or its available memory (``xkron.linalg.cost`` constants), so the tests check the
logic, not this machine's speed.
"""

from __future__ import annotations

import io
import re
import warnings

import numpy as np
import pytest
import scipy.linalg
import xarray as xr

import xkron
import xkron.inference.run
import xkron.linalg.cost
from xkron.progress import CountProgress
from xkron.spec.grid import Factor
from xkron.spec.modelspec import ModelSpec


@pytest.fixture(scope="module")
def fit():
    rng = np.random.default_rng(0)
    da = xr.DataArray(
        rng.normal(size=(4, 5, 6)),
        coords={"t": np.arange(4.0), "lat": np.linspace(-10, 10, 5), "lon": np.linspace(0, 25, 6)},
        dims=("t", "lat", "lon"),
    )
    kernels = {"t": xkron.ExpQuad(ls=1.0), ("lat", "lon"): xkron.Matern32(ls=[5.0, 8.0])}
    return da.kron.fit(kernels, amplitude=1.0, noise=0.3, mean=0.0, progressbar=False)


@pytest.fixture
def no_eigh(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("an eigendecomposition ran before the cost check")

    monkeypatch.setattr(scipy.linalg, "eigh", refuse)


def fresh(fit):
    """The same fit without its cached posteriors (so predict must condition, i.e. decompose)."""
    return xkron.KronFit(fit.data, fit.spec, fit.encodings, fit.params, fit.method)


NEW_GRID = {"lat": np.linspace(-20, 20, 30), "lon": np.linspace(0, 40, 40)}


def test_small_requests_are_silent(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error", xkron.CostWarning)
        fresh(fit).predict(**NEW_GRID)
        fresh(fit).sample(3, random_seed=0, progressbar=False, **NEW_GRID)
        spec = fit.spec
        xkron.linalg.cost.check_fit_cost(spec, 120, "map")
        xkron.linalg.cost.check_fit_cost(spec, 120, "nuts", {"draws": 500, "chains": 2})


def test_slow_sample_on_a_new_grid_warns_before_decomposing(fit, no_eigh, monkeypatch):
    monkeypatch.setattr(xkron.linalg.cost, "EIGH_RATE", 1e4)  # a very slow machine: the union eigh takes hours
    with pytest.warns(xkron.CostWarning) as record, pytest.raises(AssertionError, match="before the cost check"):
        fresh(fit).sample(2, progressbar=False, **NEW_GRID)
    message = str(record[0].message)
    assert "1,230 training and new inputs of the ('lat', 'lon') factor (30 inputs)" in message
    assert "sample on the training grid" in message and "one factor per dim" not in message  # 30 inputs: fine


def test_sample_larger_than_memory_is_refused_before_decomposing(fit, no_eigh, monkeypatch):
    monkeypatch.setattr(xkron.linalg.cost, "available_memory", lambda: 1e6)
    with pytest.raises(xkron.CostError, match=r"sample\(\) would take .*\(1 MB available\).*Nothing was computed"):
        fresh(fit).sample(2, progressbar=False, **NEW_GRID)


def test_predict_larger_than_memory_is_refused_before_conditioning(fit, no_eigh, monkeypatch):
    monkeypatch.setattr(xkron.linalg.cost, "available_memory", lambda: 1e5)
    with pytest.raises(xkron.CostError, match=r"predict\(\) would take.*dask-backed coordinates"):
        fresh(fit).predict(lat=np.linspace(-20, 20, 300), lon=np.linspace(0, 40, 400))


def test_slow_predict_warns_before_conditioning(fit, no_eigh, monkeypatch):
    monkeypatch.setattr(xkron.linalg.cost, "EIGH_RATE", 1.0)
    with pytest.warns(xkron.CostWarning, match=r"predict\(\) is estimated to take"):
        with pytest.raises(AssertionError, match="before the cost check"):
            fresh(fit).predict(**NEW_GRID)


def test_fit_cost_of_a_large_multi_dim_factor_warns_with_ways_out():
    """The reported case: a 1,421-point (latitude, longitude) factor (29 × 49)."""
    lat, lon = np.linspace(-60, 60, 29), np.linspace(0, 355, 49)
    factors = (
        Factor(("time",), xkron.ExpQuad(), (np.arange(12.0),)),
        Factor(("latitude", "longitude"), xkron.ExpQuad(), (lat, lon)),
    )
    spec = ModelSpec(factors, {})
    with pytest.warns(xkron.CostWarning) as record:
        xkron.linalg.cost.check_fit_cost(spec, 12 * 1421, "map")
    message = str(record[0].message)
    assert "decomposes the ('latitude', 'longitude') factor (1,421 inputs)" in message
    assert "one factor per dim instead of ('latitude', 'longitude')" in message and "subsample=" in message
    separate = ModelSpec((factors[0], Factor(("latitude",), xkron.ExpQuad(), (lat,)),
                          Factor(("longitude",), xkron.ExpQuad(), (lon,))), {})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error", xkron.CostWarning)
        xkron.linalg.cost.check_fit_cost(separate, 12 * 1421, "map")


def test_fit_larger_than_memory_is_refused(monkeypatch):
    monkeypatch.setattr(xkron.linalg.cost, "available_memory", lambda: 1e9)
    x = np.arange(100.0)
    spec = ModelSpec((Factor(("a", "b"), xkron.ExpQuad(), (x, x)),), {})  # 10,000 inputs: 800 MB a matrix
    with pytest.raises(xkron.CostError, match=r"fit\(method='map'\) would take"):
        xkron.linalg.cost.check_fit_cost(spec, 10_000, "map")


def test_fit_is_refused_before_the_model_is_built(monkeypatch):
    """xkron.fit runs the cost check before any model is built (for batch fits: before any slice)."""
    monkeypatch.setattr(xkron.linalg.cost, "available_memory", lambda: 1e6)
    monkeypatch.setattr(xkron.inference.run, "build_model", lambda *a, **k: pytest.fail("the model was built"))
    x = np.linspace(0.0, 1.0, 40)
    da = xr.DataArray(np.random.default_rng(0).normal(size=(40, 40)), coords={"a": x, "b": x}, dims=("a", "b"))
    with pytest.raises(xkron.CostError, match=r"fit\(method='map'\)"):
        xkron.fit(da, {("a", "b"): xkron.ExpQuad()}, progressbar=False)


def test_sampling_on_the_training_grid_decomposes_only_the_training_inputs(fit, monkeypatch):
    """The union of training and new inputs is taken without repeats: on the training grid it is the training set."""
    sizes = []
    real = scipy.linalg.eigh

    def spy(a, *args, **kwargs):
        sizes.append(a.shape[0])
        return real(a, *args, **kwargs)

    monkeypatch.setattr(scipy.linalg, "eigh", spy)
    fit.sample(2, random_seed=0, progressbar=False)
    assert max(sizes) == 30  # the 30-input factor, not its 60 training-and-new inputs


def test_long_sample_reports_fields_done_and_elapsed(fit, monkeypatch, capsys):
    monkeypatch.setattr("xkron.progress.SHOW_AFTER", 0.0)
    monkeypatch.setattr("xkron.progress.REFRESH", 0.0)
    fresh(fit).sample(3, random_seed=0, **NEW_GRID)
    err = capsys.readouterr().err
    assert re.search(r"sample: 3/3 fields, \d+:\d\d:\d\d elapsed", err)
    assert "remaining" not in err and "ETA" not in err
    fresh(fit).sample(3, random_seed=0, progressbar=False, **NEW_GRID)
    assert capsys.readouterr().err == ""


def test_progress_line_counts_and_stays_silent_for_short_loops():
    out = io.StringIO()
    with CountProgress(5, "sample", "fields", stream=out) as bar:  # default: shown only after 2 s
        for k in range(1, 6):
            bar.update(k)
    assert out.getvalue() == ""
    out = io.StringIO()
    with CountProgress(4, "sample", "fields", stream=out, show_after=0.0, refresh=0.0) as bar:
        for k in range(1, 5):
            bar.update(k)
    lines = out.getvalue().split("\r")
    assert [line.split(",")[0] for line in lines[1:]] == [f"sample: {k}/4 fields" for k in (1, 2, 3, 4, 4)]
    assert out.getvalue().endswith(" elapsed\n")
