"""Array-level linear algebra on numpy and dask: knows nothing of xarray or PyMC.

The Kronecker eigenbasis (exact), dense Cholesky on observed cells (exact), conjugate gradients
with stochastic Lanczos quadrature (approximate, stated error), the static-gap preconditioner,
dask mode products for grids larger than memory, and cost estimates from sizes.
"""
