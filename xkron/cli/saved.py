"""Saved fits on the command line: open one, and ``--sel`` of a batch fit's batch dims.

:func:`open_saved_fit` opens a fit or batch fit (``xkron predict`` and the commands reading
a fit), turning an unreadable file into a :class:`~xkron.cli.errors.JobInputError`;
:func:`select_slices` keeps the slices of a batch fit that ``--sel member=r1`` (or a range)
names, so that only those are predicted.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from xkron.cli.errors import JobInputError
from xkron.cli.select import select_coords

__all__ = ["first_fit", "open_saved_fit", "select_slices"]


def open_saved_fit(fit_path, option: str = "FIT.nc"):
    """The fit or batch fit saved at ``fit_path`` (:func:`xkron.open_fit`)."""
    import xkron

    try:
        return xkron.open_fit(fit_path)
    except (KeyError, ValueError, OSError) as err:
        raise JobInputError(str(err), option) from err


def first_fit(fitted, fit_path):
    """``fitted`` itself, or the first slice of a batch fit that did not fail (to check a request on)."""
    if not hasattr(fitted, "fits"):
        return fitted
    fit = next((f for f in fitted.fits.values() if f is not None), None)
    if fit is None:
        raise JobInputError(f"{fit_path} is a batch fit whose every slice failed: nothing to predict", "FIT.nc")
    return fit


def select_slices(fitted, sel: Mapping[str, str]):
    """The batch fit cut to the ``--sel`` of its batch dims, and the selections left for the other dims.

    A plain fit, or no selection of a batch dim, is returned as it is. A point keeps its batch
    dim (length 1; ``--squeeze`` drops it from the output).

    Examples
    --------
    >>> from xkron.results.batch import BatchFit
    >>> b = BatchFit({(0,): "f0", (1,): "f1", (2,): None}, {(2,): "failed"}, {"member": ["a", "b", "c"]})
    >>> cut, rest = select_slices(b, {"member": "c", "x": "1:2"})
    >>> cut.fits, cut.failures, cut.labels["member"].tolist(), rest
    ({(0,): None}, {(0,): 'failed'}, ['c'], {'x': '1:2'})
    """
    import numpy as np
    import xarray as xr

    batch_dims = getattr(fitted, "batch_dims", ())
    mine = {d: t for d, t in sel.items() if d in batch_dims}
    if not mine:
        return fitted, dict(sel)
    positions = xr.Dataset(
        {f"position_{d}": ((d,), np.arange(len(fitted.labels[d]))) for d in batch_dims},
        coords={d: fitted.labels[d] for d in batch_dims},
    )
    positions = select_coords(positions, mine, list(mine))
    kept = [positions[f"position_{d}"].values.tolist() for d in batch_dims]
    fits, failures = {}, {}
    for new, old in zip(itertools.product(*(range(len(k)) for k in kept)), itertools.product(*kept), strict=True):
        fits[new] = fitted.fits[old]
        if old in fitted.failures:
            failures[new] = fitted.failures[old]
    labels = {d: positions[d].values for d in batch_dims}
    rest = {d: t for d, t in sel.items() if d not in mine}
    return type(fitted)(fits, failures, labels), rest
