"""Issue 16 item 3: ``fit.plot()`` and ``pred.kron.plot_map()``.

What is drawn is read back from the matplotlib artists and checked against independent numbers:
the prior curves against scipy's densities, the MAP and posterior-mean lines against ``params``,
the KDEs' areas, INLA's stems against its weights, the fitted-vs-observed points against
``predict()`` and the data, the maps' cells against the prediction. PNGs are rendered with Agg
and read back (non-blank, many colours).
"""

from __future__ import annotations

import importlib.machinery
import sys
import types

import matplotlib
import numpy as np
import pytest
import scipy.stats as st
import xarray as xr
from matplotlib.axes import Axes
from pymc_extras.prior import Prior

import xkron
from xkron.results.plots import map_dims, map_figure

matplotlib.use("Agg")

KERNELS = {"x": "ExpQuad", "time": "Matern32"}


def _data():
    x, t = np.linspace(0, 1, 6), np.arange(5.0)
    rng = np.random.default_rng(0)
    y = np.sin(3 * x)[:, None] + np.cos(t)[None, :] + 0.1 * rng.standard_normal((6, 5))
    y[2, 3] = np.nan
    coords = {"x": ("x", x, {"units": "km"}), "time": ("time", t, {"units": "days"})}
    return xr.DataArray(y, coords=coords, dims=("x", "time"), name="tas", attrs={"units": "K"})


@pytest.fixture(scope="module")
def map_fit():
    return _data().kron.fit(KERNELS, progressbar=False)


def _png_check(path):
    """The PNG at ``path`` is an image with many distinct colours (not blank)."""
    import matplotlib.image

    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 400
    colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
    assert len(colours) > 50 and image.std() > 0.05


SCIPY = {
    "LogNormal": lambda p: st.lognorm(s=p["sigma"], scale=np.exp(p["mu"])),
    "HalfNormal": lambda p: st.halfnorm(scale=p["sigma"]),
    "Normal": lambda p: st.norm(p["mu"], p["sigma"]),
}


def _vertical_at(ax) -> list[float]:
    return [line.get_xdata()[0] for line in ax.lines if len(set(np.atleast_1d(line.get_xdata()))) == 1]


def test_map_fit_plot_priors_and_map(map_fit, tmp_path):
    fig = map_fit.plot(path=tmp_path / "fit.png")
    names = list(map_fit.params.data_vars)
    assert len(fig.axes) == len(names) + 1
    for ax, name in zip(fig.axes, names, strict=False):
        prior, var = map_fit.spec.priors[name], map_fit.params[name]
        assert ax.get_title() == name and ax.get_xlabel() == f"{name} [{var.attrs['units']}]"
        curve = ax.lines[0]
        x, density = curve.get_xdata(), curve.get_ydata()
        np.testing.assert_allclose(density, SCIPY[prior.distribution](prior.parameters).pdf(x), rtol=1e-8, atol=1e-12)
        assert _vertical_at(ax) == [float(var)]
        assert x.min() <= float(var) <= x.max()
    _png_check(tmp_path / "fit.png")


def test_fitted_against_observed_panel(map_fit):
    ax = map_fit.plot().axes[-1]
    points = ax.collections[0].get_offsets()
    data = map_fit.data
    mean = map_fit.predict()["mean"].transpose(*data.dims)
    observed = np.isfinite(data.values)
    np.testing.assert_array_equal(points[:, 0], data.values[observed])
    np.testing.assert_allclose(points[:, 1], mean.values[observed], rtol=1e-12)
    assert len(points) == 29 and ax.get_title() == "fitted vs observed (29 cells)"
    assert ax.get_xlabel() == "observed tas [K]" and ax.get_ylabel() == "posterior mean [K]"


def test_fixed_parameters_get_no_panel():
    fit = _data().kron.fit(KERNELS, amplitude=1.0, noise=0.1, progressbar=False)
    assert [ax.get_title() for ax in fit.plot().axes[:-1]] == ["ls_x", "ls_time", "mean"]


