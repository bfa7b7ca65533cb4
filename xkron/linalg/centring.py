"""A partially centred latent Kronecker field: value and exact vector-Jacobian product.

NUTS on a latent GP in whitened form (``f = μ + η L v``, ``v ~ N(0, I)``) mixes badly where the
data pin the field down: the posterior of ``v`` given ``θ`` has precision ``I + η² Lᵀ W L``
(``W = −∂² log p/∂f²``), far from the identity, and its mean moves as ``1/η``. The centred form
(``f`` itself) has the opposite trouble where the data are weak. Partial centring per eigenmode
(Papaspiliopoulos, Roberts & Sköld 2007) takes the best of both: with ``M = ⊗K_i = Q Λ Qᵀ``, a
typical curvature ``w̄`` and ``s = η² w̄``,

    f = μ + η S u,   S = Q diag(h(λ)) Qᵀ,   h(λ) = √(λ / (1 + sλ)),   u ~ N(0, I + sM),

so that ``η² S (I + sM) S = η² M`` (the prior of ``f`` is unchanged: an exact reparameterisation)
and, for constant ``W = w̄``, the posterior precision of ``u`` given ``θ`` is
``(I + sM)⁻¹ (I + η² w̄ M) = I``: every mode has unit scale whatever ``θ``, and a mode pinned by
the data (``sλ ≫ 1``) has ``u ≈ √w̄ (f − μ)``, which does not move with the hyperparameters.
This is the preconditioner ``P = I + η² w̄ Λ`` of :mod:`xkron.linalg.laplace`, made the sampler's
geometry.

``S`` and ``(I + sM)⁻¹`` are *matrix functions* of ``M``, not products with eigenvectors, so
they are smooth in the factors even where eigenvalues repeat (rank-deficient factors such as
Cosine or Linear plus jitter have many equal ones): their derivative is the Daleckii-Krein form
``Q (Γ ∘ Qᵀ dM Q) Qᵀ`` with ``Γ`` the divided differences of the function, here in closed form,

    Γ_h(a, b) = 1 / ((1 + sa)(1 + sb)(h(a) + h(b))),   Γ_r(a, b) = −s / ((1 + sa)(1 + sb))

for ``r(λ) = 1 / (1 + sλ)``, with no cancellation and no special case at ``a = b`` (PyTensor's
gradient of ``eigh`` divides by ``λ_a − λ_b`` there). With ``dM = dK_d ⊗ (the others)`` only
pairs of modes that differ in factor ``d`` meet, so the product costs ``O(N n_d)`` per factor.

NUTS evaluates this at every gradient, so value and product are one compiled (Numba) pass each,
exported as C functions (:data:`forward_entry`, :data:`backward_entry`) that the numpy functions
here and PyTensor's Numba backend (:mod:`xkron.models.centred`) both call: on the seed's 50 × 30
grid a gradient of the whole model went from 750 µs (numpy calls in Numba's object mode) to
440 µs. The eigendecompositions are most of what is left; a factor on a regular grid is
centrosymmetric and splits into two half-size ones (:func:`_eigh`), 170 → 118 µs for 50 points.
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence
from typing import NamedTuple

import llvmlite.binding as llvm
import numba
import numpy as np
import scipy.linalg

from xkron.linalg.kronecker import kron_matvec, outer

__all__ = [
    "CentredField",
    "backward_entry",
    "centred_field",
    "centred_field_vjp",
    "centred_from_field",
    "forward_entry",
    "whitened_from_centred",
]

EIGEN_FLOOR = 1e-12
"""Eigenvalues of a factor below this fraction of its largest are raised to it: ``h`` is a square
root, and a rounding-error eigenvalue of zero (or below) would make its derivative infinite.
The factors of a latent model carry ``JITTER`` on the diagonal, far above this floor."""

TINY = np.finfo(float).tiny

CENTRO_MIN = 8
"""Factors of at least this size are split in two when centrosymmetric (:func:`_eigh`): below it
the two LAPACK calls cost more than they save."""

CENTRO_TOL = 1e-13
"""A factor is centrosymmetric when ``|K − JKJ| ≤ CENTRO_TOL · max |K|`` (rounding of a regular
grid's coordinates, amplified by the kernel's slope: 1.3e-14 for a Cosine factor of 30 points); the split
then decomposes the centrosymmetric matrix of ``K``'s upper half, within this tolerance of ``K``."""


