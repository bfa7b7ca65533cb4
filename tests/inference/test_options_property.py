"""Property: every combination of ``xkron.fit``'s documented options either works or is refused
before any compute (issue 11).

The model builder and the inference entry points (xkron's MAP ``fit_map``, ``pm.sample``, ``pm.fit``) are
replaced by a sentinel. A combination "works" when it reaches one of them; it is refused
correctly when ``fit`` raises ``ValueError`` or ``TypeError`` first. Anything else fails: an
internal error (``KeyError``, ``LinAlgError``, ...) or a refusal that comes only after compute
started (it would surface here as the sentinel, or as a batch slice that failed otherwise).
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pymc_extras.prior import Prior

import xkron
import xkron.inference.run
import xkron.models.build
from xkron.errors import BatchError
from xkron.results.batch import BatchFit


class ComputeReached(Exception):
    """Raised where compute would start."""


def _data(likelihood: str, nan: bool, batch: bool) -> xr.DataArray:
    """A 4×3 grid (×2 members with a batch dim) that the likelihood can produce."""
    rng = np.random.default_rng(0)
    shape = (2, 4, 3) if batch else (4, 3)
    raw = rng.normal(size=shape)
    values = {
        "gaussian": raw,
        "student_t": raw,
        "poisson": np.round(np.exp(raw)),
        "bernoulli": (raw > 0).astype(float),
        "gamma": np.exp(raw),
    }[likelihood]
    coords = {"a": np.linspace(0, 1, 4), "b": np.linspace(0, 2, 3)}
    dims = ("a", "b")
    if batch:
        coords, dims = {"m": ["r1", "r2"], **coords}, ("m", *dims)
    da = xr.DataArray(values, coords=coords, dims=dims, name="v")
    return da.where((da.a != 1.0 / 3) | (da.b != 1.0)) if nan else da


def _option(default, *others):
    """The default three times in four: combinations of a few non-defaults reach compute often
    enough to test that path too (uniform draws almost always hold a contradiction)."""
    return st.one_of(st.just(default), st.just(default), st.just(default), st.sampled_from(others))


OPTIONS = {
    "likelihood": st.sampled_from(["gaussian", "student_t", "poisson", "bernoulli", "gamma"]),
    "latent": _option(None, True, False),
    "collapse": _option(None, True, False),
    "method": _option(None, "map", "nuts", "advi"),
    "solver": _option("auto", "kronecker", "dense", "iterative"),
    "solver_options": _option(None, {"tol": 1e-6}),
    "subsample": _option(None, {"a": 2}),
    "batch_dims": _option(None, "m"),
    "shared": _option(False, True),
    "errors": _option("raise", "record"),
    "mask": _option(None, "all", "hide"),
    "noise_sd": _option(None, 0.1, "cells"),
    "mean": _option("constant", "zero", 0.5, Prior("Normal", mu=0, sigma=1)),
    "amplitude": _option(None, 1.0, Prior("HalfNormal", sigma=1)),
    "noise": _option(None, 0.1, 0.0, Prior("HalfNormal", sigma=1)),
    "nan": _option(False, True),
}


def _arguments(options: dict) -> tuple[xr.DataArray, dict]:
    options = dict(options)
    da = _data(options["likelihood"], options.pop("nan"), options["batch_dims"] is not None)
    grid = da.isel(m=0, drop=True) if "m" in da.dims else da
    mask = options.pop("mask")
    if mask is not None:
        options["mask"] = xr.ones_like(grid, dtype=bool) if mask == "all" else (grid.a > 0) | (grid.b > 0)
    if options["noise_sd"] == "cells":
        options["noise_sd"] = xr.full_like(grid, 0.2, dtype=float) + 0.1 * grid.a
    options = {k: v for k, v in options.items() if v is not None or k in ("latent", "collapse")}
    return da, options


def _sentinel(*args, **kwargs):
    raise ComputeReached("compute started")


def _outcome(da: xr.DataArray, options: dict) -> str:
    """``"works"`` (compute reached) or ``"refused"``; anything else raises."""
    try:
        result = xkron.fit(da, {"a": "Matern32", "b": "ExpQuad"}, progressbar=False, restarts=0, **options)
    except ComputeReached:
        return "works"
    except (ValueError, TypeError) as exc:
        if isinstance(exc, BatchError):  # pragma: no cover - BatchError is a RuntimeError
            raise
        return "refused"
    except BatchError as exc:
        if "before any fit" in str(exc):  # some slices refused, before any slice was fitted
            return "refused"
        assert "ComputeReached" in str(exc), f"a batch slice failed after its checks: {exc}"
        return "works"
    assert isinstance(result, BatchFit), f"fit returned without computing: {result!r}"
    assert all("ComputeReached" in str(m) for m in result.failures.values()), result.failures
    return "works"


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.fixed_dictionaries(OPTIONS))
def test_every_option_combination_works_or_is_refused_before_compute(options):
    da, kwargs = _arguments(options)
    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        patch.setattr(xkron.inference.run, "build_model", _sentinel)
        patch.setattr(xkron.models.build, "build_model", _sentinel)
        patch.setattr(xkron.inference.run, "fit_map", _sentinel)
        for name in ("sample", "fit"):
            patch.setattr(pm, name, _sentinel)
        assert _outcome(da, kwargs) in ("works", "refused")


def test_the_option_grid_reaches_both_outcomes():
    """The grid is not vacuous: plain options work, contradictory ones are refused."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(xkron.inference.run, "build_model", _sentinel)
        da = _data("gaussian", nan=False, batch=False)
        assert _outcome(da, {}) == "works"
        assert _outcome(da, {"shared": True}) == "refused"
