"""Quick-look plots with matplotlib: a fit's hyperparameters and fitted values, a prediction's map.

:func:`fit_figure` (``fit.plot()``) draws one small panel per free hyperparameter: its posterior
density (ArviZ's KDE of the draws; INLA's weighted design points as stems) for fits with draws,
or its prior density with the MAP marked for point fits; and a last panel of the posterior mean
at the observed cells against the data, with the 1:1 line. :func:`map_figure`
(``pred.kron.plot_map()``) draws a prediction's mean and sd side by side with xarray's own
``.plot`` and colour bars labelled with their units, with coastlines where ``cartopy`` is
installed (the ``maps`` extra). Both return a :class:`matplotlib.figure.Figure` made without
pyplot (no global state; Jupyter shows it, ``fig.savefig`` or ``path=`` writes it) and import
matplotlib only when called.
"""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Hashable, Mapping

import numpy as np
import xarray as xr

from xkron.io.atomic import atomic_write
from xkron.results.summary import param_units
from xkron.settings import PLOT_MAX_POINTS, PRIOR_PLOT_DRAWS

__all__ = ["fit_figure", "map_dims", "map_figure", "save_png"]

PANEL_COLUMNS = 4
"""Panels per row of :func:`fit_figure`."""

_LON = ("longitude", "lon", "x")
_LAT = ("latitude", "lat", "y")


def _figure(figsize):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path) -> None:
    """Write ``fig`` to ``path`` as PNG, atomically (a complete file or none)."""
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)


def _label(fit, name: str) -> str:
    units = param_units(fit, name)
    return f"{name} [{units}]" if units else name


def _prior_density(prior, value: float) -> tuple[np.ndarray, np.ndarray]:
    """A prior's density on a grid spanning its central 99% and ``value``: exact (PyMC's logp) for a plain
    random variable, ArviZ's KDE of prior draws for a transformed or hierarchical one."""
    import arviz_stats
    import pymc as pm

    with pm.Model() as model:
        var = prior.create_variable("x")
    draws = np.asarray(pm.draw(var, draws=PRIOR_PLOT_DRAWS, random_seed=0), dtype=float).ravel()
    low, high = np.quantile(draws, [0.005, 0.995])
    low, high = min(low, value), max(high, value)
    pad = 0.05 * (high - low or abs(value) or 1.0)
    grid = np.linspace(low - pad if low - pad > 0 or low < 0 else low, high + pad, 400)
    if var in model.free_RVs and not model.basic_RVs[:-1]:
        density = np.exp(pm.logp(var, grid).eval())
        return grid, np.where(np.isfinite(density), density, 0.0)
    grid, density, _ = arviz_stats.kde(draws)
    return np.asarray(grid), np.asarray(density)


def _posterior_panel(ax, fit, name: str) -> None:
    draws = fit.params[name]
    weights = fit.draw_weights
    if weights is not None:  # INLA: a handful of weighted design points, not a sample
        x = np.asarray(draws.transpose("chain", "draw").values, dtype=float).ravel()
        ax.vlines(x, 0, weights, color="C0", lw=2)
        ax.set_ylabel("INLA weight")
    else:
        import arviz_stats

        kde = arviz_stats.kde(draws)
        ax.plot(kde.sel(plot_axis="x").values, kde.sel(plot_axis="y").values, color="C0", label="posterior")
        ax.set_ylabel("posterior density")
    mean = float(
        draws.weighted(fit.posterior["sample_stats"]["weight"]).mean() if weights is not None else draws.mean()
    )
    ax.axvline(mean, color="C1", ls="--", label="mean")


def _map_panel(ax, fit, name: str) -> None:
    value = float(fit.params[name])
    grid, density = _prior_density(fit.spec.priors[name], value)
    ax.plot(grid, density, color="C0", label="prior")
    ax.axvline(value, color="C3", label="MAP")
    ax.set_ylabel("prior density")


def _observed_and_fitted(fit) -> tuple[np.ndarray, np.ndarray, str, str]:
    """The data at the observed cells (per unit exposure or per trial on a log or logit link), the posterior
    mean there (response scale), and the axes' labels."""
    lik, data = fit.spec.likelihood, fit.data
    name = data.name or "data"
    units = data.attrs.get("units", "")
    if lik.link == "identity":
        fitted = fit.predict()["mean"]
        xlabel, ylabel = f"observed {name}", "posterior mean"
        if units:
            xlabel, ylabel = f"{xlabel} [{units}]", f"{ylabel} [{units}]"
    else:
        fitted = fit.predict(scale="response")["mean"]
        key, what = ("exposure", "unit exposure") if lik.link == "log" else ("trials", "trial")
        per = getattr(lik, key, None)
        xlabel, ylabel = f"observed {name}", "posterior mean (response scale)"
        if per is not None:
            if not isinstance(per, xr.DataArray):  # a number, or the cells' values over the factor dims
                per = float(per) if np.ndim(per) == 0 else xr.DataArray(np.asarray(per), dims=fit.dims)
            data = data / per
            xlabel += f" per {what}"
    observed = data.notnull()
    if fit.mask is not None:
        observed = observed & fit.mask
    y, f, keep = xr.broadcast(data, fitted.transpose(*data.dims), observed)
    keep = np.asarray(keep.values, dtype=bool)
    return np.asarray(y.values, dtype=float)[keep], np.asarray(f.values, dtype=float)[keep], xlabel, ylabel


