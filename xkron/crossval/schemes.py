"""Which cells each cross-validation fold holds out: random cells, space-time blocks, transplanted clouds.

Every scheme returns a boolean DataArray on ``("fold", *data.dims)``, True at the cells a fold
holds out. Only *scorable* cells are ever held out: observed (not NaN) and not hidden by
``mask`` (land), since a cell without a true value cannot be scored. The folds are reproducible
from ``seed``.

* ``"random"``: the scorable cells shuffled and dealt into ``folds`` parts of equal size (±1):
  scattered gaps, the easiest test (every held-out cell has observed neighbours).
* ``"blocks"``: contiguous boxes along the dims (``blocks={"time": 12, "latitude": 5}``: boxes
  of 12 time steps by 5 latitudes by the whole of any dim not named), dealt at random to the
  folds: extrapolation into gaps as large as the boxes.
* ``"clouds"``: **cloud transplant** (Beckers & Rixen 2003, the protocol of DINEOF and DINCAE):
  every time step with observed cells is a target; it gets a donor, another time step with
  gaps, drawn at random; the target's observed cells under the donor's gaps are held out. The
  targets are dealt at random to the folds. Gaps have the shape, size and position of real
  ones, which random cells and boxes do not.

Beckers, J.-M. and Rixen, M. (2003), EOF calculations and data filling from incomplete
oceanographic datasets, J. Atmos. Oceanic Technol. 20, 1839-1856.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import xarray as xr

from xkron.settings import CV_BLOCKS_PER_DIM, CV_FOLDS

__all__ = ["SCHEMES", "cloud_folds", "make_folds", "scorable"]

SCHEMES = ("random", "blocks", "clouds")
"""The names ``scheme=`` takes."""


def scorable(data: xr.DataArray, mask: xr.DataArray | None = None) -> xr.DataArray:
    """True where a cell can be held out and scored: observed (not NaN) and not hidden by ``mask``.

    Examples
    --------
    >>> da = xr.DataArray([[1.0, np.nan], [3.0, 4.0]], dims=("y", "x"))
    >>> scorable(da, mask=xr.DataArray([True, False], dims="x")).values.tolist()
    [[True, False], [True, False]]
    """
    seen = data.notnull()
    if mask is None:
        return seen
    return (seen & mask.astype(bool)).transpose(*data.dims)


def _as_folds(held: np.ndarray, data: xr.DataArray) -> xr.DataArray:
    """The ``(fold, *dims)`` DataArray of held-out cells, refusing an empty fold."""
    counts = held.reshape(held.shape[0], -1).sum(axis=1)
    if (counts == 0).any():
        empty = [int(f) for f in np.flatnonzero(counts == 0)]
        raise ValueError(
            f"folds {empty} of {held.shape[0]} would hold out no cell (too few blocks, targets or observed "
            "cells for this many folds): give fewer folds or smaller blocks"
        )
    out = xr.DataArray(held, dims=("fold", *data.dims), coords={**data.coords, "fold": np.arange(held.shape[0])})
    out.attrs["long_name"] = "held-out cells of each fold"
    return out


def _check_folds(folds: int) -> int:
    if isinstance(folds, bool) or not isinstance(folds, int | np.integer) or folds < 2:
        raise ValueError(f"folds must be a whole number >= 2, got {folds!r}")
    return int(folds)


def random_folds(data, mask=None, folds: int = CV_FOLDS, seed: int = 0) -> xr.DataArray:
    """Scorable cells in random order, dealt into ``folds`` parts of sizes that differ by at most one.

    Examples
    --------
    >>> da = xr.DataArray(np.arange(12.0).reshape(3, 4), dims=("y", "x"))
    >>> held = random_folds(da, folds=3)
    >>> held.sum(("y", "x")).values.tolist(), bool(held.sum("fold").all())
    ([4, 4, 4], True)
    """
    folds = _check_folds(folds)
    cells = np.flatnonzero(scorable(data, mask).values)
    if cells.size < folds:
        raise ValueError(f"{cells.size} observed cells cannot be split into {folds} folds")
    np.random.default_rng(seed).shuffle(cells)
    held = np.zeros((folds, data.size), dtype=bool)
    for f, part in enumerate(np.array_split(cells, folds)):
        held[f, part] = True
    return _as_folds(held.reshape(folds, *data.shape), data)


def _block_sizes(data: xr.DataArray, blocks: Mapping[str, int] | None) -> dict[str, int]:
    """Block length per dim: as given (dims not named: one block), or a quarter-ish of every dim."""
    if blocks is None:
        return {str(d): -(-n // CV_BLOCKS_PER_DIM) for d, n in data.sizes.items()}
    unknown = [d for d in blocks if d not in data.dims]
    if unknown:
        raise ValueError(f"blocks names {unknown}, not dims of the data; its dims are {tuple(data.dims)}")
    for dim, size in blocks.items():
        if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
            raise ValueError(f"blocks[{dim!r}] must be a whole number of cells >= 1, got {size!r}")
    return {str(d): int(blocks.get(d, n)) for d, n in data.sizes.items()}


def block_folds(data, mask=None, folds: int = CV_FOLDS, blocks=None, seed: int = 0) -> xr.DataArray:
    """Contiguous boxes of ``blocks`` cells along each dim, dealt at random to the folds.

    A dim not named in ``blocks`` is one block (``blocks={"time": 1}`` leaves out whole time
    steps); without ``blocks`` every dim is cut into :data:`~xkron.settings.CV_BLOCKS_PER_DIM`
    blocks. Boxes without a scorable cell are not dealt.

    Examples
    --------
    >>> da = xr.DataArray(np.zeros((6, 4)), dims=("time", "x"))
    >>> held = block_folds(da, folds=3, blocks={"time": 2})
    >>> sorted(held.isel(fold=f).any("x").values.nonzero()[0].tolist() for f in range(3))
    [[0, 1], [2, 3], [4, 5]]
    """
    folds = _check_folds(folds)
    sizes = _block_sizes(data, blocks)
    index = np.ix_(*(np.arange(n) // sizes[str(d)] for d, n in data.sizes.items()))
    counts = [-(-n // sizes[str(d)]) for d, n in data.sizes.items()]
    box = np.ravel_multi_index(np.broadcast_arrays(*index), counts)
    ok = scorable(data, mask).values
    present = np.unique(box[ok])
    if present.size < folds:
        raise ValueError(
            f"{present.size} blocks of sizes {sizes} hold observed cells: too few for {folds} folds; "
            "give smaller blocks or fewer folds"
        )
    fold_of = np.full(int(np.prod(counts)), -1)
    fold_of[np.random.default_rng(seed).permutation(present)] = np.arange(present.size) % folds
    held = (fold_of[box][None] == np.arange(folds).reshape(-1, *[1] * data.ndim)) & ok
    out = _as_folds(held, data)
    out.attrs["blocks"] = [f"{d}={n}" for d, n in sizes.items()]
    return out


def cloud_folds(data, mask=None, folds: int = CV_FOLDS, time: str = "time", seed: int = 0) -> xr.DataArray:
    """Cloud transplant: each time step holds out its observed cells under another time step's gaps.

    A donor's *gaps* are its cells that are not observed there but are observed at some other
    time step (not land, not masked): cells that never have data are nobody's clouds. Donors
    without gaps are skipped; each target's donor is drawn among the other time steps with
    gaps. The result has a ``donor`` coordinate along ``time`` (the donor's ``time`` value,
    a target without one keeps its own and holds out nothing).

    Examples
    --------
    >>> y = np.ones((4, 3))
    >>> y[0, :2] = y[2, 2] = np.nan  # clouds on two of the four time steps
    >>> da = xr.DataArray(y, coords={"time": [10, 20, 30, 40]}, dims=("time", "x"))
    >>> held = cloud_folds(da, folds=2, seed=1)
    >>> held["donor"].values.tolist()
    [30, 10, 10, 10]
    >>> held.any("fold").astype(int).values.tolist()  # time 10 under 30's gap, the others under 10's
    [[0, 0, 1], [1, 1, 0], [1, 1, 0], [1, 1, 0]]
    """
    folds = _check_folds(folds)
    if time not in data.dims:
        raise ValueError(
            f"scheme='clouds' transplants gaps between time steps along {time!r}, which is not a dim "
            f"of the data {tuple(data.dims)}: pass time=<the time dim>"
        )
    ok = scorable(data, mask).transpose(time, ...).values
    gaps = ~ok & ok.any(axis=0)
    flat_ok, flat_gaps = ok.reshape(ok.shape[0], -1), gaps.reshape(gaps.shape[0], -1)
    donors = np.flatnonzero(flat_gaps.any(axis=1))
    targets = np.flatnonzero(flat_ok.any(axis=1))
    if donors.size == 0:
        raise ValueError(
            "scheme='clouds' needs gaps to transplant, and no time step has any (the data are complete "
            "where observable): use scheme='random' or 'blocks'"
        )
    rng = np.random.default_rng(seed)
    donor_of = np.arange(ok.shape[0])
    held = np.zeros((folds, *ok.shape), dtype=bool)
    for i, target in enumerate(rng.permutation(targets)):
        others = donors[donors != target]
        if others.size == 0:
            continue
        donor_of[target] = rng.choice(others)
        held[i % folds, target] = flat_gaps[donor_of[target]].reshape(ok.shape[1:]) & ok[target]
    order = [1 + list(data.transpose(time, ...).dims).index(d) for d in data.dims]
    out = _as_folds(held.transpose(0, *order), data)
    out.coords["donor"] = (time, data[time].values[donor_of])
    return out


def make_folds(data, scheme: str, folds: int = CV_FOLDS, *, mask=None, blocks=None, time="time", seed=0):
    """The held-out cells of each fold under ``scheme`` (``"random"``, ``"blocks"``, ``"clouds"``).

    Returns a boolean DataArray on ``("fold", *data.dims)``; see the module for the schemes and
    :func:`random_folds`, :func:`block_folds`, :func:`cloud_folds` for their options.

    Examples
    --------
    >>> da = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=("time", "x"))
    >>> make_folds(da, "random", folds=2).sizes
    Frozen({'fold': 2, 'time': 2, 'x': 3})
    """
    if scheme == "random":
        return random_folds(data, mask, folds, seed)
    if scheme == "blocks":
        return block_folds(data, mask, folds, blocks, seed)
    if scheme == "clouds":
        return cloud_folds(data, mask, folds, time, seed)
    raise ValueError(f"unknown scheme {scheme!r}: choose one of {SCHEMES}")
