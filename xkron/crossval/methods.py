"""Predictions of the held-out cells of one fold: the GP's and two baselines'.

Each function returns ``(mean, sd)`` as 1-D arrays over the fold's held-out cells, in the order
of :func:`held_cells`, predicting from the fold's training data only.

* The GP: the fit's predictive of a new observation (``predict(noise=True)``) at the held-out
  cells, plus any known per-cell noise there.
* Linear interpolation in space (:func:`xkron.baselines.linear_fill`): each time step's
  held-out cells from its observed ones (nearest cell outside their hull). No uncertainty: its
  sd is NaN.
* Climatology: at each spatial cell, the mean over time of its training values, with their sd
  (``ddof=1``) as the sd of a Gaussian predictive; a cell with fewer than two training values
  has none (NaN, not scored).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from xkron.baselines import dineof, linear_fill

__all__ = [
    "SPACE_PAIRS",
    "climatology_predict",
    "default_space",
    "dineof_predict",
    "gp_predict",
    "held_cells",
    "linear_predict",
]

SPACE_PAIRS = (("latitude", "longitude"), ("lat", "lon"), ("y", "x"))
"""Dim names taken as the two spatial dims of linear interpolation when ``space`` is not given."""


def default_space(data: xr.DataArray, time: str) -> tuple[str, str] | None:
    """The two spatial dims of ``data``: a known pair (:data:`SPACE_PAIRS`), else the two dims other than ``time``.

    ``None`` when there are no two such dims (linear interpolation is then skipped).

    Examples
    --------
    >>> default_space(xr.DataArray(np.zeros((2, 3, 4)), dims=("time", "a", "b")), "time")
    ('a', 'b')
    """
    for pair in SPACE_PAIRS:
        if all(d in data.dims for d in pair):
            return pair
    rest = tuple(str(d) for d in data.dims if d != time)
    return rest if len(rest) == 2 else None


def held_cells(data: xr.DataArray, held: xr.DataArray) -> tuple[tuple[np.ndarray, ...], xr.Dataset]:
    """The held-out cells' indices (one array per dim) and their coordinates as points on a ``cell`` dim."""
    index = np.nonzero(held.transpose(*data.dims).values)
    points = xr.Dataset({str(d): ("cell", data[d].values[i]) for d, i in zip(data.dims, index, strict=True)})
    return index, points


def gp_predict(fit, index, dims, noise_sd=None) -> tuple[np.ndarray, np.ndarray]:
    """The GP's predictive of new observations at the held-out cells ``index`` (of a grid on ``dims``).

    ``noise_sd`` (per held-out cell) adds in variance. Predicted on the whole training grid and
    then indexed: Kronecker-aware, this was several times faster than predicting the held-out
    cells as scattered points (0.9 s against 5.4 s for 456 of 2,280 cells, dense solver).
    """
    pred = fit.predict(noise=True).transpose(*dims)
    mean, sd = pred["mean"].values[index], pred["sd"].values[index]
    if noise_sd is not None:
        sd = np.sqrt(sd**2 + np.asarray(noise_sd) ** 2)
    return mean, sd


def linear_predict(train: xr.DataArray, index, space: Sequence[str], mask=None) -> tuple[np.ndarray, np.ndarray]:
    """Linear interpolation in ``space`` of the training data, slice by slice, at the held-out cells."""
    filled = linear_fill(train, space=tuple(space), mask=mask).transpose(*train.dims).values
    mean = filled[index]
    return mean, np.full(mean.shape, np.nan)


def dineof_predict(train: xr.DataArray, index, time: str, mask=None) -> tuple[np.ndarray, np.ndarray]:
    """DINEOF's fill (:func:`xkron.baselines.dineof`, modes by its internal cross-validation) at the held-out cells."""
    filled = dineof(train, time=time, mask=mask).transpose(*train.dims).values
    mean = filled[index]
    return mean, np.full(mean.shape, np.nan)


def climatology_predict(train: xr.DataArray, index, time: str) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sd over ``time`` of each spatial cell's training values, at the held-out cells.

    Examples
    --------
    >>> train = xr.DataArray([[1.0, 5.0], [3.0, np.nan], [np.nan, np.nan]], dims=("time", "x"))
    >>> mean, sd = climatology_predict(train, (np.array([2, 2]), np.array([0, 1])), "time")
    >>> mean.tolist(), sd.round(4).tolist()
    ([2.0, nan], [1.4142, nan])
    """
    enough = train.count(time) >= 2
    mean = train.mean(time).where(enough)
    sd = train.std(time, ddof=1).where(enough)
    mean, sd = (xr.broadcast(a, train)[0].transpose(*train.dims).values[index] for a in (mean, sd))
    return mean, sd