def _fitted_panel(ax, fit) -> None:
    y, f, xlabel, ylabel = _observed_and_fitted(fit)
    if y.size > PLOT_MAX_POINTS:
        ax.hexbin(y, f, gridsize=60, mincnt=1, bins="log", cmap="Blues")
    else:
        ax.scatter(y, f, s=8, alpha=0.6, color="C0", linewidths=0)
    lims = [min(y.min(), f.min()), max(y.max(), f.max())] if y.size else [0, 1]
    ax.plot(lims, lims, color="k", lw=1, label="1:1")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(f"fitted vs observed ({y.size:,} cells)")
    ax.legend(fontsize="small")


def fit_figure(fit, *, path=None, figsize=None):
    """Hyperparameters and fitted values of a fit (``fit.plot()``), as a matplotlib Figure.

    One panel per free hyperparameter (x-axis in its units): for fits with posterior draws
    (NUTS, ADVI) ArviZ's KDE of the draws and their mean, for INLA the design points as stems of
    height their weight; for point fits (MAP, Laplace) the prior's density (exact, from PyMC)
    with the MAP marked, which shows a MAP pushed into a prior's tail. A last panel: the
    posterior mean at every observed cell against the data, with the 1:1 line (on the response
    scale, per unit exposure or per trial, for log and logit links). The posterior mean is a
    prediction on the training grid: dask-backed data are computed for it.

    Parameters
    ----------
    fit : xkron.KronFit
    path : path, optional
        Also write the figure there as PNG (atomically).
    figsize : (float, float), optional
        Default: 3.2 × 2.6 inches per panel.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 6)
    >>> da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)), coords={"a": x, "b": x}, name="t")
    >>> fig = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, progressbar=False).plot()
    >>> [ax.get_title() for ax in fig.axes][-1]
    'fitted vs observed (36 cells)'
    """
    drawn = "chain" in fit.params.dims
    names = [n for n, v in fit.params.items() if ("chain" in v.dims if drawn else v.attrs.get("prior") != "fixed")]
    ncols = min(PANEL_COLUMNS, len(names) + 1)
    nrows = math.ceil((len(names) + 1) / ncols)
    fig = _figure(figsize or (3.2 * ncols, 2.6 * nrows))
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, name in zip(axes, names, strict=False):
        (_posterior_panel if drawn else _map_panel)(ax, fit, name)
        ax.set_xlabel(_label(fit, name))
        ax.set_title(name)
        ax.set_yticks([])
    if names:
        axes[0].legend(fontsize="small")
    _fitted_panel(axes[len(names)], fit)
    for ax in axes[len(names) + 1 :]:
        fig.delaxes(ax)
    what = {True: "posterior", False: "prior density and MAP"}[drawn]
    fig.suptitle(f"{fit.data.name or 'data'}: {fit.method} fit, hyperparameters ({what})")
    if path is not None:
        save_png(fig, path)
    return fig


def _cf_axis(da: xr.DataArray, dim: Hashable) -> str | None:
    """``"X"``/``"Y"`` for a longitude/latitude (or projected x/y) dim by its CF attributes or name."""
    attrs = da[dim].attrs if dim in da.coords else {}
    if attrs.get("axis") in ("X", "Y"):
        return attrs["axis"]
    standard = attrs.get("standard_name", "")
    units = str(attrs.get("units", ""))
    if standard in ("longitude", "projection_x_coordinate") or units.startswith("degrees_east"):
        return "X"
    if standard in ("latitude", "projection_y_coordinate") or units.startswith("degrees_north"):
        return "Y"
    name = str(dim).lower()
    return "X" if name in _LON else "Y" if name in _LAT else None


