"""Gappy grids for ``bench_missing.py`` (land plus clouds) and the two gap fillers it compares with.

Data (each a :class:`GappyGrid`, deterministic from its seed; dims ``("time", "latitude", "longitude")``):

- :func:`satellite`: a daily satellite-like SST grid (default 12 × 180 × 320 on a 0.02° grid): an
  exact GP draw (Matern32 in time, lengthscale 2 days × Matern52 in latitude, 0.3° × Matern52 in
  longitude, 0.4°; amplitude 1) plus noise of sd 0.2 and a constant 290 K, a static coastline
  covering 60% of the grid (:func:`land_mask`) and moving clouds (:func:`cloud_masks`) over 45% of
  the sea on average and 90% on the middle day.
- :func:`coarse`: real annual near-surface air temperature anomalies from iris-sample-data (the
  A1B run, 60 years × 20 latitudes × 36 longitudes), 17% synthetic static land, 10% of the rest
  missing at random and one 6 × 5 × 7 block.
- :func:`ostia`: the OSTIA monthly SST analysis from iris-sample-data (its own land) with clouds
  made as for ``satellite``, on its grid.

Scoring follows what oceanographers do with clouds: cloud-transplant cross-validation
(:func:`transplant`): the cloud mask of another day is copied onto a target day and the observed
pixels it newly covers are held out.

Gap fillers (baselines): :func:`linear_fill` (linear interpolation in space, step by step) and
:func:`dineof` (Beckers & Rixen 2003), thin wrappers of :mod:`xkron.baselines` (which tutorial 4
shows too). Everything else here is numpy/scipy only: the GP draw does not use xkron, so the
generating hyperparameters are an independent reference.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

import numpy as np
import xarray as xr
from scipy import ndimage

from xkron import baselines

__all__ = [
    "SATELLITE_TRUTH",
    "GappyGrid",
    "cloud_masks",
    "coarse",
    "dineof",
    "gp_draw",
    "land_mask",
    "linear_fill",
    "matern32",
    "matern52",
    "ostia",
    "satellite",
    "scores",
    "transplant",
]

DIMS = ("time", "latitude", "longitude")

SATELLITE_TRUTH = {
    "ls_time": 2.0,  # days, Matern32
    "ls_latitude": 0.3,  # degrees, Matern52
    "ls_longitude": 0.4,  # degrees, Matern52
    "amplitude": 1.0,
    "noise": 0.2,
    "mean": 290.0,
}
"""Generating hyperparameters of :func:`satellite` (named as ``xkron.fit`` names them)."""


@dataclass
class GappyGrid:
    """A grid with gaps, what was hidden and what to score against.

    Attributes
    ----------
    data : xarray.DataArray
        What a gap filler sees: NaN at land, clouds and held-out cells.
    truth : xarray.DataArray
        The complete values (the noisy observations for synthetic data, the real values otherwise);
        NaN on land.
    land : xarray.DataArray
        True on land, on ``(latitude, longitude)``.
    sets : dict of str to xarray.DataArray
        Scoring sets: cells hidden from ``data`` whose ``truth`` is known (e.g. ``"transplant"``).
    signal : xarray.DataArray or None
        The noiseless field, where known (synthetic data; the real values for OSTIA).
    sets_signal : dict of str to xarray.DataArray
        Scoring sets scored against ``signal`` (e.g. ``"clouds"``: every sea cell under the clouds).
    info : dict
        How the grid was built (fractions, seeds, transplant pairs).
    """

    data: xr.DataArray
    truth: xr.DataArray
    land: xr.DataArray
    sets: dict[str, xr.DataArray] = field(default_factory=dict)
    signal: xr.DataArray | None = None
    sets_signal: dict[str, xr.DataArray] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    @property
    def sea(self) -> np.ndarray:
        """Sea cells on ``(latitude, longitude)``, as a numpy mask."""
        return ~self.land.values

    def summary(self) -> str:
        """One line: shape, land fraction, observed cells, cloud fraction of the sea."""
        n_sea = int(self.sea.sum()) * self.data.sizes["time"]
        observed = int(self.data.notnull().sum())
        held = ", ".join(f"{k} {int(v.sum())}" for k, v in self.sets.items())
        return (
            f"{'x'.join(map(str, self.data.shape))} = {self.data.size} cells, land {float(self.land.mean()):.0%}, "
            f"observed {observed} ({1 - observed / n_sea:.0%} of the sea hidden); held out: {held or 'none'}"
        )


# --------------------------------------------------------------------------------------------- fields


def matern32(x: np.ndarray, ls: float) -> np.ndarray:
    """Matern-3/2 correlation matrix of the points ``x``."""
    r = np.abs(np.subtract.outer(x, x)) * np.sqrt(3.0) / ls
    return (1 + r) * np.exp(-r)


def matern52(x: np.ndarray, ls: float) -> np.ndarray:
    """Matern-5/2 correlation matrix of the points ``x``."""
    r = np.abs(np.subtract.outer(x, x)) * np.sqrt(5.0) / ls
    return (1 + r + r**2 / 3) * np.exp(-r)


def gp_draw(correlations, rng: np.random.Generator) -> np.ndarray:
    """An exact draw of ``N(0, ⊗ C_i)``: white noise rotated by each factor's eigen root ``Q Λ^½``."""
    z = rng.standard_normal([len(c) for c in correlations])
    for axis, c in enumerate(correlations):
        lam, q = np.linalg.eigh(c)
        root = q * np.sqrt(np.clip(lam, 0.0, None))
        z = np.moveaxis(np.tensordot(root, z, axes=([1], [axis])), 0, axis)
    return z


