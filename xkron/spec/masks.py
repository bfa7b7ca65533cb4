"""A user's ``mask=`` checked and laid over the data's dims: :func:`aligned_mask`, :func:`masked_values`.

Used by a fit (:mod:`xkron.inference.prepare`) and by :meth:`xkron.KronFit.condition`, so the
check lives below both, in the specifications; it needs no PyMC.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from xkron.spec.validation import align_cell_values

__all__ = ["aligned_mask", "masked_values"]


def aligned_mask(da: xr.DataArray, mask: Any) -> xr.DataArray:
    """The user's mask as a bool DataArray over all of the data's dims (checked, not reindexed)."""
    if not isinstance(mask, xr.DataArray):
        raise TypeError(
            f"mask must be a boolean xarray.DataArray (True = observed) labelled with the data's dims, not "
            f"{type(mask).__name__}; wrap an array with xr.DataArray(mask, coords=..., dims=...)"
        )
    if mask.dtype != bool:
        nan = (
            " (NaN counts as True: use mask.fillna(0).astype(bool) to treat it as unobserved)"
            if mask.dtype.kind == "f"
            else ""
        )
        raise TypeError(
            f"mask must be boolean (True = observed), but its dtype is {mask.dtype}: convert it with "
            f"mask.astype(bool), which makes nonzero values True{nan}"
        )
    values = align_cell_values(da, da.dims, mask, "mask").astype(bool)
    return xr.DataArray(values, coords=da.coords, dims=da.dims, name="mask")


def masked_values(da: xr.DataArray, dims, mask: Any) -> tuple[np.ndarray, xr.DataArray | None]:
    """The data over ``dims`` as floats with the cells ``mask`` hides set to NaN, and the mask aligned
    (:func:`aligned_mask`; ``None`` stays ``None``): what a fit or a conditioning sees as observed."""
    y = np.asarray(da.transpose(*dims).values, dtype=float)
    if mask is None:
        return y, None
    mask = aligned_mask(da, mask)
    return np.where(mask.transpose(*dims).values, y, np.nan), mask