class CentredField(NamedTuple):
    """The factors' eigendecompositions, the centred field ``g = S u`` and ``q = −log N(u; 0, I + sM) − N/2 log 2π``."""

    g: np.ndarray
    q: float
    eigenvalues: tuple[np.ndarray, ...]
    vectors: tuple[np.ndarray, ...]


@numba.njit(cache=True)
def _eigh(K):  # pragma: no cover  (compiled; checked through centred_field and eigenpairs)
    """Eigenpairs of a symmetric factor (LAPACK's divide and conquer), eigenvalues floored; NaN if ``K`` is not finite.

    A centrosymmetric factor (``K[i, j] = K[n−1−i, n−1−j]``: any stationary kernel on a regular
    grid) splits into two blocks of half the size, whose eigenvectors are the symmetric and the
    antisymmetric ones of ``K``: two half-size decompositions cost about half of one full one.
    The eigenvalues are not sorted.
    """
    n = K.shape[0]
    if not np.all(np.isfinite(K)):
        return np.full(n, np.nan), np.full((n, n), np.nan)
    K = np.ascontiguousarray(K)
    if n >= CENTRO_MIN and np.max(np.abs(K - K[::-1, ::-1])) <= CENTRO_TOL * np.max(np.abs(K)):
        lam, Q = _eigh_centro(K)
    else:
        lam, Q = np.linalg.eigh(K)
    return np.maximum(lam, EIGEN_FLOOR * max(np.max(lam), 0.0) + TINY), np.ascontiguousarray(Q)


@numba.njit(cache=True)
def _eigh_centro(K):  # pragma: no cover
    """Eigenpairs of a centrosymmetric ``K`` from its even block ``A + CJ`` (with the middle row
    and column, scaled by √2, for odd ``n``) and its odd block ``A − CJ``; ``J`` reverses."""
    n = K.shape[0]
    m, odd = n // 2, n % 2
    A, CJ = K[:m, :m], K[:m, n - 1 : n - m - 1 : -1]
    even = np.empty((m + odd, m + odd))
    even[:m, :m] = A + CJ
    if odd:
        even[:m, m] = even[m, :m] = np.sqrt(2.0) * K[:m, m]
        even[m, m] = K[m, m]
    le, ye = np.linalg.eigh(0.5 * (even + even.T))
    lo, yo = np.linalg.eigh(0.5 * ((A - CJ) + (A - CJ).T))
    r = 1.0 / np.sqrt(2.0)
    Q = np.zeros((n, n))
    Q[:m, : m + odd] = r * ye[:m]
    Q[n - m :, : m + odd] = r * ye[:m][::-1]  # J y: the mirrored half
    if odd:
        Q[m, : m + odd] = ye[m]
    Q[:m, m + odd :] = r * yo
    Q[n - m :, m + odd :] = -r * yo[::-1]
    return np.concatenate((le, lo)), Q


@numba.njit(cache=True)
def _mode(x, Q, a, n, b):  # pragma: no cover
    """``(I_a ⊗ Q ⊗ I_b) x`` for a flat, C-ordered ``x`` of ``a·n·b`` cells: BLAS products."""
    if b == 1:
        return np.ascontiguousarray(x.reshape(a, n) @ Q.T).reshape(-1)
    if a == 1:
        return np.ascontiguousarray(Q @ x.reshape(n, b)).reshape(-1)
    out = np.empty((a, n, b))
    x3 = x.reshape(a, n, b)
    for i in range(a):
        out[i] = Q @ x3[i]
    return out.reshape(-1)