def _smooth(shape, sigma, rng, mode="reflect") -> np.ndarray:
    g = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode=mode)
    return g / g.std()


def land_mask(shape: tuple[int, int], fraction: float, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """A static coastline: one connected land mass covering ``fraction`` of the plane.

    A smooth random field (correlation length ``sigma`` cells, plus an eastward ramp that puts
    the land towards the east) is flooded from its highest cell: the land grows by the highest
    cell next to it until it covers ``fraction`` of the cells. The coast follows a level line of
    the field, with bays and peninsulas; the land is connected (it may enclose lakes).
    """
    g = _smooth(shape, sigma, rng) + np.linspace(-1.5, 1.5, shape[1])[None, :]
    n_land = round(fraction * g.size)
    land = np.zeros(shape, dtype=bool)
    start = np.unravel_index(np.argmax(g), shape)
    heap, queued, count = [(-g[start], start)], {start}, 0
    while heap and count < n_land:
        _, (i, j) = heapq.heappop(heap)
        land[i, j], count = True, count + 1
        for a, b in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1)):
            if 0 <= a < shape[0] and 0 <= b < shape[1] and (a, b) not in queued:
                queued.add((a, b))
                heapq.heappush(heap, (-g[a, b], (a, b)))
    return land


def cloud_masks(
    nt: int, sea: np.ndarray, rng, *, mean_cover=0.45, max_cover=0.9, sigma=12.0, drift=(3, 6), max_day=None
) -> np.ndarray:
    """Observed sea cells per time step under moving clouds, shape ``(nt, *sea.shape)``.

    Clouds are where a smooth random field exceeds a per-step quantile of its sea values, so that
    each step hides exactly its share of the sea: ``max_cover`` on ``max_day`` (default the middle
    step), the others equal and the average ``mean_cover``. The field drifts by ``drift`` cells
    (latitude, longitude) per step and slowly changes shape (two drifting fields, mixed with
    weights that rotate over the window).
    """
    ny, nx = sea.shape
    pad = (ny + abs(drift[0]) * nt, nx + abs(drift[1]) * nt)
    a, b = _smooth(pad, sigma, rng, "wrap"), _smooth(pad, sigma, rng, "wrap")
    max_day = nt // 2 if max_day is None else max_day
    cover = np.full(nt, (mean_cover * nt - max_cover) / max(nt - 1, 1))
    cover[max_day] = max_cover
    observed = np.zeros((nt, ny, nx), dtype=bool)
    for t in range(nt):
        i, j = abs(drift[0]) * t, abs(drift[1]) * t
        theta = 0.5 * np.pi * t / max(nt - 1, 1)
        c = np.cos(theta) * a[i : i + ny, j : j + nx] + np.sin(theta) * b[pad[0] - ny - i : pad[0] - i, j : j + nx]
        observed[t] = sea & (c < np.quantile(c[sea], 1 - cover[t]))
    return observed


def transplant(observed: np.ndarray, pairs) -> np.ndarray:
    """Cloud-transplant hold-out: for each ``(target, donor)`` the cells observed at ``target`` but not at ``donor``.

    Copying the donor step's clouds onto the target step hides these cells; they are scored
    against their known values (the ``truth``) after the gaps are filled.
    """
    held = np.zeros_like(observed)
    for target, donor in pairs:
        held[target] = observed[target] & ~observed[donor]
    return held


