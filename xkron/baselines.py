"""Simple gap fillers to score a GP against: linear interpolation in space and DINEOF.

Oceanographers fill cloud gaps with these (DINEOF: Beckers & Rixen 2003; linear interpolation is
the floor any method must beat). Neither gives an uncertainty. Both take a labelled grid with NaN
at the missing cells and return it filled, on the same coordinates; cells where ``mask`` is False
(land) stay NaN. They need the data in memory: a dask-backed array is refused rather than
computed behind the caller's back.
"""

from __future__ import annotations

import numpy as np
import scipy.interpolate
import xarray as xr

from xkron.linalg.lazy import is_dask

__all__ = ["dineof", "linear_fill"]


def _prepare(data: xr.DataArray, mask, first: tuple[str, ...]) -> tuple[xr.DataArray, np.ndarray]:
    """``data`` with the ``first`` dims leading, and the mask broadcast to it (True: fill)."""
    if is_dask(data.data):
        raise TypeError("the baselines need the data in memory: call data.load() first")
    missing = [d for d in first if d not in data.dims]
    if missing:
        raise ValueError(f"dims {missing} are not in the data; its dims are {tuple(data.dims)}")
    data = data.transpose(*first, ...)
    if mask is None:
        return data, np.ones(data.shape, dtype=bool)
    return data, xr.broadcast(mask.astype(bool), data)[0].transpose(*data.dims).values


def linear_fill(data: xr.DataArray, space=("latitude", "longitude"), mask: xr.DataArray | None = None) -> xr.DataArray:
    """Fill each slice's NaN cells by linear interpolation over the two ``space`` dims.

    ``scipy.interpolate.griddata`` on the Delaunay triangulation of the slice's observed cells
    (coordinates as they are, e.g. degrees), and the nearest observed cell outside their hull. A
    slice with fewer than 3 observed cells takes the nearest one (or stays NaN without any).

    Examples
    --------
    >>> x = np.arange(4.0)
    >>> plane = xr.DataArray(np.add.outer(x, 2 * x), coords={"lat": x, "lon": x}, dims=("lat", "lon"))
    >>> filled = linear_fill(plane.where(plane != 5.0), space=("lat", "lon"))
    >>> float(filled.sel(lat=1, lon=2))
    5.0
    """
    ordered, keep = _prepare(data, mask, tuple(space))
    lat, lon = np.meshgrid(ordered[space[0]].values, ordered[space[1]].values, indexing="ij")
    points = np.column_stack([lat.ravel(), lon.ravel()])
    values = ordered.values.reshape(lat.size, -1)
    fill = keep.reshape(lat.size, -1)
    out = np.full(values.shape, np.nan)
    for j in range(values.shape[1]):
        seen = np.isfinite(values[:, j])
        if not seen.any():
            continue
        at = points[fill[:, j]]
        filled = scipy.interpolate.griddata(points[seen], values[seen, j], at, method="nearest")
        if seen.sum() >= 3:
            linear = scipy.interpolate.griddata(points[seen], values[seen, j], at, method="linear")
            filled = np.where(np.isfinite(linear), linear, filled)
        out[fill[:, j], j] = filled
    return ordered.copy(data=out.reshape(ordered.shape)).transpose(*data.dims)


def _rank_k(x: np.ndarray, k: int) -> np.ndarray:
    """Best rank-``k`` approximation of ``x`` (truncated SVD through the Gram matrix of the shorter side)."""
    if x.shape[0] > x.shape[1]:
        return _rank_k(x.T, k).T
    _, u = np.linalg.eigh(x @ x.T)
    u = u[:, ::-1][:, :k]
    return u @ (u.T @ x)


def _iterate(a, seen, k, start, tol, max_iter):
    """EM-like fixed point at ``k`` modes: replace the unseen entries by the rank-``k`` reconstruction."""
    x = np.where(seen, a, start)
    scale = max(float(np.sqrt(np.mean(a[seen] ** 2))), 1e-300)
    for it in range(1, max_iter + 1):
        r = _rank_k(x, k)
        change = float(np.sqrt(np.mean((r[~seen] - x[~seen]) ** 2))) if (~seen).any() else 0.0
        x = np.where(seen, a, r)
        if change <= tol * scale:
            return x, it
    return x, max_iter