@numba.njit(cache=True)
def _rotate(x, matrices):  # pragma: no cover
    """``(⊗ matrices) x`` for a flat ``x``, factor by factor."""
    a = 1
    for d in range(len(matrices)):
        n = matrices[d].shape[0]
        x = _mode(x, matrices[d], a, n, x.size // (a * n))
        a *= n
    return x


@numba.njit(cache=True)
def _outer(vectors, skip):  # pragma: no cover
    """The flat outer product of ``vectors`` leaving out number ``skip`` (row-major: the grid's order)."""
    out = np.ones(1)
    for d in range(len(vectors)):
        if d != skip:
            out = np.outer(out, vectors[d]).reshape(-1)
    return out


@numba.njit(cache=True)
def _unfold(x, a, n, b):  # pragma: no cover
    """A flat ``a·n·b`` grid as ``n × (a·b)``: factor ``d``'s index first, the others in order."""
    x3 = x.reshape(a, n, b)
    out = np.empty((n, a * b))
    for i in range(a):
        out[:, i * b : (i + 1) * b] = x3[i]
    return out


@numba.njit(cache=True)
def _forward(factors, u, s, shift):  # pragma: no cover
    """``(g, q, eigenvalues, eigenvectors)`` of :func:`centred_field`, ``u`` flat."""
    lams, vectors, transposed = [], [], []
    for d in range(len(factors)):
        lam, Q = _eigh(factors[d])
        lams.append(lam)
        vectors.append(Q)
        transposed.append(np.ascontiguousarray(Q.T))
    lam = _outer(lams, -1)
    one = 1.0 + s * lam
    h = np.sqrt(lam / one)
    uh = _rotate(u, transposed)
    if shift != 0.0:
        uh -= shift * h * _ones_hat(vectors)
    g = _rotate(h * uh, vectors)
    q = 0.5 * np.sum(uh * uh / one) + 0.5 * np.sum(np.log(one))
    return g, q, lams, vectors


@numba.njit(cache=True)
def _ones_hat(vectors):  # pragma: no cover
    """``(⊗Q_d)ᵀ 1``, flat: the outer product of the eigenvectors' column sums."""
    return _outer([Q.sum(axis=0) for Q in vectors], -1)


@numba.njit(cache=True, fastmath=True, error_model="numpy")
def _divided_sum(G, U, H, weight):  # pragma: no cover  (compiled; checked through centred_field_vjp)
    """The symmetric part of ``B[i, j] = Σ_r weight[r] G[i, r] U[j, r] / (H[i, r] + H[j, r])``."""
    n, m = G.shape
    Gw = G * weight.reshape(1, -1)
    B = np.empty((n, n))
    for i in range(n):
        gi, ui, hi = Gw[i], U[i], H[i]
        for j in range(i, n):
            gj, uj, hj = Gw[j], U[j], H[j]
            acc = 0.0
            for r in range(m):  # contiguous rows, no bounds or zero checks: the loop vectorises
                acc += (gi[r] * uj[r] + gj[r] * ui[r]) / (hi[r] + hj[r])
            B[i, j] = B[j, i] = 0.5 * acc
    return B


@numba.njit(cache=True)
def _backward(u, s, shift, lams, vectors, g_bar, q_bar):  # pragma: no cover
    """``(K̄ per factor, ū, s̄, c̄)`` of :func:`centred_field_vjp`, ``u`` and ``g_bar`` flat."""
    transposed = [np.ascontiguousarray(Q.T) for Q in vectors]
    lam = _outer(lams, -1)
    r = 1.0 / (1.0 + s * lam)
    h = np.sqrt(lam * r)
    ones = _ones_hat(vectors)
    uh, gh = _rotate(u, transposed), _rotate(g_bar, transposed)
    if shift != 0.0:
        uh -= shift * h * ones
    zeta = h * gh + q_bar * r * uh  # the cotangent of uh
    u_bar = _rotate(zeta, vectors)
    s_bar = np.sum(gh * (-0.5 * lam * h * r) * uh) + 0.5 * q_bar * np.sum(lam * r * (1.0 - r * uh * uh))
    shift_bar = -np.sum(zeta * h * ones)  # uh = Qᵀu − c h Qᵀ1: through c and, below, through h(s) and K
    if shift != 0.0:
        s_bar += 0.5 * shift * np.sum(zeta * ones * lam * h * r)
    G, U, c = gh * r, uh * r, 0.5 * q_bar * s
    k_bars, a = [], 1
    for d in range(len(vectors)):
        n = vectors[d].shape[0]
        b = u.size // (a * n)
        rest = _outer(lams, d)  # ∂λ/∂λ_d along the other factors: the product of their eigenvalues
        Ud, Hd = _unfold(U, a, n, b), _unfold(h, a, n, b)
        B = _divided_sum(_unfold(G, a, n, b), Ud, Hd, rest)
        if shift != 0.0:  # u = u' − c S1 moves with K too: the product of S1's derivative with −c ū
            B += _divided_sum(_unfold(-shift * zeta * r, a, n, b), _unfold(ones * r, a, n, b), Hd, rest)
        if c != 0.0:
            B -= c * ((Ud * rest) @ Ud.T)
            diagonal = _unfold(r, a, n, b) @ rest
            for i in range(n):
                B[i, i] += c * diagonal[i]
        k_bars.append(vectors[d] @ B @ transposed[d])  # B is symmetric: so is K̄
        a *= n
    return k_bars, u_bar, s_bar, shift_bar


_I64P, _F64P = numba.types.CPointer(numba.types.int64), numba.types.CPointer(numba.types.float64)


@numba.njit(cache=True)
def _views(flat, sizes, square):  # pragma: no cover
    """Consecutive blocks of ``flat``: ``n × n`` matrices (``square``) or vectors of ``n``, ``n`` in ``sizes``."""
    out, start = [], 0
    for n in sizes:
        size = n * n if square else n
        out.append(flat[start : start + size].reshape(n, size // n))
        start += size
    return out


_FORWARD_SIGNATURE = numba.types.void(
    numba.types.int64, _I64P, _F64P, _F64P, numba.types.float64, numba.types.float64, _F64P, _F64P, _F64P, _F64P
)
_BACKWARD_SIGNATURE = numba.types.void(
    numba.types.int64, _I64P, _F64P, numba.types.float64, numba.types.float64, _F64P, _F64P, _F64P,
    numba.types.float64, _F64P, _F64P, _F64P,
)  # fmt: skip


@numba.cfunc(_FORWARD_SIGNATURE, cache=True)
def _forward_entry(n_factors, sizes, factors, u, s, shift, g, q, eigenvalues, vectors):  # pragma: no cover
    dims = numba.carray(sizes, (n_factors,))
    n, n2, cells = np.sum(dims), np.sum(dims * dims), np.prod(dims)
    mats = _views(numba.carray(factors, (n2,)), dims, True)
    values, q_value, lams, qs = _forward(mats, numba.carray(u, (cells,)), s, shift)
    numba.carray(g, (cells,))[:] = values
    numba.carray(q, (1,))[0] = q_value
    lam_out, vec_out = (
        _views(numba.carray(eigenvalues, (n,)), dims, False),
        _views(numba.carray(vectors, (n2,)), dims, True),
    )
    for d in range(n_factors):
        lam_out[d][:, 0] = lams[d]
        vec_out[d][:] = qs[d]


@numba.cfunc(_BACKWARD_SIGNATURE, cache=True)
def _backward_entry(
    n_factors, sizes, u, s, shift, eigenvalues, vectors, g_bar, q_bar, k_bars, u_bar, scalars
):  # pragma: no cover
    dims = numba.carray(sizes, (n_factors,))
    n, n2, cells = np.sum(dims), np.sum(dims * dims), np.prod(dims)
    lams = [x[:, 0].copy() for x in _views(numba.carray(eigenvalues, (n,)), dims, False)]
    qs = _views(numba.carray(vectors, (n2,)), dims, True)
    bars, u_out, s_bar, c_bar = _backward(
        numba.carray(u, (cells,)), s, shift, lams, qs, numba.carray(g_bar, (cells,)), q_bar
    )
    k_out = _views(numba.carray(k_bars, (n2,)), dims, True)
    for d in range(n_factors):
        k_out[d][:] = bars[d]
    numba.carray(u_bar, (cells,))[:] = u_out
    numba.carray(scalars, (2,))[:] = np.array([s_bar, c_bar])


FORWARD_SYMBOL = "xkron_centred_forward"
BACKWARD_SYMBOL = "xkron_centred_backward"
llvm.add_symbol(FORWARD_SYMBOL, _forward_entry.address)
llvm.add_symbol(BACKWARD_SYMBOL, _backward_entry.address)

forward_entry = numba.types.ExternalFunction(FORWARD_SYMBOL, _FORWARD_SIGNATURE)
""":func:`centred_field` as a C function for PyTensor's Numba backend (:mod:`xkron.models.centred`):
``(D, sizes, factors, u, s, shift, g, q, eigenvalues, eigenvectors)``, every array a pointer to float64
(``sizes`` to int64), the factors and eigenvectors concatenated row-major, the outputs preallocated.
A compiled graph calls it by its symbol (registered with LLVM when this module is imported), so
graphs stay cacheable; linking the compiled code into every graph instead tripled their compile
time (30 s against 12 s for the seed's model, PyTensor's cache cold)."""

backward_entry = numba.types.ExternalFunction(BACKWARD_SYMBOL, _BACKWARD_SIGNATURE)
""":func:`centred_field_vjp` as a C function: ``(D, sizes, u, s, shift, eigenvalues, eigenvectors, ḡ, q̄,
K̄ (concatenated), ū, (s̄, c̄))``, as :data:`forward_entry`."""


def _pointers(*arrays) -> list:
    """C pointers to ``arrays`` (int64 for the sizes, else float64), C-ordered copies where they are not already.

    Output buffers must be C-ordered float64 already, so that the pointer is to them; a pointer
    keeps its array alive."""
    out = []
    for x in arrays:
        kind = ctypes.c_int64 if np.asarray(x).dtype == np.int64 else ctypes.c_double
        x = np.ascontiguousarray(x, dtype=np.int64 if kind is ctypes.c_int64 else float)
        out.append(x.ctypes.data_as(ctypes.POINTER(kind)))
    return out


def _blocks(flat: np.ndarray, sizes: np.ndarray, square: bool) -> list[np.ndarray]:
    """The per-factor vectors of ``n`` (or ``n × n`` matrices, ``square``) of a concatenated buffer."""
    ends = np.cumsum(sizes**2 if square else sizes)
    return [flat[e - n * n : e].reshape(n, n) if square else flat[e - n : e] for e, n in zip(ends, sizes, strict=True)]


def _matrices(arrays) -> tuple[np.ndarray, ...]:
    """C-ordered float64 views (copies where needed): the layout the compiled kernels read."""
    return tuple(np.ascontiguousarray(x, dtype=float) for x in arrays)


def centred_field(factors: Sequence[np.ndarray], u: np.ndarray, s: float, shift: float = 0.0) -> CentredField:
    """``g = S ũ`` and ``q = ½ ũᵀ(I + sM)⁻¹ũ + ½ log|I + sM|`` with ``ũ = u − shift · S1`` (module docstring).

    ``M = ⊗ factors``. The shift (``c = μ η w̄`` for a free mean ``μ``) takes the mean out of the
    modes the data pin down: ``μ + η S ũ = μ (I + sM)⁻¹ 1 + η S u``, so that there ``u`` stays put
    when ``μ`` moves; it is a shear of ``(u, μ)``, with Jacobian 1.

    Examples
    --------
    >>> K1, K2 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.eye(3)
    >>> u = np.arange(6.0).reshape(2, 3)
    >>> out = centred_field([K1, K2], u, 0.7)
    >>> lam, Q = np.linalg.eigh(np.kron(K1, K2))
    >>> S = Q @ np.diag(np.sqrt(lam / (1 + 0.7 * lam))) @ Q.T
    >>> bool(np.allclose(out.g.ravel(), S @ u.ravel()))
    True
    >>> shifted = centred_field([K1, K2], u, 0.7, shift=0.4)
    >>> bool(np.allclose(shifted.g.ravel(), S @ (u.ravel() - 0.4 * S @ np.ones(6))))
    True
    """
    u, mats = np.asarray(u, dtype=float), _matrices(factors)
    sizes = np.array([len(K) for K in mats], dtype=np.int64)
    g, q, lams, vectors = np.empty(u.size), np.empty(1), np.empty(sizes.sum()), np.empty(np.sum(sizes**2))
    _forward_entry.ctypes(len(mats), *_pointers(sizes, np.concatenate([K.ravel() for K in mats]), u),
                          float(s), float(shift), *_pointers(g, q, lams, vectors))  # fmt: skip
    lams, vectors = tuple(_blocks(lams, sizes, False)), tuple(_blocks(vectors, sizes, True))
    return CentredField(g.reshape(u.shape), float(q[0]), lams, vectors)


def centred_field_vjp(
    u: np.ndarray,
    s: float,
    eigenvalues: Sequence[np.ndarray],
    vectors: Sequence[np.ndarray],
    g_bar: np.ndarray,
    q_bar: float,
    shift: float = 0.0,
) -> tuple[list[np.ndarray], np.ndarray, float, float]:
    """The cotangents ``(K̄_d per factor, ū, s̄, c̄)`` of ``⟨ḡ, g⟩ + q̄ q`` (:func:`centred_field`, ``c`` the shift).

    From the eigenpairs of the forward pass.

    Each ``K̄_d`` is symmetric (the function reads a factor as symmetric).
    """
    u, lams, mats = np.asarray(u, dtype=float), _matrices(eigenvalues), _matrices(vectors)
    sizes = np.array([len(x) for x in lams], dtype=np.int64)
    k_bars, u_bar, scalars = np.empty(np.sum(sizes**2)), np.empty(u.size), np.empty(2)
    flat_l, flat_q = np.concatenate(lams), np.concatenate([Q.ravel() for Q in mats])
    _backward_entry.ctypes(len(mats), *_pointers(sizes, u), float(s), float(shift), *_pointers(flat_l, flat_q, g_bar),
                           float(q_bar), *_pointers(k_bars, u_bar, scalars))  # fmt: skip
    return _blocks(k_bars, sizes, True), u_bar.reshape(u.shape), float(scalars[0]), float(scalars[1])


def centred_from_field(
    field: np.ndarray, factors: Sequence[np.ndarray], eta: float, s: float, w: float, shift: float = 0.0
) -> np.ndarray:
    """A start ``u`` for a rough link-scale ``field − μ``: its smooth part, ``u − shift · S1 = S⁻¹ E[f − μ] / η``.

    ``E[f − μ]`` is the posterior mean of a Gaussian GP observing ``field`` with noise variance
    ``1 / w`` (``w`` the typical curvature): mode by mode ``η²λ / (η²λ + 1/w)`` of the field, so
    that the field's noise does not land in modes the prior keeps small, where ``S⁻¹`` is large.
    ``shift`` is that of :func:`centred_field`.
    """
    eig = [_eigh(K) for K in _matrices(factors)]
    lam = outer([e[0] for e in eig])
    vectors = [e[1] for e in eig]
    fh = kron_matvec(field, [Q.T for Q in vectors])
    # (η²λ w / (1 + η²λ w)) fh / (η h),  h = √(λ / (1 + sλ)),  written without dividing by a small λ.
    uh = eta * w * np.sqrt(lam) * np.sqrt(1.0 + s * lam) / (1.0 + eta**2 * w * lam) * fh
    if shift != 0.0:
        uh += shift * np.sqrt(lam / (1.0 + s * lam)) * outer([Q.sum(axis=0) for Q in vectors])
    return kron_matvec(uh, vectors)


def whitened_from_centred(u: np.ndarray, factors: Sequence[np.ndarray], s: float, shift: float = 0.0) -> np.ndarray:
    """The whitened field ``v = (⊗L_i)⁻¹ S ũ`` (``L_i = chol(K_i)``) with the same ``f − μ = η S ũ = η (⊗L_i) v``.

    ``ũ = u − shift · S1`` as in :func:`centred_field`.

    Examples
    --------
    >>> K1, K2 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, 0.3], [0.3, 1.0]])
    >>> u = np.array([[1.0, -1.0], [0.5, 2.0]])
    >>> v = whitened_from_centred(u, [K1, K2], 0.4)
    >>> L = np.kron(np.linalg.cholesky(K1), np.linalg.cholesky(K2))
    >>> bool(np.allclose(L @ v.ravel(), centred_field([K1, K2], u, 0.4).g.ravel()))
    True
    """
    g = centred_field(factors, u, s, shift).g
    inverses = [scipy.linalg.solve_triangular(np.linalg.cholesky(K), np.eye(len(K)), lower=True) for K in factors]
    return kron_matvec(g, inverses)