def transplant_pairs(nt: int, max_day: int, n: int = 3) -> list[tuple[int, int]]:
    """``n`` target steps spread over the window, each with a donor a third of the window away (never ``max_day``)."""
    targets = [int(t) - (t == max_day) for t in np.linspace(0, nt - 1, n + 2).round().astype(int)[1:-1]]
    pairs = []
    for t in sorted(set(targets)):
        donor = (t + max(nt // 3, 1)) % nt
        donor = donor if donor not in (t, max_day) else (donor + 1) % nt
        pairs.append((int(t), int(donor)))
    return pairs


def _grid(values, coords) -> xr.DataArray:
    return xr.DataArray(values, coords=coords, dims=DIMS)


def _finish(truth, observed, land_2d, coords, sets, signal=None, info=None, sets_signal=None) -> GappyGrid:
    """A :class:`GappyGrid` from numpy pieces: ``data`` is ``truth`` where observed and not held out."""
    hidden = np.zeros_like(observed)
    for mask in sets.values():
        hidden |= mask
    data = np.where(observed & ~hidden, truth, np.nan)
    sea = ~land_2d
    return GappyGrid(
        data=_grid(data, coords),
        truth=_grid(np.where(sea, truth, np.nan), coords),
        land=xr.DataArray(land_2d, coords={d: coords[d] for d in DIMS[1:]}, dims=DIMS[1:]),
        sets={k: _grid(v, coords) for k, v in sets.items()},
        signal=None if signal is None else _grid(np.where(sea, signal, np.nan), coords),
        sets_signal={k: _grid(v, coords) for k, v in (sets_signal or {}).items()},
        info=dict(info or {}),
    )


# --------------------------------------------------------------------------------------------- grids


def satellite(shape=(12, 180, 320), seed: int = 0, n_transplant: int = 3) -> GappyGrid:
    """The satellite-like grid of issue 13 (see the module docstring), with ``n_transplant`` transplanted days.

    ``data`` hides land, clouds and the transplanted cells (``sets["transplant"]``); ``sets_signal["clouds"]``
    are the sea cells under the original clouds (scored against ``signal``, the noiseless field).
    """
    rng = np.random.default_rng(seed)
    nt, ny, nx = shape
    t = SATELLITE_TRUTH
    days, lat, lon = np.arange(nt, dtype=float), 36.0 + 0.02 * np.arange(ny), 14.0 + 0.02 * np.arange(nx)
    f = t["amplitude"] * gp_draw(
        [matern32(days, t["ls_time"]), matern52(lat, t["ls_latitude"]), matern52(lon, t["ls_longitude"])], rng
    )
    y = t["mean"] + f + t["noise"] * rng.standard_normal(shape)
    land = land_mask((ny, nx), 0.6, 25.0 * min(ny / 180, nx / 320, 1) ** 0.5, rng)
    observed = cloud_masks(nt, ~land, rng, sigma=12.0)
    pairs = transplant_pairs(nt, nt // 2, n_transplant)
    sets = {"transplant": transplant(observed, pairs)}
    coords = {
        "time": np.datetime64("2024-07-01") + np.arange(nt).astype("timedelta64[D]"),
        "latitude": lat.round(2),
        "longitude": lon.round(2),
    }
    clouds = {"clouds": ~observed & ~land}  # scored against the noiseless field
    return _finish(y, observed, land, coords, sets, t["mean"] + f, {"seed": seed, "pairs": pairs}, clouds)


def _iris_path(name: str) -> str:
    try:
        import iris_sample_data
    except ImportError as err:
        raise RuntimeError(f"{name} needs the iris-sample-data package: pip install iris-sample-data") from err
    return f"{iris_sample_data.path}/{name}"


def coarse(shape=(60, 20, 36), seed: int = 0, start=(0, 10, 6)) -> GappyGrid:
    """Real annual air temperature anomalies (A1B run, iris-sample-data) with land, random gaps and a block.

    The file holds annual means (1860-2099) on a 1.25° × 1.875° grid over North America. The window
    starts at index ``start`` (default 1860, 27.5°N, 236.25°E), in the early years, where the
    warming trend is small; the anomaly is each cell's mean over the window removed (with annual
    data there is no calendar-month climatology to remove). Land is synthetic (17% of the
    (latitude, longitude) plane, connected), then 10% of the other cells go missing at random
    (``sets["random"]``) and one 6 × 5 × 7 block over sea (``sets["block"]``).
    """
    rng = np.random.default_rng(seed)
    decode = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(_iris_path("A1B_north_america.nc"), decode_times=decode) as ds:
        window = {d: slice(s, s + n) for d, s, n in zip(DIMS, start, shape, strict=True)}
        da = ds["air_temperature"].isel(window).load().astype(float)
    if da.shape != tuple(shape):
        raise ValueError(f"coarse window {shape} at {start} does not fit the file's grid {dict(ds.sizes)}")
    values = (da - da.mean("time")).transpose(*DIMS).values
    nt, ny, nx = shape
    land = land_mask((ny, nx), 0.17, 3.0, rng)
    sea = ~land
    observed = np.broadcast_to(sea, shape).copy()
    random_cells = observed & (rng.random(shape) < 0.1)
    block = np.zeros(shape, dtype=bool)
    bt, by, bx = 6, 5, 7
    free = ndimage.minimum_filter(sea.astype(int), size=(by, bx), mode="constant") > 0  # centres of all-sea boxes
    cy, cx = np.argwhere(free)[rng.integers(free.sum())]
    t0 = int(rng.integers(nt - bt))
    block[t0 : t0 + bt, cy - by // 2 : cy - by // 2 + by, cx - bx // 2 : cx - bx // 2 + bx] = True
    sets = {"random": random_cells & ~block, "block": block & sea}
    coords = {d: da[d].values for d in DIMS}
    return _finish(values, observed, land, coords, sets, info={"seed": seed, "block_start": (t0, int(cy), int(cx))})


def ostia(months: int = 12, seed: int = 0, first="2007-04", longitude: slice | None = None) -> GappyGrid:
    """OSTIA monthly SST (iris-sample-data, its own land) with clouds made as for :func:`satellite`.

    ``months`` from ``first`` (the whole record is 54 months from 2006-04), the whole equatorial band
    (18 × 432) unless ``longitude`` selects a window. Clouds (45% of the sea on average, 90% in the
    middle month) have a correlation length of 3 cells (about the fitted lengthscales of tutorial 04)
    and drift by 1 × 2 cells per month; three months are transplanted (``sets["transplant"]``), and
    ``sets_signal["clouds"]`` are the cells under the original clouds, whose real values are known.
    """
    rng = np.random.default_rng(seed)
    with xr.open_dataset(_iris_path("ostia_monthly.nc")) as ds:
        sst = ds["surface_temperature"].load().astype(float)
    times = sst["time"].values
    i0 = int(np.argmax(sst["time"].dt.strftime("%Y-%m").values == first))
    sst = sst.isel(time=slice(i0, i0 + months))
    if longitude is not None:
        sst = sst.sel(longitude=longitude)
    if sst.sizes["time"] != months:
        raise ValueError(f"ostia: {months} months from {first} go past the record ({len(times)} months)")
    sst = sst.transpose(*DIMS)
    land = ~sst.notnull().all("time").values
    observed = cloud_masks(months, ~land, rng, sigma=3.0, drift=(1, 2))
    pairs = transplant_pairs(months, months // 2, 3)
    sets = {"transplant": transplant(observed, pairs)}
    coords = {d: sst[d].values for d in DIMS}
    values, clouds = np.nan_to_num(sst.values), {"clouds": ~observed & ~land}  # OSTIA is complete: all scored
    return _finish(values, observed, land, coords, sets, values, {"seed": seed, "pairs": pairs}, clouds)


# --------------------------------------------------------------------------------------------- scoring


def scores(grid: GappyGrid, mean: np.ndarray, sd=None, sd_signal=None, z90: float = 1.6449) -> dict:
    """RMSE (and 90% interval coverage, given sds) of a filled field on each scoring set.

    ``mean``, ``sd`` and ``sd_signal`` are arrays on the grid: ``sd`` the predictive sd of a new
    observation (noise included), for ``sets`` (scored against ``truth``), ``sd_signal`` the sd of the
    field, for ``sets_signal`` (scored against ``signal``).
    """
    out = {}
    targets = [(k, v, grid.truth, sd) for k, v in grid.sets.items()]
    targets += [(k, v, grid.signal, sd_signal) for k, v in grid.sets_signal.items()]
    for name, where, truth, spread in targets:
        w = where.values
        err = mean[w] - truth.values[w]
        out[f"rmse_{name}"] = float(np.sqrt(np.mean(err**2)))
        if spread is not None:
            out[f"cover90_{name}"] = float(np.mean(np.abs(err) <= z90 * spread[w]))
        out[f"n_{name}"] = int(w.sum())
    return out


# --------------------------------------------------------------------------------------------- baselines


def _sea(data: xr.DataArray, sea: np.ndarray) -> xr.DataArray:
    return xr.DataArray(sea, coords={d: data[d] for d in DIMS[1:]}, dims=DIMS[1:])


def linear_fill(data: xr.DataArray, sea: np.ndarray) -> np.ndarray:
    """:func:`xkron.baselines.linear_fill` of the sea cells, step by step: linear in (latitude, longitude)."""
    return baselines.linear_fill(data, mask=_sea(data, sea)).values


def dineof(data: xr.DataArray, sea: np.ndarray, **options) -> tuple[np.ndarray, dict]:
    """:func:`xkron.baselines.dineof` of the sea cells: the filled values and ``k``, ``cv_rmse``, ``iterations``."""
    filled = baselines.dineof(data, mask=_sea(data, sea), **options)
    info = {
        k: filled.attrs[f"dineof_{v}"]
        for k, v in (("k", "modes"), ("cv_rmse", "cv_rmse"), ("iterations", "iterations"))
    }
    return filled.values, info
