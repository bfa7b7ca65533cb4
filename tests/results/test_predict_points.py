"""Scattered points whose arrays disagree along a shared dim: a clear error before any compute (issue 11, item 12)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
import xkron.posterior.conditional


@pytest.fixture(scope="module")
def fit():
    x = np.linspace(0, 1, 6)
    da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)), coords={"a": x, "b": x}, dims=("a", "b"))
    kernels = {"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)}
    return da.kron.fit(kernels, amplitude=1.0, noise=0.01, mean="zero", progressbar=False)


@pytest.fixture
def no_compute(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the posterior was evaluated before the request was checked")

    monkeypatch.setattr(xkron.posterior.conditional.KronPosterior, "moments", refuse)


def test_points_of_different_lengths_name_the_dims_and_lengths(fit, no_compute):
    a, b = xr.DataArray([0.1, 0.2, 0.3], dims="point"), xr.DataArray([0.1, 0.2], dims="point")
    with pytest.raises(ValueError, match=r"'a' and 'b' share the dim 'point' but have 3 and 2 values"):
        fit.predict(a=a, b=b)


def test_points_along_a_data_dim_must_match_its_training_length(fit, no_compute):
    with pytest.raises(ValueError, match=r"'a' and 'b' \(its training coordinates\) share the dim 'b'.* 3 and 6"):
        fit.predict(a=xr.DataArray([0.1, 0.2, 0.3], dims="b"))


def test_points_with_conflicting_labels_are_refused(fit, no_compute):
    """Once the labels of the last array silently won."""
    a = xr.DataArray([0.1, 0.2], dims="p", coords={"p": [0, 1]})
    b = xr.DataArray([0.1, 0.2], dims="p", coords={"p": [5, 6]})
    with pytest.raises(ValueError, match=r"share the dim 'p' but label it differently"):
        fit.predict(a=a, b=b)


def test_matching_points_still_work(fit):
    a = xr.DataArray([0.1, 0.2], dims="p", coords={"p": [5, 6]})
    b = xr.DataArray([0.3, 0.4], dims="p", coords={"p": [5, 6]})
    result = fit.predict(a=a, b=b)
    grid = fit.predict(a=[0.1, 0.2], b=[0.3, 0.4])
    np.testing.assert_allclose(result["mean"].values, np.diagonal(grid["mean"].values), rtol=0, atol=1e-12)
    assert result["p"].values.tolist() == [5, 6]
