"""Anchored prior draws for sampling onto large new grids, against the kernel and the exact posterior.

References: the kernel matrix itself (the anchored root must reproduce the training block, the
training-new block and every prior variance exactly, and the new-new block within the reported
residual share); the exact posterior mean and sd of ``predict`` (fields drawn with anchors must
match them within their Monte Carlo error alone, since the marginals are exact); the exact
union-root path below :data:`xkron.settings.SAMPLE_EXACT_UNION`.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
import xkron.posterior.fields
from xkron.posterior.anchored import anchored_roots
from xkron.spec.grid import Factor, cartesian

COORDS = (np.linspace(0.0, 3.0, 12), np.linspace(-1.0, 2.0, 10))
NEW = cartesian([np.linspace(-0.5, 3.5, 25), np.linspace(-1.5, 2.5, 20)])


@pytest.mark.parametrize("kernel", ["ExpQuad", "Matern12", "Matern52", "RatQuad"])
def test_the_anchored_root_is_exact_where_the_update_reads_it(kernel):
    factor = Factor(("a", "b"), getattr(xkron, kernel)(), COORDS)
    params = {"ls": [0.8, 1.3], "alpha": 1.5}
    R, Rs, d, share = anchored_roots(factor, params, NEW, 300)
    X = factor.inputs()
    np.testing.assert_allclose(R @ R.T, factor.kernel_matrix(params, X, X), rtol=0, atol=1e-10)
    np.testing.assert_allclose(Rs @ R.T, factor.kernel_matrix(params, NEW, X), rtol=0, atol=1e-8)
    np.testing.assert_allclose(np.sum(Rs * Rs, axis=1) + d**2, factor.variance(params, NEW), rtol=0, atol=1e-10)
    off = Rs @ Rs.T + np.diag(d**2) - factor.kernel_matrix(params, NEW, NEW)
    assert float(np.abs(off).max()) <= share + 1e-10  # |d_i d_j| ≤ the largest residual variance
    assert share < 0.2  # 180 anchors spread over 500 new inputs, lengthscales of a few spacings


def fitted():
    rng = np.random.default_rng(0)
    a, b = COORDS
    y = np.sin(2 * a)[:, None, None] * np.cos(b)[None, :, None] * np.ones(4)[None, None, :]
    y = y + 0.1 * rng.standard_normal(y.shape)
    da = xr.DataArray(y, coords={"a": a, "b": b, "t": np.arange(4.0)}, dims=("a", "b", "t"))
    kernels = {("a", "b"): xkron.Matern52(ls=[0.8, 1.3]), "t": xkron.ExpQuad(ls=2.0)}
    return xkron.fit(da, kernels, amplitude=1.0, noise=0.1, mean=0.0, progressbar=False)


def test_fields_drawn_with_anchors_have_the_exact_posterior_marginals(monkeypatch):
    """Anchored on 150 of 12 × 10 + 25 × 20 inputs: 4,000 fields' mean and sd against predict()."""
    monkeypatch.setattr(xkron.posterior.fields, "SAMPLE_EXACT_UNION", 150)
    fit = fitted()
    new = {"a": np.linspace(-0.5, 3.5, 25), "b": np.linspace(-1.5, 2.5, 20)}
    fields = fit.sample(4000, random_seed=1, progressbar=False, **new)
    assert "anchored on 150 inputs for the factor 'a_b'" in fields.attrs["prior_draw"]
    exact = fit.predict(**new)
    z = (fields["f"].mean("sample") - exact["mean"]) / (exact["sd"] / np.sqrt(4000))
    assert float(abs(z).max()) < 5
    ratio = fields["f"].std("sample") / exact["sd"]
    assert 0.94 < float(ratio.min()) and float(ratio.max()) < 1.06  # Monte Carlo alone: 1.1% sd, 2,000 cells


def test_small_unions_keep_the_exact_root():
    fields = fitted().sample(2, random_seed=1, progressbar=False, a=np.array([0.5]))
    assert "prior_draw" not in fields.attrs