def dineof(
    data: xr.DataArray,
    time: str = "time",
    mask: xr.DataArray | None = None,
    *,
    k_max: int | None = None,
    cv_fraction: float = 0.03,
    tol: float = 1e-3,
    max_iter: int = 300,
    seed: int = 0,
) -> xr.DataArray:
    """DINEOF gap filling (Beckers & Rixen 2003): iterative truncated SVD of the time × space matrix.

    Beckers, J.-M. and Rixen, M. (2003), EOF calculations and data filling from incomplete
    oceanographic datasets, J. Atmos. Oceanic Technol. 20, 1839-1856.

    The cells to fill (``mask``, default all) form a matrix ``X`` (``time`` × the other dims). Its
    mean over the observed entries is removed and the missing entries start at 0 (the mean). At
    ``k`` modes, the missing entries are replaced by the rank-``k`` reconstruction of the current
    matrix until they change by less than ``tol`` (relative to the data's rms). The number of
    modes is chosen by internal cross-validation: a random ``cv_fraction`` of the observed entries
    is held out too, and modes are added one at a time while the held-out error falls; the fill
    is then redone with every observed entry at the chosen ``k``. The result's attributes give
    ``dineof_modes``, ``dineof_cv_rmse`` (held-out rms error per ``k`` tried) and
    ``dineof_iterations``.

    Examples
    --------
    >>> t, x = np.linspace(0, 1, 30), np.arange(12.0)
    >>> field = np.outer(np.sin(6 * t), np.cos(x)) + np.outer(t, x / 10)  # two modes, no noise
    >>> data = xr.DataArray(field, coords={"time": t, "x": x}, dims=("time", "x"))
    >>> hidden = np.random.default_rng(1).random(field.shape) < 0.2
    >>> filled = dineof(data.where(~hidden))
    >>> bool(np.abs(filled - data).max() < 1e-2), filled.attrs["dineof_modes"] >= 2
    (True, True)
    """
    ordered, keep = _prepare(data, mask, (time,))
    columns = keep.reshape(ordered.shape[0], -1).all(axis=0)  # cells to fill at every time
    x = ordered.values.reshape(ordered.shape[0], -1)[:, columns]
    seen = np.isfinite(x)
    offset = float(x[seen].mean())
    a = np.where(seen, x - offset, 0.0)
    k_max = int(k_max or min(min(x.shape) - 1, 50))
    cv = seen & (np.random.default_rng(seed).random(x.shape) < cv_fraction)
    if not cv.any():
        raise ValueError(f"cv_fraction={cv_fraction} holds out none of the {int(seen.sum())} observed cells: raise it")
    fill, cv_rmse, iterations = np.zeros_like(a), [], 0
    for k in range(1, k_max + 1):
        fill, it = _iterate(a, seen & ~cv, k, fill, tol, max_iter)
        iterations += it
        cv_rmse.append(float(np.sqrt(np.mean((fill[cv] - a[cv]) ** 2))))
        if len(cv_rmse) > 1 and cv_rmse[-1] >= cv_rmse[-2]:
            break
    k_best = int(np.argmin(cv_rmse)) + 1
    fill = np.zeros_like(a)
    for k in range(1, k_best + 1):
        fill, it = _iterate(a, seen, k, fill, tol, max_iter)
        iterations += it
    out = np.full((ordered.shape[0], columns.size), np.nan)
    out[:, columns] = np.where(seen, x, fill + offset)
    filled = ordered.copy(data=out.reshape(ordered.shape)).transpose(*data.dims)
    filled.attrs.update(dineof_modes=k_best, dineof_cv_rmse=cv_rmse, dineof_iterations=iterations)
    return filled