@pytest.mark.slow
def test_nuts_fit_plot_posteriors(tmp_path):
    fit = _data().kron.fit(KERNELS, method="nuts", draws=50, tune=50, chains=2, random_seed=1, progressbar=False)
    fig = fit.plot(path=tmp_path / "nuts.png")
    assert len(fig.axes) == len(fit.params.data_vars) + 1
    for ax, name in zip(fig.axes, fit.params.data_vars, strict=False):
        kde = ax.lines[0]
        x, y = kde.get_xdata(), kde.get_ydata()
        assert abs(np.trapezoid(y, x) - 1) < 0.02  # a density
        draws = fit.params[name].values
        assert x.min() <= np.quantile(draws, 0.02) and x.max() >= np.quantile(draws, 0.98)  # of these draws
        np.testing.assert_allclose(_vertical_at(ax), [draws.mean()], rtol=1e-12)
    _png_check(tmp_path / "nuts.png")


def test_inla_fit_plot_stems_and_response_scale():
    rng = np.random.default_rng(5)
    t, x = np.linspace(0, 7, 6), np.linspace(0, 5, 5)
    cov = np.kron(np.exp(-0.5 * np.subtract.outer(t, t) ** 2 / 4.0), np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 2.25))
    f = 0.8 + 0.8 * np.linalg.cholesky(cov + 1e-8 * np.eye(30)) @ rng.normal(size=30)
    exposure = 2.0
    da = xr.DataArray(rng.poisson(exposure * np.exp(f)).reshape(6, 5).astype(float), coords={"time": t, "x": x},
                      name="n")  # fmt: skip
    kernels = {"time": xkron.ExpQuad(ls=Prior("InverseGamma", alpha=5.0, beta=8.0)), "x": xkron.ExpQuad(ls=1.5)}
    fit = xkron.fit(da, kernels, likelihood=xkron.Poisson(exposure=exposure), method="inla", mean=0.8,
                    amplitude=Prior("HalfNormal", sigma=1.0), progressbar=False)  # fmt: skip
    fig = fit.plot()
    w = fit.draw_weights
    for ax, name in zip(fig.axes[:-1], ["ls_time", "amplitude"], strict=True):
        segments = ax.collections[0].get_segments()
        design = fit.params[name].transpose("chain", "draw").values.ravel()
        np.testing.assert_allclose([s[0, 0] for s in segments], design)
        np.testing.assert_allclose([s[1, 1] for s in segments], w)
        np.testing.assert_allclose(_vertical_at(ax), [np.sum(w * design) / np.sum(w)], rtol=1e-12)
    ax = fig.axes[-1]
    points = ax.collections[0].get_offsets()
    np.testing.assert_allclose(points[:, 0], da.values.ravel() / exposure)
    response = fit.predict(scale="response")["mean"].transpose("time", "x").values.ravel()
    np.testing.assert_allclose(points[:, 1], response, rtol=1e-12)
    assert ax.get_xlabel() == "observed n per unit exposure"


