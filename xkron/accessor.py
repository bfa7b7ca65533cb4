"""The ``.kron`` accessor on DataArray and Dataset: validates its arguments and delegates.

It holds no state (xarray builds a new accessor for every object); ``fit`` returns a
:class:`xkron.KronFit`, ``plot_map`` (on a prediction Dataset) a matplotlib Figure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import xarray as xr

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from xkron.results.fit import KronFit

__all__ = ["KronDataArrayAccessor", "KronDatasetAccessor"]


@xr.register_dataarray_accessor("kron")
class KronDataArrayAccessor:
    """``da.kron.fit(kernels, ...)``: fit a Kronecker GP to this DataArray."""

    def __init__(self, obj: xr.DataArray):
        self._obj = obj

    def fit(self, kernels: Mapping, **kwargs) -> KronFit:
        """Fit a Kronecker GP; see :func:`xkron.fit` for every argument.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 5)
        >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x})
        >>> da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False).method
        'map'
        """
        from xkron.api import fit  # PyMC is imported with the first fit, not with xkron

        return fit(self._obj, kernels, **kwargs)


@xr.register_dataset_accessor("kron")
class KronDatasetAccessor:
    """``ds.kron.fit(var, kernels, ...)``: fit a Kronecker GP to one data variable; ``pred.kron.plot_map()``:
    look at a prediction."""

    def __init__(self, obj: xr.Dataset):
        self._obj = obj

    def fit(self, var: str, kernels: Mapping, **kwargs) -> KronFit:
        """Fit a Kronecker GP to ``ds[var]``; see :func:`xkron.fit` for every argument.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 5)
        >>> ds = xr.Dataset({"t": (("a", "b"), np.add.outer(x, x))}, coords={"a": x, "b": x})
        >>> ds.kron.fit("t", {"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False).data.name
        't'
        """
        if not isinstance(var, str) or var not in self._obj.data_vars:
            raise KeyError(f"{var!r} is not a data variable of this Dataset; it has {list(self._obj.data_vars)}")
        from xkron.api import fit

        return fit(self._obj[var], kernels, **kwargs)

    def plot_map(self, *, sel: Mapping | None = None, isel: Mapping | None = None, path=None, figsize=None) -> Figure:
        """Quick-look maps of a prediction's ``mean`` and ``sd`` side by side, colour bars labelled with units.

        See :func:`xkron.results.plots.map_figure`: dims beyond the map's take ``sel``/``isel``, else
        their last step; coastlines where ``cartopy`` is installed; ``path=`` also writes a PNG.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 6)
        >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, attrs={"units": "K"})
        >>> pred = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False).predict()
        >>> fig = pred.kron.plot_map()
        >>> len(fig.axes), "[K]" in fig.axes[-1].get_ylabel()
        (4, True)
        """
        from xkron.results.plots import map_figure

        return map_figure(self._obj, sel=sel, isel=isel, path=path, figsize=figsize)
