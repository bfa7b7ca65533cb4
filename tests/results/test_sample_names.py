"""A dim named like a sample output gets a clear error before any draw (issue 11, item 12)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
import xkron.results.samples


def test_observed_samples_with_a_dim_named_y_are_refused_before_any_draw(monkeypatch):
    x = np.linspace(0.0, 1.0, 6)
    da = xr.DataArray(np.add.outer(np.sin(3 * x), x[:5]), coords={"x": x, "y": x[:5]}, dims=("x", "y"))
    fit = xkron.fit(da, {"x": "ExpQuad", "y": "ExpQuad"}, noise=0.1, progressbar=False)
    assert fit.sample(2, random_seed=0, progressbar=False)["f"].dims == ("sample", "x", "y")  # f alone works
    monkeypatch.setattr(xkron.results.samples, "posterior_fields", lambda *a, **k: pytest.fail("drawn"))
    with pytest.raises(ValueError, match=r"'y', which is also a dim of the data; rename the dim"):
        fit.sample(2, observed=True, random_seed=0, progressbar=False)
