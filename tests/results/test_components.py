"""``predict(components=...)``: the posterior mean of each additive part of a factor, against a dense GP.

The reference is ``E[f_j(x*) | y] = k_j(x*, X) (K + σ²I)⁻¹ (y − μ)`` with every covariance built
point by point from formulas written out in numpy; the parts must also add up to the mean less
the constant mean on every solver (complete grid, dense and iterative on a gappy grid, a Laplace
fit of counts, dask-backed coordinates).
"""

from __future__ import annotations

import cftime
import dask.array
import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.spec.seasonal import seasonal_kernel, year_length

T = np.arange(0.0, 30.0)
X = np.linspace(0.0, 2.0, 4)
P = {"ls_p": 1.0, "period": 7.0, "ls_env": 40.0, "ls_a": 2.0, "scale": 0.3, "ls_x": 1.2, "eta": 1.1, "sigma": 0.2}


def kernels():
    time = (xkron.Periodic(ls=P["ls_p"], period=P["period"]) * xkron.Matern52(ls=P["ls_env"])
            + P["scale"] * xkron.Matern32(ls=P["ls_a"]))  # fmt: skip
    return {"t": time, "x": xkron.ExpQuad(ls=P["ls_x"])}


def parts(t1, t2):
    """The two additive parts of the time kernel, written out."""
    d = np.subtract.outer(t1, t2)
    r, s = np.abs(d) / P["ls_env"], np.sqrt(3) * np.abs(d) / P["ls_a"]
    cycle = np.exp(-0.5 * (np.sin(np.pi * np.abs(d) / P["period"]) / P["ls_p"]) ** 2)
    cycle = cycle * (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)
    return [cycle, P["scale"] * (1 + s) * np.exp(-s)]


def k_x(x1, x2):
    return np.exp(-0.5 * (np.subtract.outer(x1, x2) / P["ls_x"]) ** 2)


def data(missing=0.0, seed=0):
    rng = np.random.default_rng(seed)
    tt, xx = (m.ravel() for m in np.meshgrid(T, X, indexing="ij"))
    K = P["eta"] ** 2 * sum(parts(tt, tt)) * k_x(xx, xx) + P["sigma"] ** 2 * np.eye(tt.size)
    y = 3.0 + np.linalg.cholesky(K) @ rng.standard_normal(tt.size)
    y[rng.random(y.size) < missing] = np.nan
    return xr.DataArray(y.reshape(T.size, X.size), coords={"t": T, "x": X}, dims=("t", "x"), name="v",
                        attrs={"units": "K"})  # fmt: skip


def fixed_fit(da, **kwargs):
    return xkron.fit(da, kernels(), amplitude=P["eta"], noise=P["sigma"], mean=3.0, progressbar=False, **kwargs)


@pytest.mark.parametrize(("missing", "solver"), [(0.0, "kronecker"), (0.25, "dense"), (0.25, "iterative")])
def test_each_part_equals_the_dense_gp_and_they_add_up(missing, solver):
    da = data(missing)
    fit = fixed_fit(da, solver=solver, **({"solver_options": {"tol": 1e-12}} if solver == "iterative" else {}))
    new_t, new_x = np.array([2.5, 29.0, 36.0]), np.array([0.4, 3.0])
    result = fit.predict(t=new_t, x=new_x, components="t")
    seen = np.isfinite(da.values.ravel())
    tt, xx = (m.ravel()[seen] for m in np.meshgrid(T, X, indexing="ij"))
    ts, xs = (m.ravel() for m in np.meshgrid(new_t, new_x, indexing="ij"))
    K = P["eta"] ** 2 * sum(parts(tt, tt)) * k_x(xx, xx) + P["sigma"] ** 2 * np.eye(tt.size)
    alpha = np.linalg.solve(K, da.values.ravel()[seen] - 3.0)
    expected = [P["eta"] ** 2 * (part * k_x(xs, xx)) @ alpha for part in parts(ts, tt)]
    assert list(result["component_name"].values) == ["Periodic*Matern52", "0.3*Matern32"]
    assert result["components"].dims == ("component", "t", "x") and result["components"].attrs["units"] == "K"
    np.testing.assert_allclose(result["components"].values.reshape(2, -1), expected, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result["components"].sum("component"), result["mean"] - 3.0, rtol=0, atol=1e-10)


