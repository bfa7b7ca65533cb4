"""Issue 11, item 4: the MAP is equivariant under scaling and shifting the data.

With the default priors (which follow the data's mean and sd), the posterior of ``c·y + b``
is that of ``y`` with amplitude, noise and the mean's deviation scaled by ``c`` and the mean
shifted by ``b``; lengthscales do not change. The log posterior (no Jacobian, as
``find_MAP``) changes by exactly ``−(n + 3)·log|c|``: the data density of ``n`` cells and the
densities of the three scale parameters (amplitude, noise, mean) each gain ``−log c``.
The reference is the fit of the unscaled data, itself checked against PyMC's dense model in
``tests/test_map.py``. Before the fix, data in small units (``c = 1e-5``) stopped at the start.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import xarray as xr
from hypothesis import example, given, settings
from hypothesis import strategies as st

import xkron

KERNELS = {"a": xkron.Matern52(), "b": xkron.ExpQuad()}
SCALED = ("amplitude", "noise")


@functools.cache
def grid(seed: int) -> xr.DataArray:
    """A smooth field on a small uneven 12 × 9 grid, with noise and an offset."""
    rng = np.random.default_rng(seed)
    a = np.sort(rng.uniform(0, 5, 12))
    b = np.linspace(0, 3, 9)
    field = np.sin(a * rng.uniform(0.5, 1.5))[:, None] * np.cos(b * rng.uniform(1, 2.5))[None, :]
    y = field + rng.uniform(0.05, 0.3) * rng.normal(size=field.shape) + rng.normal(0, 3)
    return xr.DataArray(y, coords={"a": a, "b": b}, dims=("a", "b"))


@functools.cache
def reference(seed: int):
    fit = xkron.fit(grid(seed), KERNELS, progressbar=False)
    assert fit.optimizer["success"]
    return {k: float(v) for k, v in fit.params.data_vars.items()}, fit.optimizer["logp"]


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2), exponent=st.floats(-30, 30))
@example(seed=0, exponent=-5.0)
@example(seed=1, exponent=-30.0)
@example(seed=2, exponent=30.0)
def test_scaling_the_data_scales_amplitude_noise_and_mean(seed, exponent):
    c = 10.0**exponent
    fit = xkron.fit(grid(seed) * c, KERNELS, progressbar=False)
    ref, ref_logp = reference(seed)
    got = {k: float(v) for k, v in fit.params.data_vars.items()}
    for name in ("ls_a", "ls_b"):
        assert got[name] == pytest.approx(ref[name], rel=1e-5), name
    for name in (*SCALED, "mean"):
        assert got[name] / c == pytest.approx(ref[name], rel=1e-5), name
    shift = (grid(seed).size + 3) * np.log(c)
    assert fit.optimizer["logp"] == pytest.approx(ref_logp - shift, abs=1e-6 * max(1.0, abs(shift)))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2), offset=st.floats(-1e4, 1e4))
@example(seed=0, offset=1e4)
def test_shifting_the_data_shifts_only_the_mean(seed, offset):
    da = grid(seed)
    b = offset * float(da.std())
    fit = xkron.fit(da + b, KERNELS, progressbar=False)
    ref, ref_logp = reference(seed)
    got = {k: float(v) for k, v in fit.params.data_vars.items()}
    for name in ("ls_a", "ls_b", *SCALED):
        assert got[name] == pytest.approx(ref[name], rel=1e-5), name
    assert got["mean"] - b == pytest.approx(ref["mean"], abs=1e-6 * float(da.std()) * max(1.0, abs(offset)))
    assert fit.optimizer["logp"] == pytest.approx(ref_logp, abs=1e-6 * max(1.0, abs(ref_logp)))


def test_small_units_fit_away_from_the_start():
    """The reported case: ``(da * 1e-5).kron.fit(K)`` stopped after 1-2 iterations at its start."""
    fit = (grid(0) * 1e-5).kron.fit(KERNELS, progressbar=False)
    ref, _ = reference(0)
    assert fit.optimizer["nit"] > 3
    assert float(fit.params["ls_a"]) == pytest.approx(ref["ls_a"], rel=1e-5)
