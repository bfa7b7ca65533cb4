"""Opening a saved fit: :func:`open_fit` (``xkron.open_fit``).

The file format is :mod:`xkron.io.netcdf`'s; this builds the :class:`~xkron.results.fit.KronFit`
or :class:`~xkron.results.batch.BatchFit` it holds.
"""

from __future__ import annotations

import contextlib
import os

from xkron.errors import NotAFitError
from xkron.io.netcdf import fit_parts, read_fit_tree
from xkron.results.batch import BatchFit
from xkron.results.fit import KronFit
from xkron.spec.prior_types import deferred_priors

__all__ = ["open_fit"]


def open_fit(path: str | os.PathLike, *, defer_priors: bool = False) -> KronFit | BatchFit:
    """Read a fit written by :meth:`xkron.KronFit.to_netcdf` (or a batch fit's ``to_netcdf``).

    Parameters
    ----------
    path : str or path-like
        The fit's file.
    defer_priors : bool
        Read each prior as a :class:`xkron.spec.prior_types.SavedPrior`, which imports PyMC only
        when it is used (building the model), instead of a :class:`pymc_extras.prior.Prior`:
        for summaries (``xkron info``) that should not pay PyMC's import. Predictions and
        sample fields are the same either way.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.
    NotAFitError
        (a ``ValueError``) ``"PATH is not an xkron fit (why)"``: a text file, a truncated or
        damaged file, a NetCDF file that is not a fit, or a fit of an unknown format.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron, tempfile, os
    >>> x = np.linspace(0, 1, 5)
    >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, name="t")
    >>> fitted = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False)
    >>> path = os.path.join(tempfile.mkdtemp(), "fit.nc")
    >>> fitted.to_netcdf(path)
    >>> again = xkron.open_fit(path)
    >>> bool((again.predict(a=[0.5])["mean"] == fitted.predict(a=[0.5])["mean"]).all())
    True
    """
    tree, is_batch = read_fit_tree(path)
    try:
        with deferred_priors() if defer_priors else contextlib.nullcontext():
            return BatchFit.from_tree(tree) if is_batch else KronFit(**fit_parts(tree))
    except (KeyError, ValueError, TypeError, IndexError) as err:
        raise NotAFitError(path, f"its contents are incomplete or inconsistent: {type(err).__name__}: {err}") from err