def test_parts_of_a_laplace_fit_add_up_to_its_mean():
    counts = np.random.default_rng(1).poisson(np.exp(0.3 * np.sin(2 * np.pi * T / 7)))[:, None] * np.ones((1, 4))
    da = xr.DataArray(counts, coords={"t": T, "x": X}, dims=("t", "x"))
    fit = xkron.fit(da, kernels(), likelihood="poisson", method="laplace", amplitude=0.5, mean=0.0, progressbar=False)
    result = fit.predict(t=[3.5, 40.0], components=True)
    np.testing.assert_allclose(result["components"].sum("component"), result["mean"], rtol=0, atol=1e-10)


def test_dask_coordinates_give_lazy_parts():
    fit = fixed_fit(data())
    lazy = fit.predict(t=xr.DataArray(dask.array.from_array(np.linspace(0, 40, 9), chunks=3), dims="t"),
                       components="t")  # fmt: skip
    assert isinstance(lazy["components"].data, dask.array.Array)
    eager = fit.predict(t=np.linspace(0, 40, 9), components="t")
    np.testing.assert_allclose(lazy["components"].values, eager["components"].values, rtol=1e-12)


def test_components_refuse_what_they_cannot_give():
    fit = fixed_fit(data())
    with pytest.raises(ValueError, match=r"components='x': the 'x' factor's kernel ExpQuad is not a sum"):
        fit.predict(components="x")
    with pytest.raises(ValueError, match="not a dim of the fit"):
        fit.predict(components="z")
    with pytest.raises(ValueError, match="use scale='latent'"):
        fit.predict(components=True, noise=False, scale="response")
    plain = xkron.fit(data(), {"t": xkron.Matern32(ls=2.0), "x": xkron.ExpQuad(ls=1.0)}, amplitude=1.0, noise=0.2,
                      progressbar=False)  # fmt: skip
    with pytest.raises(ValueError, match="components=True needs exactly one factor whose kernel is a sum, found 0"):
        plain.predict(components=True)


# --------------------------------------------------------------------------- seasons in model calendars


@pytest.mark.parametrize(("calendar", "days"), [("360_day", 360.0), ("noleap", 365.0), ("standard", 365.2425)])
def test_the_seasonal_recipe_takes_the_year_of_the_data_calendar(calendar, days):
    times = xr.DataArray([cftime.datetime(2000, m, 15, calendar=calendar) for m in range(1, 13)], dims="time")
    assert year_length(times) == days
    assert seasonal_kernel(times).parts[0].parts[0].period == days
    with pytest.raises(ValueError, match="unknown calendar 'lunar'"):
        year_length("lunar")


def test_a_360_day_model_cycle_is_recovered_as_the_seasonal_part():
    """Monthly means of a 360-day model year: the seasonal part follows the true cycle, the anomalies the rest."""
    rng = np.random.default_rng(7)
    times = [cftime.datetime(2000 + m // 12, m % 12 + 1, 16, calendar="360_day") for m in range(96)]
    day = np.arange(96) * 30.0
    cycle = 2.0 * np.sin(2 * np.pi * day / 360.0)
    anomaly = np.convolve(rng.normal(0, 0.4, 100), np.ones(5) / 5, mode="same")[:96]
    y = 10 + cycle[:, None] + anomaly[:, None] + rng.normal(0, 0.1, (96, 3))
    da = xr.DataArray(y, coords={"time": times, "x": [0.0, 1.0, 2.0]}, dims=("time", "x"))
    fit = xkron.fit(da, {"time": seasonal_kernel(da["time"]), "x": xkron.ExpQuad()}, restarts=0, progressbar=False)
    assert float(fit.params["period_time"]) == 360.0
    parts = fit.predict(components="time")["components"].isel(x=1)
    seasonal = parts.sel(component_name="Periodic*Matern52")
    assert np.corrcoef(seasonal, cycle)[0, 1] > 0.97
    assert float(np.sqrt(np.mean((seasonal - seasonal.mean() - cycle) ** 2))) < 0.3
