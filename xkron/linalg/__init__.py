"""Array-level linear algebra on numpy and dask: knows nothing of xarray or PyMC.

The Kronecker eigenbasis (exact), dense Cholesky on observed cells (exact), conjugate gradients
with stochastic Lanczos quadrature (approximate, stated error), its preconditioners (static
gaps, slices along one dim for per-step gaps, leading Kronecker modes),
dask mode products for grids larger than memory, and cost estimates from sizes.
"""
