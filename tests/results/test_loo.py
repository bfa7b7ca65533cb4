"""fit.loo(): exact leave-one-out of MAP fits against brute-force refits with the hyperparameters fixed."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from loo_reference import FIXED, KERNELS, T, X, brute_force, data

import xkron
from xkron.linalg import loo as loo_module
from xkron.results import arviz as arviz_module


def _params(fit) -> dict:
    return {k: float(v) for k, v in fit.params.items()}


def _check(fit, y, noise_var, x=X, t=T):
    loo = fit.loo()
    p = _params(fit)
    mean, sd, logd = brute_force(y, p, p["noise"] ** 2 + noise_var, x, t)
    for name, expected in (("mean", mean), ("sd", sd), ("log_density", logd)):
        got = loo[name].transpose("x", "time").values
        assert np.array_equal(np.isnan(got), np.isnan(expected)), name
        assert np.allclose(got, expected, rtol=1e-8, atol=1e-10, equal_nan=True), name
    assert abs(float(loo["elpd_loo"]) - np.nansum(logd)) < 1e-8
    assert int(loo["n_loo"]) == int(np.isfinite(y).sum())
    return loo


def test_complete_grid_kronecker_against_brute_force_refits():
    da = data()
    fit = da.kron.fit(KERNELS, progressbar=False)
    assert fit.spec.solver.name == "kronecker"
    loo = _check(fit, da.values, 0.0)
    assert loo["mean"].dims == ("x", "time")
    xr.testing.assert_equal(loo["mean"].coords.to_dataset(), da.coords.to_dataset())
    assert loo["mean"].attrs["units"] == "K" and loo["sd"].attrs["units"] == "K"
    assert "leave-one-out" in loo["log_density"].attrs["long_name"]
    assert loo.attrs["Conventions"].startswith("CF-")


def test_gappy_grid_dense_against_brute_force_refits():
    da = data(1)
    da[1, 2] = da[3, 0] = np.nan
    da[:, 3] = np.nan  # a whole time step missing: the model's grid keeps 3 of 4 times
    fit = da.kron.fit(KERNELS, progressbar=False)
    assert fit.spec.solver.name == "dense" and fit.spec.factors[1].subset is not None
    loo = _check(fit, da.values, 0.0)
    assert loo["mean"].isel(time=3).isnull().all()


def test_per_cell_noise_against_brute_force_refits():
    da = data(2)
    noise_sd = xr.full_like(da, 0.05) + 0.1 * (da.x > 0.5)
    da[2, 1] = np.nan
    fit = da.kron.fit(KERNELS, noise_sd=noise_sd, progressbar=False)
    assert fit.spec.solver.name == "dense"
    _check(fit, da.values, noise_sd.values**2)


def test_masked_cells_are_left_out():
    da = data(3)
    mask = xr.ones_like(da, dtype=bool)
    mask[0, 0] = mask[4, 2] = False
    fit = da.kron.fit(KERNELS, mask=mask, progressbar=False)
    _check(fit, da.where(mask).values, 0.0)


def test_latent_fits_are_refused():
    counts = xr.DataArray(np.arange(20).reshape(5, 4) % 4, coords=data().coords, dims=("x", "time"))
    fit = counts.kron.fit(FIXED, likelihood="poisson", method="laplace", amplitude=1.0, progressbar=False)
    with pytest.raises(ValueError, match=r"Gaussian marginal fits.*az.loo"):
        fit.loo()


def test_iterative_map_fit_equals_the_dense_solver_and_brute_force_refits():
    """Beyond the dense limit: a MAP fit by the iterative solver on 300 cells, a fifth of them and a whole time
    step missing, gets the exact leave-one-out (the whole grid's block inverse, no CG): the dense solver's at
    the same hyperparameters and brute-force refits, to 1e-8."""
    x, t = np.linspace(0, 1, 20), np.linspace(0, 2, 15)
    da = data(4, x, t)
    da = da.where(np.random.default_rng(4).uniform(size=da.shape) > 0.2)
    da[:, 7] = np.nan
    fit = da.kron.fit(KERNELS, solver="iterative", progressbar=False)
    assert fit.spec.solver.name == "iterative" and fit.spec.factors[1].subset is not None
    loo = _check(fit, da.values, 0.0, x, t)
    p = _params(fit)
    kernels = {"x": xkron.ExpQuad(ls=p["ls_x"]), "time": xkron.Matern32(ls=p["ls_time"])}
    fixed = {k: p[k] for k in ("amplitude", "noise", "mean")}
    dense = da.kron.fit(kernels, solver="dense", **fixed, progressbar=False).loo()
    for name in ("mean", "sd", "log_density", "elpd_loo"):
        np.testing.assert_allclose(loo[name].values, dense[name].values, rtol=1e-8, atol=1e-10, err_msg=name)


@pytest.mark.slow
def test_iterative_nuts_fit_per_draw_and_its_cost_checked_for_all_draws(monkeypatch):
    x, t = np.linspace(0, 1, 8), np.linspace(0, 2, 6)
    da = data(6, x, t)
    da[2, 3] = da[5, 1] = np.nan
    fit = da.kron.fit(
        KERNELS, solver="iterative", method="nuts", draws=3, tune=20, chains=1, progressbar=False, random_seed=1
    )
    loo = fit.loo()
    for draw in range(3):
        p = {k: float(v.isel(chain=0, draw=draw)) for k, v in fit.params.items()}
        logd = brute_force(da.values, p, p["noise"] ** 2, x, t)[2]
        got = loo["log_density"].isel(chain=0, draw=draw).transpose("x", "time").values
        assert np.allclose(got, logd, rtol=1e-8, atol=1e-10, equal_nan=True)
    ll = fit.posterior["log_likelihood"].to_dataset()["temp"]  # ArviZ's group: the same, on the observed cells
    assert np.allclose(np.sort(ll.values.ravel()), np.sort(loo["log_density"].values[np.isfinite(loo["log_density"])]))
    monkeypatch.setattr(loo_module, "LOO_MAX_SECONDS", 1e-9)
    with pytest.raises(ValueError, match=r"2 missing cells.*at each of 3 draws.*cross_validate"):
        fit.loo()
    # Made with every fit, the ArviZ group is left out (and says why) where it would take more than a minute.
    monkeypatch.setattr(arviz_module, "WARN_SECONDS", 1e-9)
    tree = arviz_module.labelled_posterior(fit)
    assert "log_likelihood" not in tree.children
    note = tree.attrs["xkron_log_likelihood"]
    assert "would take about" in note and "fit.loo()" in note


def test_iterative_fit_with_per_cell_noise_is_refused_with_the_alternatives():
    da = data(4)
    da[1, 1] = np.nan
    noise_sd = xr.full_like(da, 0.05) + 0.1 * (da.x > 0.5)
    fit = da.kron.fit(
        FIXED, solver="iterative", noise_sd=noise_sd, amplitude=1.0, noise=0.1, mean=0.5, progressbar=False
    )
    with pytest.raises(ValueError, match=r"per-cell noise.*solver='dense'.*cross_validate"):
        fit.loo()


def test_loo_compares_fits():
    """A kernel closer to the data's smoothness scores higher; elpd is the sum of the cells' log densities."""
    da = data(5)
    smooth = da.kron.fit(KERNELS, progressbar=False).loo()
    rough = da.kron.fit({"x": xkron.ExpQuad(ls=0.02), "time": xkron.Matern32(ls=0.02)}, progressbar=False).loo()
    assert float(smooth["elpd_loo"]) > float(rough["elpd_loo"])
    assert float(rough["elpd_loo"]) == pytest.approx(float(rough["log_density"].sum()), abs=1e-10)
    assert isinstance(smooth, xr.Dataset) and xkron.KronFit.loo.__doc__
