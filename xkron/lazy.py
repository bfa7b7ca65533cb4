"""Kronecker GP posteriors on grids larger than memory: chunked mode products with dask.

Array level (dask arrays in, dask arrays out; nothing computes here). A mode product
``X ×_i M`` with a small dense ``M`` rechunks ``X`` so that axis ``i`` is whole in each block
and multiplies block by block; the output keeps the chunking it is given along every axis.
Each output cell depends on every input cell, so each product is an all-to-all exchange of
blocks: dask holds about one grid-sized intermediate (several, in flight) while it computes.
Memory therefore scales with the grid (measured: about 8 times the float64 size of the field,
``tests/benchmarks/bench_scale.py``), not with the chunks; streaming in bounded memory would
need the intermediates spilled to disk between the products.

For a complete grid with equal noise (Saatçi 2011, Alg. 16), with ``A_i = K*_i Q_i``:

- ``α̃ = W ∘ ((Y − μ) ×_1 Q_1ᵀ ... ×_D Q_Dᵀ)``, ``W = 1 / (η² ⊗λ_i + σ²)`` built lazily;
- ``mean = μ + η² α̃ ×_1 A_1 ... ×_D A_D``;
- ``var = η² ⊗k**_i − η⁴ W ×_1 (A_1∘A_1) ... ×_D (A_D∘A_D)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["lazy_grid_moments", "lazy_grid_samples", "lazy_mode_products", "lazy_outer"]


def lazy_mode_products(x, matrices: Sequence[np.ndarray | None], chunks: Sequence, first: int = 0):
    """``x ×_1 M_1 ... ×_D M_D`` (``None``: identity) with output chunks ``chunks[i]`` along axis ``i``.

    ``first`` is the axis of ``M_1`` (axes before it, such as a batch of sample fields, are kept).
    Each product rechunks ``x`` so that its axis is whole in every block (the other axes cut to
    keep blocks near their input size), multiplies block by block, and the result is rechunked
    to ``chunks`` at the end.

    Examples
    --------
    >>> import dask.array as da
    >>> rng = np.random.default_rng(0)
    >>> X, A, B = rng.normal(size=(4, 6)), rng.normal(size=(3, 4)), rng.normal(size=(5, 6))
    >>> out = lazy_mode_products(da.from_array(X, chunks=2), [A, B], [(2, 1), (5,)])
    >>> out.chunks, bool(np.allclose(out.compute(), A @ X @ B.T))
    (((2, 1), (5,)), True)
    """
    block_bytes = max(x.nbytes / max(x.npartitions, 1), 2**20)
    for k, M in enumerate(matrices):
        if M is None:
            continue
        axis, M = first + k, np.asarray(M, dtype=float)
        spec = {a: (-1 if a == axis else "auto") for a in range(x.ndim)}
        x = x.rechunk(spec, block_size_limit=block_bytes)
        out_chunks = tuple((M.shape[0],) if a == axis else c for a, c in enumerate(x.chunks))
        x = x.map_blocks(_block_product, M, axis, chunks=out_chunks, dtype=float)
    out = {first + k: c for k, c in enumerate(chunks)}
    return x.rechunk(out)


def _block_product(block: np.ndarray, M: np.ndarray, axis: int) -> np.ndarray:
    return np.moveaxis(np.tensordot(M, block, axes=([1], [axis])), 0, axis)


def lazy_outer(vectors: Sequence[np.ndarray], chunks: Sequence):
    """``v_1 ∘ ... ∘ v_D`` as a dask array with ``chunks`` (never held whole in memory)."""
    import dask.array as da

    out = None
    for axis, v in enumerate(vectors):
        shape = [1] * len(vectors)
        shape[axis] = len(v)
        piece = da.from_array(np.asarray(v, dtype=float).reshape(shape), chunks=tuple(
            chunks[axis] if k == axis else 1 for k in range(len(vectors))
        ))  # fmt: skip
        out = piece if out is None else out * piece
    return out


def lazy_grid_moments(y, eigen, cross: Sequence[np.ndarray], prior_diag: Sequence[np.ndarray], eta2, sigma2, mean,
                      chunks: Sequence):  # fmt: skip
    """Posterior mean and variance of ``f`` on a test grid, as lazy dask arrays.

    Parameters
    ----------
    y : dask.array.Array
        Complete data on the training grid (one axis per factor).
    eigen : xkron.kronecker.KronEigen
        Eigendecompositions of the training factors.
    cross : sequence of ndarray
        ``K*_i`` (``m_i × n_i``) per factor.
    prior_diag : sequence of ndarray
        ``k_i(x*, x*)`` (length ``m_i``) per factor.
    eta2, sigma2, mean : float
    chunks : sequence
        Output chunks per axis.
    """
    rotated = [C @ Q for C, Q in zip(cross, eigen.vectors, strict=True)]
    inv = 1.0 / (eta2 * lazy_outer(eigen.values, y.chunks) + sigma2)
    y_tilde = lazy_mode_products(y.astype(float) - mean, [Q.T for Q in eigen.vectors], y.chunks)
    alpha = y_tilde * inv
    mean_out = mean + eta2 * lazy_mode_products(alpha, rotated, chunks)
    explained = lazy_mode_products(inv, [A * A for A in rotated], chunks)
    var = eta2 * lazy_outer(prior_diag, chunks) - eta2**2 * explained
    return mean_out, var.clip(0.0, None)


def lazy_grid_samples(y, eigen, roots, cross: Sequence[np.ndarray], eta2, sigma2, mean, chunks: Sequence, n: int,
                      seed: int):  # fmt: skip
    """``n`` exact posterior sample fields on a test grid by Matheron's rule, as a lazy dask array.

    ``roots[i] = (R_train, R_test)``: rows of a square root of factor ``i``'s kernel on the
    union of its training and test inputs (:func:`xkron.sampling.posterior_fields`). With a
    prior draw ``f = η z ×_i R_i`` and noise ``ε``:
    ``f* = μ + f*_prior + η² (W ∘ ((y − μ − f_X − ε) ×_i Q_iᵀ)) ×_i (K*_i Q_i)``. The random
    numbers come from ``dask.array.random.default_rng(seed)``, chunk by chunk.
    """
    import dask.array as da

    rng = da.random.default_rng(seed)
    union = [r.shape[1] for r, _ in roots]
    z = rng.standard_normal((n, *union), chunks=((n,), *(y.chunks[i][0] for i in range(len(union)))))
    eta = np.sqrt(eta2)
    prior_train = eta * lazy_mode_products(z, [r for r, _ in roots], y.chunks, first=1)
    prior_test = eta * lazy_mode_products(z, [r for _, r in roots], chunks, first=1)
    noise = np.sqrt(sigma2) * rng.standard_normal(prior_train.shape, chunks=prior_train.chunks)
    inv = 1.0 / (eta2 * lazy_outer(eigen.values, y.chunks) + sigma2)
    resid = (y.astype(float) - mean)[None] - prior_train - noise
    alpha = lazy_mode_products(resid, [Q.T for Q in eigen.vectors], y.chunks, first=1) * inv[None]
    rotated = [C @ Q for C, Q in zip(cross, eigen.vectors, strict=True)]
    return mean + prior_test + eta2 * lazy_mode_products(alpha, rotated, chunks, first=1)