def map_dims(da: xr.DataArray) -> tuple[Hashable, Hashable]:
    """The ``(y, x)`` dims of a map of ``da``: its CF longitude/latitude (or x/y) dims, else its last two dims.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((2, 3, 4)), dims=("lat", "lon", "time"))
    >>> map_dims(da)
    ('lat', 'lon')
    """
    if da.ndim < 2:
        raise ValueError(
            f"a map needs two dims, and {da.name!r} has {list(da.dims)}: predict on a grid (not at scattered points)"
        )
    axes = {_cf_axis(da, d): d for d in da.dims}
    if "X" in axes and "Y" in axes:
        return axes["Y"], axes["X"]
    return da.dims[-2], da.dims[-1]


def _select(ds: xr.Dataset, sel: Mapping | None, isel: Mapping | None) -> xr.Dataset:
    """``ds`` at ``sel``/``isel`` (unknown dims refused first), then the last step of every dim beyond the map's."""
    for name, given in (("sel", sel), ("isel", isel)):
        unknown = sorted(set(given or {}) - set(ds["mean"].dims), key=str)
        if unknown:
            raise ValueError(f"{name}: {unknown} are not dims of the prediction's mean {list(ds['mean'].dims)}")
    ds = ds.isel(isel or {}).sel(sel or {})
    y, x = map_dims(ds["mean"])
    last = {d: -1 for d in ds["mean"].dims if d not in (y, x)}
    return ds.isel(last)


def _is_longitude(da: xr.DataArray, dim: Hashable) -> bool:
    attrs = da[dim].attrs if dim in da.coords else {}
    units = str(attrs.get("units", ""))
    return attrs.get("standard_name") == "longitude" or units.startswith("degrees_e") or str(dim).lower() in _LON[:2]


def _geo_axes(fig, n: int, x: Hashable, ds: xr.Dataset):
    """``n`` axes in a row: on a PlateCarree map with coastlines where cartopy is installed and ``x`` is a
    longitude, else plain ones; and the keywords the plots then need (the data's ``transform``)."""
    if _is_longitude(ds["mean"], x) and importlib.util.find_spec("cartopy") is not None:
        import cartopy.crs as ccrs

        axes = fig.subplots(1, n, subplot_kw={"projection": ccrs.PlateCarree()}, squeeze=False).ravel()
        for ax in axes:
            ax.coastlines(linewidth=0.6)
        return axes, {"transform": ccrs.PlateCarree()}
    return fig.subplots(1, n, squeeze=False).ravel(), {}


def map_figure(ds: xr.Dataset, *, sel: Mapping | None = None, isel: Mapping | None = None, path=None,
               figsize=None):  # fmt: skip
    """A prediction's mean and sd side by side (``pred.kron.plot_map()``), as a matplotlib Figure.

    Drawn by xarray's ``.plot`` on the map's dims (:func:`map_dims`: CF longitude/latitude where
    they are found, else the last two dims), each with matplotlib's colour bar labelled with the
    variable's ``long_name`` and units. Other dims are selected by ``sel`` (labels) and ``isel``
    (positions), and any left take their last step (the last time step), named in the titles. With
    ``cartopy`` installed (``pip install 'xkron[maps]'``) longitude/latitude maps get coastlines;
    without it the same maps without them. Only the slice drawn is computed from dask data.

    Parameters
    ----------
    ds : xarray.Dataset
        A prediction: ``mean`` and ``sd`` (:meth:`xkron.KronFit.predict`, ``xkron predict``).
    sel, isel : mapping, optional
        Points of the dims beyond the map's, by label or position (``sel={"time": "2099"}``).
    path : path, optional
        Also write the figure there as PNG (atomically).
    figsize : (float, float), optional
        Default 12 × 4.5 inches.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> x = np.linspace(0, 1, 4)
    >>> pred = xr.Dataset({"mean": (("t", "lat", "lon"), np.zeros((2, 4, 4)), {"units": "K"}),
    ...                    "sd": (("t", "lat", "lon"), np.ones((2, 4, 4)), {"units": "K"})},
    ...                   coords={"t": [0, 1], "lat": x, "lon": x})
    >>> fig = map_figure(pred)
    >>> [ax.get_title() for ax in fig.axes[:2]]
    ['t = 1', 't = 1']
    """
    missing = [v for v in ("mean", "sd") if v not in ds.data_vars]
    if missing:
        raise ValueError(
            f"a prediction map needs the variables 'mean' and 'sd' (KronFit.predict, xkron predict); "
            f"this Dataset lacks {missing} (it has {list(ds.data_vars)})"
        )
    ds = _select(ds, sel, isel)
    y, x = map_dims(ds["mean"])
    fig = _figure(figsize or (12, 4.5))
    axes, extra = _geo_axes(fig, 2, x, ds)
    for ax, name, cmap in zip(axes, ("mean", "sd"), ("viridis", "magma"), strict=True):
        ds[name].plot(ax=ax, x=x, y=y, cmap=cmap, **extra)
    if path is not None:
        save_png(fig, path)
    return fig
