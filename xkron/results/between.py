"""Between-variable covariance and correlation of a ``Coregion`` factor, labelled."""

from __future__ import annotations

import numpy as np
import xarray as xr

from xkron.spec.coregion import Coregion
from xkron.spec.modelspec import factor_params

__all__ = ["between_variables"]


def between_variables(fit, dim: str) -> xr.Dataset:
    """``covariance`` ``B`` and ``correlation`` between the labels of ``dim`` (see :meth:`xkron.KronFit.between`)."""
    factor = next((f for f in fit.spec.factors if f.dims == (dim,) and isinstance(f.kernel, Coregion)), None)
    if factor is None:
        found = [f.dims[0] for f in fit.spec.factors if isinstance(f.kernel, Coregion)]
        raise ValueError(f"{dim!r} has no Coregion factor; the fit's Coregion dims: {found or 'none'}")
    params = fit.params
    samples = params.stack(sample=("chain", "draw")) if "chain" in params.dims else params.expand_dims(sample=[0])
    covs = []
    for k in range(samples.sizes["sample"]):
        values = {name: float(samples[name].isel(sample=k)) for name in samples.data_vars}
        covs.append(np.asarray(factor.kernel.between(factor_params(factor, values)), dtype=float))
    B = np.stack(covs)
    sd = np.sqrt(np.einsum("kii->ki", B))
    corr = B / (sd[:, :, None] * sd[:, None, :])
    other = f"{dim}_2"
    coords = {dim: list(factor.kernel.labels), other: list(factor.kernel.labels)}
    out = xr.Dataset(
        {"covariance": ((dim, other), B.mean(axis=0)), "correlation": ((dim, other), corr.mean(axis=0))}, coords=coords
    )
    if B.shape[0] > 1:
        out["correlation_sd"] = ((dim, other), corr.std(axis=0))
    out["covariance"].attrs["long_name"] = f"between-{dim} covariance B = W Wᵀ + diag(kappa) (times amplitude²)"
    out["correlation"].attrs["long_name"] = f"between-{dim} correlation" + (
        " (posterior mean)" if B.shape[0] > 1 else ""
    )
    return out