@pytest.fixture(scope="module")
def pred():
    """A prediction on (time, latitude, longitude) with CF attributes, as ``predict`` writes them."""
    rng = np.random.default_rng(1)
    coords = {
        "time": np.array(["2001-01-01", "2002-01-01", "2003-01-01"], dtype="datetime64[ns]"),
        "latitude": ("latitude", np.linspace(30, 60, 7), {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": ("longitude", np.linspace(0, 40, 9), {"units": "degrees_east", "standard_name": "longitude"}),
    }
    dims = ("time", "latitude", "longitude")
    return xr.Dataset(
        {
            "mean": (dims, 280 + rng.normal(size=(3, 7, 9)), {"units": "K", "long_name": "posterior mean of t"}),
            "sd": (dims, rng.uniform(0.1, 1, size=(3, 7, 9)), {"units": "K", "long_name": "posterior sd of t"}),
        },
        coords=coords,
    )


def _meshes(fig):
    return [ax.collections[0] for ax in fig.axes[:2]]


def test_plot_map_last_time_step_with_units(pred, tmp_path):
    fig = pred.kron.plot_map(path=tmp_path / "map.png")
    assert len(fig.axes) == 4  # two maps, two colour bars
    for mesh, name in zip(_meshes(fig), ("mean", "sd"), strict=True):
        np.testing.assert_array_equal(np.asarray(mesh.get_array()).ravel(), pred[name].isel(time=-1).values.ravel())
    for ax in fig.axes[:2]:
        assert ax.get_xlabel().startswith("longitude") and ax.get_ylabel().startswith("latitude")
        assert "2003-01-01" in ax.get_title()
    labels = [ax.get_ylabel() for ax in fig.axes[2:]]
    assert labels == ["posterior mean of t [K]", "posterior sd of t [K]"]
    _png_check(tmp_path / "map.png")


def test_plot_map_sel_and_isel(pred):
    first = pred.kron.plot_map(sel={"time": "2001-01-01"})
    np.testing.assert_array_equal(np.asarray(_meshes(first)[0].get_array()).ravel(), pred["mean"][0].values.ravel())
    middle = pred.kron.plot_map(isel={"time": 1})
    np.testing.assert_array_equal(np.asarray(_meshes(middle)[1].get_array()).ravel(), pred["sd"][1].values.ravel())


def test_plot_map_finds_longitude_and_latitude_in_any_order(pred):
    shuffled = pred.transpose("latitude", "longitude", "time")
    assert map_dims(shuffled["mean"]) == ("latitude", "longitude")
    fig = shuffled.kron.plot_map()
    np.testing.assert_array_equal(np.asarray(_meshes(fig)[0].get_array()).ravel(), pred["mean"][-1].values.ravel())


def test_plot_map_of_dask_data_reads_only_the_slice(pred):
    lazy = pred.chunk({"time": 1})
    fig = lazy.kron.plot_map()
    np.testing.assert_array_equal(np.asarray(_meshes(fig)[0].get_array()).ravel(), pred["mean"][-1].values.ravel())
    assert lazy["mean"].chunks is not None


def test_plot_map_errors(pred):
    with pytest.raises(ValueError, match=r"sel: \['level'\] are not dims of the prediction's mean"):
        pred.kron.plot_map(sel={"level": 850})
    with pytest.raises(ValueError, match=r"lacks \['sd'\] \(it has \['mean'\]\)"):
        pred[["mean"]].kron.plot_map()
    points = pred.isel(latitude=0, time=0)
    with pytest.raises(ValueError, match=r"a map needs two dims, and 'mean' has \['longitude'\]"):
        map_figure(points)


def test_plot_map_draws_coastlines_where_cartopy_is_importable(pred, monkeypatch):
    """Where cartopy imports, the maps are drawn on its PlateCarree axes with coastlines (a stand-in
    cartopy here: the real one is an optional extra that the tests do not install)."""
    calls = []

    class PlateCarree:
        def _as_mpl_axes(self):
            return GeoAxes, {}

    class GeoAxes(Axes):
        name = "fake_geo"

        def coastlines(self, **kwargs):
            calls.append(("coastlines", self))

        def pcolormesh(self, *args, transform=None, **kwargs):
            calls.append(("transform", type(transform).__name__))
            return super().pcolormesh(*args, **kwargs)

    cartopy = types.ModuleType("cartopy")
    cartopy.__spec__ = importlib.machinery.ModuleSpec("cartopy", None)
    crs = types.ModuleType("cartopy.crs")
    crs.PlateCarree = PlateCarree
    cartopy.crs = crs
    monkeypatch.setitem(sys.modules, "cartopy", cartopy)
    monkeypatch.setitem(sys.modules, "cartopy.crs", crs)
    fig = pred.kron.plot_map()
    maps = fig.axes[:2]
    assert all(isinstance(ax, GeoAxes) for ax in maps)
    assert [c for c in calls if c[0] == "coastlines"] == [("coastlines", ax) for ax in maps]
    assert [c for c in calls if c[0] == "transform"] == [("transform", "PlateCarree")] * 2


def test_plot_map_without_cartopy_has_plain_axes(pred, monkeypatch):
    monkeypatch.setitem(sys.modules, "cartopy", None)  # import cartopy fails
    fig = pred.kron.plot_map()
    assert all(type(ax) is Axes for ax in fig.axes[:2])
