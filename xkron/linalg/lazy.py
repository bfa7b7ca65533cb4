"""Kronecker GP posteriors on grids larger than memory: chunked mode products with dask.

Array level (dask arrays in, dask arrays out; nothing computes here). A mode product
``X ×_i M`` with a small dense ``M`` needs axis ``i`` whole in each block. The products are
applied in groups of axes (:func:`plan_groups`): each group gets a working layout in which its
axes are whole and the other axes keep their chunks (cut further if a block would exceed
``BLOCK_BYTES``), and one ``map_blocks`` applies every product of the group. Moving between the
layouts of two groups is an all-to-all exchange of blocks: with dask's in-memory rechunk the
whole intermediate is held at once, so memory would grow with the grid. An exchange whose
blocks are coupled over more than ``spill_bytes`` therefore goes through disk instead
(:func:`spill_rechunk`): memory is then bounded by a few blocks per thread, not by the grid.
Measured (``tests/benchmarks/bench_scale.py``, two threads): smoothing a 10⁸-cell float32
field chunked on disk and writing mean and sd to NetCDF peaks at 1.1 GB resident for the whole
process (0.6 GB of it before the prediction starts), against 3.7 GB with in-memory exchanges,
at 0.16 µs per cell (0.19 µs in memory at 10⁷ cells). Memory grows with the number of threads
times ``BLOCK_BYTES``, not with the grid; the disk needs room for one intermediate (8 bytes per
cell) per exchange in flight.

For a complete grid with equal noise (Saatçi 2011, Alg. 16), with ``A_i = K*_i Q_i``:

- ``α̃ = W ∘ ((Y − μ) ×_1 Q_1ᵀ ... ×_D Q_Dᵀ)``, ``W = 1 / (η² ⊗λ_i + σ²)`` built lazily;
- ``mean = μ + η² α̃ ×_1 A_1 ... ×_D A_D``;
- ``var = η² ⊗k**_i − η⁴ W ×_1 (A_1∘A_1) ... ×_D (A_D∘A_D)``.

The ``Qᵀ`` products go through the groups in order and the ``A`` products back in reverse, so
that a 3-D field chunked along every axis needs three exchanges through disk (two for the mean,
one for the variance, whose ``W`` is generated directly in the layout of the last group); the
moves between the input (or output) chunks and the first group's layout are local merges and
splits, done by dask in memory.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import os
import tempfile
from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from xkron.settings import BLOCK_BYTES, SPILL_BYTES

__all__ = [
    "is_dask",
    "lazy_grid_moments",
    "lazy_grid_samples",
    "lazy_mode_products",
    "lazy_outer",
    "lazy_weights",
    "plan_groups",
    "spill_rechunk",
]


def is_dask(array) -> bool:
    """Whether ``array`` is a dask array (checked by type, without importing dask)."""
    return type(array).__module__.startswith("dask")


def plan_groups(shape: Sequence[int], chunks: Sequence[Sequence[int]], axes: Sequence[int], itemsize: int = 8):
    """Groups of ``axes`` whose mode products are applied together, in order.

    Axes with the fewest chunks come first (an axis already whole needs no exchange); an axis
    joins the current group while a block with all of the group's axes whole and every other
    axis cut to one cell stays within ``BLOCK_BYTES``.

    Examples
    --------
    >>> plan_groups((1000, 100, 1000), ((100,) * 10, (50, 50), (250,) * 4), [0, 1, 2])
    [[1, 2], [0]]
    """
    groups: list[list[int]] = []
    for a in sorted(axes, key=lambda a: (len(chunks[a]), a)):
        if groups and itemsize * math.prod(shape[b] for b in [*groups[-1], a]) <= BLOCK_BYTES:
            groups[-1].append(a)
        else:
            groups.append([a])
    return groups


def _layout(base: Sequence[tuple], group: Sequence[int], itemsize: int) -> tuple:
    """``base`` with the axes of ``group`` whole, other chunks halved until a block fits ``BLOCK_BYTES``."""
    chunks = [(sum(c),) if a in group else tuple(c) for a, c in enumerate(base)]
    others = [a for a in range(len(chunks)) if a not in group]
    while others and itemsize * math.prod(max(c) for c in chunks) > BLOCK_BYTES:
        a = max(others, key=lambda a: max(chunks[a]))
        if max(chunks[a]) == 1:
            break
        chunks[a] = tuple(p for c in chunks[a] for p in (c - c // 2, c // 2) if p)  # keeps the old boundaries
    return tuple(chunks)


def _coupled_bytes(old: Sequence[tuple], new: Sequence[tuple], itemsize: int) -> int:
    """Bytes of the largest set of blocks that a rechunk from ``old`` to ``new`` couples together.

    Along each axis, the boundaries common to both chunkings cut it into independent spans; a
    pure merge or split couples one block's worth, an all-to-all exchange the whole array.
    """
    size = itemsize
    for a, b in zip(old, new, strict=True):
        common = np.intersect1d(np.cumsum((0, *a)), np.cumsum((0, *b)))
        size *= int(np.max(np.diff(common), initial=0))
    return size


def _exchange(x, chunks, spill_dir, spill_bytes):
    if x.chunks == tuple(chunks):
        return x
    limit = SPILL_BYTES if spill_bytes is None else spill_bytes
    if _coupled_bytes(x.chunks, chunks, x.dtype.itemsize) <= limit:
        return x.rechunk(chunks)
    return spill_rechunk(x, chunks, spill_dir)


def _fit_chunks(chunks: Sequence[int] | int, n: int) -> tuple:
    """``chunks`` if they cover ``n`` cells, else chunks of their first size over ``n``."""
    chunks = (int(chunks),) if np.ndim(chunks) == 0 else tuple(chunks)
    if sum(chunks) == n:
        return tuple(chunks)
    step = max(1, min(chunks[0], n))
    return (step,) * (n // step) + ((n % step,) if n % step else ())


def lazy_mode_products(
    x,
    matrices: Sequence[np.ndarray | None],
    chunks: Sequence | None = None,
    first: int = 0,
    *,
    groups: Sequence[Sequence[int]] | None = None,
    spill_dir=None,
    spill_bytes: int | None = None,
):
    """``x ×_1 M_1 ... ×_D M_D`` (``None``: identity), as a dask array.

    Parameters
    ----------
    x : dask.array.Array
    matrices : sequence of ndarray or None
        ``M_k`` acts on axis ``first + k`` (axes before ``first``, such as a batch of sample
        fields, are kept).
    chunks : sequence, optional
        Output chunks along axis ``first + k`` (a tuple or a chunk size). ``None``: the result
        stays in the working layout of the last group (see ``groups``), which is where
        :func:`lazy_grid_moments` multiplies by ``W``.
    groups : sequence of sequence of int, optional
        Axes whose products are applied together, in order (default :func:`plan_groups`).
    spill_dir : str or path, optional
        Folder for exchanges through disk (default ``tempfile.gettempdir()``); see
        :func:`spill_rechunk`.
    spill_bytes : int, optional
        Exchanges that couple more bytes than this go through disk (default ``SPILL_BYTES``);
        smaller ones use dask's in-memory rechunk.

    Examples
    --------
    >>> import dask.array as da
    >>> rng = np.random.default_rng(0)
    >>> X, A, B = rng.normal(size=(4, 6)), rng.normal(size=(3, 4)), rng.normal(size=(5, 6))
    >>> out = lazy_mode_products(da.from_array(X, chunks=2), [A, B], [(2, 1), (5,)])
    >>> out.chunks, bool(np.allclose(out.compute(), A @ X @ B.T))
    (((2, 1), (5,)), True)
    """
    mats = {first + k: np.asarray(M, dtype=float) for k, M in enumerate(matrices) if M is not None}
    groups = plan_groups(x.shape, x.chunks, list(mats)) if groups is None else groups
    sizes = [mats[a].shape[0] if a in mats else n for a, n in enumerate(x.shape)]
    given = {} if chunks is None else {first + k: c for k, c in enumerate(chunks)}
    out = tuple(_fit_chunks(given.get(a, c), n) for a, (c, n) in enumerate(zip(x.chunks, sizes, strict=True)))
    source, done = x.chunks, set()
    for group in groups:  # done axes take the output chunks (when given), the others keep the input's
        base = [out[a] if a in done and given else _fit_chunks(source[a], n) for a, n in enumerate(x.shape)]
        x = _exchange(x, _layout(base, group, 8), spill_dir, spill_bytes)
        new = tuple((sizes[a],) if a in group else c for a, c in enumerate(x.chunks))
        x = x.map_blocks(_block_products, [mats[a] for a in group], list(group), chunks=new, dtype=float)
        done.update(group)
    return x if chunks is None else _exchange(x, out, spill_dir, spill_bytes)


def _block_products(block: np.ndarray, matrices: Sequence[np.ndarray], axes: Sequence[int]) -> np.ndarray:
    """Mode products of one block, as matrix products without transposing the block."""
    for M, axis in zip(matrices, axes, strict=True):
        shape = block.shape
        before, after = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
        flat = np.ascontiguousarray(block).reshape(before, shape[axis], after)
        product = flat[..., 0] @ M.T if after == 1 else np.matmul(M, flat)
        block = product.reshape(*shape[:axis], M.shape[0], *shape[axis + 1 :])
    return block


def spill_rechunk(x, chunks, spill_dir=None):
    """``x.rechunk(chunks)`` through files on disk, in bounded memory: still a lazy dask array.

    Each source block's task writes the pieces that go to each target block with ``np.save``
    into a private folder made by ``tempfile.mkdtemp`` under ``spill_dir`` (default
    ``tempfile.gettempdir()``) and returns only that folder's path; each target block's task
    reads its pieces, deletes them (and the folder once it is empty) and returns the block. A
    rechunk that couples every block with every other (as between mode products) then holds a
    few blocks per thread instead of the whole array. Computing the array again writes new
    folders. On a cluster of several machines, ``spill_dir`` must be a folder that every worker
    can read and write; a target task cannot be retried on its own (its pieces are gone), and a
    compute that fails part-way leaves the pieces written so far (folders ``xkron-spill-*``).

    Examples
    --------
    >>> import dask.array as da
    >>> x = da.arange(12.0, chunks=3).reshape(3, 4).rechunk((1, 4))
    >>> y = spill_rechunk(x, (3, 2))
    >>> y.chunks, bool((y.compute() == np.arange(12.0).reshape(3, 4)).all())
    (((3,), (2, 2)), True)
    """
    import dask.array as da
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    chunks = da.core.normalize_chunks(chunks, x.shape, dtype=x.dtype)
    spill_dir = tempfile.gettempdir() if spill_dir is None else os.fspath(spill_dir)
    token = tokenize(x, chunks, spill_dir)
    write, read = f"spill-write-{token}", f"spill-read-{token}"
    sends, receives = defaultdict(list), defaultdict(list)
    for combo in itertools.product(*(_overlaps(a, b) for a, b in zip(x.chunks, chunks, strict=True))):
        source, target = tuple(c[0] for c in combo), tuple(c[1] for c in combo)
        sends[source].append((_piece_name(target), tuple(c[2] for c in combo)))
        receives[target].append(((write, *source), tuple(c[3] for c in combo)))
    graph = {(write, *s): (_write_pieces, (x.name, *s), pieces, spill_dir) for s, pieces in sends.items()}
    for t in itertools.product(*(range(len(c)) for c in chunks)):
        parts, shape = receives[t], tuple(chunks[a][i] for a, i in enumerate(t))
        graph[(read, *t)] = (_read_pieces, [k for k, _ in parts], [s for _, s in parts], _piece_name(t), shape, x.dtype)
    layer = HighLevelGraph.from_collections(read, graph, dependencies=[x])
    return da.Array(layer, read, chunks, meta=x._meta)


def _overlaps(old: Sequence[int], new: Sequence[int]) -> list:
    """``(i, j, slice in old block i, slice in new block j)`` for each overlapping pair along one axis."""
    a, b = np.cumsum((0, *old)), np.cumsum((0, *new))
    pairs = []
    for i in range(len(old)):
        for j in range(np.searchsorted(b, a[i], "right") - 1, np.searchsorted(b, a[i + 1], "left")):
            lo, hi = max(a[i], b[j]), min(a[i + 1], b[j + 1])
            pairs.append((i, j, slice(int(lo - a[i]), int(hi - a[i])), slice(int(lo - b[j]), int(hi - b[j]))))
    return pairs


def _piece_name(target: tuple) -> str:
    return "-".join(map(str, target)) + ".npy"


def _write_pieces(block: np.ndarray, pieces: Sequence, spill_dir: str) -> str:
    os.makedirs(spill_dir, exist_ok=True)
    folder = tempfile.mkdtemp(prefix="xkron-spill-", dir=spill_dir)
    for name, index in pieces:
        np.save(os.path.join(folder, name), block[index])
    return folder


def _read_pieces(folders: Sequence[str], indices: Sequence, name: str, shape: tuple, dtype) -> np.ndarray:
    out = np.empty(shape, dtype=dtype)
    for folder, index in zip(folders, indices, strict=True):
        path = os.path.join(folder, name)
        out[index] = np.load(path)
        os.remove(path)
        with contextlib.suppress(OSError):
            os.rmdir(folder)  # succeeds for the last reader of this folder
    return out


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


def lazy_weights(values: Sequence[np.ndarray], eta2, sigma2, chunks: Sequence, token: str = "weights"):
    """``W = 1 / (η² λ_1 ∘ ... ∘ λ_D + σ²)`` as a dask array with ``chunks``, made block by block.

    Each ``token`` gives its own tasks: a use of ``W`` that comes late does not make dask hold
    the blocks made for an earlier one.
    """
    import dask.array as da

    values = [np.asarray(v, dtype=float) for v in values]
    return da.map_blocks(_weights_block, values, eta2, sigma2, chunks=chunks, dtype=float, token=token)


def _weights_block(values, eta2, sigma2, block_info=None):
    location = block_info[None]["array-location"]
    outer = functools.reduce(np.multiply.outer, [v[lo:hi] for v, (lo, hi) in zip(values, location, strict=True)])
    return 1.0 / (eta2 * outer + sigma2)


def lazy_grid_moments(y, eigen, cross: Sequence[np.ndarray], prior_diag: Sequence[np.ndarray], eta2, sigma2, mean,
                      chunks: Sequence, *, spill_dir=None, spill_bytes: int | None = None):  # fmt: skip
    """Posterior mean and variance of ``f`` on a test grid, as lazy dask arrays.

    Parameters
    ----------
    y : dask.array.Array
        Complete data on the training grid (one axis per factor).
    eigen : xkron.linalg.kronecker.KronEigen
        Eigendecompositions of the training factors.
    cross : sequence of ndarray
        ``K*_i`` (``m_i × n_i``) per factor.
    prior_diag : sequence of ndarray
        ``k_i(x*, x*)`` (length ``m_i``) per factor.
    eta2, sigma2, mean : float
    chunks : sequence
        Output chunks per axis.
    spill_dir, spill_bytes
        Where and when the exchanges between mode products go through disk
        (:func:`lazy_mode_products`).
    """
    spill = {"spill_dir": spill_dir, "spill_bytes": spill_bytes}
    groups = plan_groups(y.shape, y.chunks, range(y.ndim))
    rotated = [C @ Q for C, Q in zip(cross, eigen.vectors, strict=True)]
    y_tilde = lazy_mode_products(y.astype(float) - mean, [Q.T for Q in eigen.vectors], groups=groups, **spill)
    alpha = y_tilde * lazy_weights(eigen.values, eta2, sigma2, y_tilde.chunks, "weights-mean")  # last group's layout
    back = groups[::-1]
    mean_out = mean + eta2 * lazy_mode_products(alpha, rotated, chunks, groups=back, **spill)
    inv = lazy_weights(eigen.values, eta2, sigma2, y_tilde.chunks, "weights-var")
    explained = lazy_mode_products(inv, [A * A for A in rotated], chunks, groups=back, **spill)
    var = eta2 * lazy_outer(prior_diag, explained.chunks) - eta2**2 * explained
    return mean_out, var.clip(0.0, None)


def lazy_grid_samples(y, eigen, roots, cross: Sequence[np.ndarray], eta2, sigma2, mean, chunks: Sequence, n: int,
                      seed: int, *, spill_dir=None, spill_bytes: int | None = None):  # fmt: skip
    """``n`` exact posterior sample fields on a test grid by Matheron's rule, as a lazy dask array.

    ``roots[i] = (R_train, R_test)``: rows of a square root of factor ``i``'s kernel on the
    union of its training and test inputs (:func:`xkron.posterior.fields.posterior_fields`). With a
    prior draw ``f = η z ×_i R_i`` and noise ``ε``:
    ``f* = μ + f*_prior + η² (W ∘ ((y − μ − f_X − ε) ×_i Q_iᵀ)) ×_i (K*_i Q_i)``. The random
    numbers come from ``dask.array.random.default_rng(seed)``, chunk by chunk. ``spill_dir``
    and ``spill_bytes`` as in :func:`lazy_mode_products`.
    """
    import dask.array as da

    spill = {"spill_dir": spill_dir, "spill_bytes": spill_bytes}
    rng = da.random.default_rng(seed)
    union = [r.shape[1] for r, _ in roots]
    z = rng.standard_normal((n, *union), chunks=((n,), *(y.chunks[i][0] for i in range(len(union)))))
    eta = np.sqrt(eta2)
    prior_train = eta * lazy_mode_products(z, [r for r, _ in roots], y.chunks, first=1, **spill)
    prior_test = eta * lazy_mode_products(z, [r for _, r in roots], chunks, first=1, **spill)
    noise = np.sqrt(sigma2) * rng.standard_normal(prior_train.shape, chunks=prior_train.chunks)
    resid = (y.astype(float) - mean)[None] - prior_train - noise
    groups = [[a + 1 for a in g] for g in plan_groups(y.shape, y.chunks, range(y.ndim))]
    rotated_resid = lazy_mode_products(resid, [Q.T for Q in eigen.vectors], first=1, groups=groups, **spill)
    inv = lazy_weights(eigen.values, eta2, sigma2, rotated_resid.chunks[1:])
    rotated = [C @ Q for C, Q in zip(cross, eigen.vectors, strict=True)]
    fields = lazy_mode_products(rotated_resid * inv[None], [None, *rotated], [(n,), *chunks], groups=groups[::-1],
                                **spill)  # fmt: skip
    return mean + prior_test + eta2 * fields
