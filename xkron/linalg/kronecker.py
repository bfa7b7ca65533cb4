"""Array-level Kronecker algebra for Gaussian processes on grids.

Everything here works on plain arrays (numpy, and dask where noted) and knows nothing of
xarray or PyMC. A grid of D factors holds its data as a D-way tensor ``Y`` of shape
``(n_1, ..., n_D)``; ``vec(Y)`` in row-major order matches ``pm.math.cartesian`` and
``xarray.DataArray.stack``. The covariance is ``K = eta2 * (K_1 ⊗ ... ⊗ K_D)`` plus
``sigma2 * I``.

References
----------
Saatçi, Y. (2011). *Scalable inference for structured Gaussian process models*. PhD thesis,
University of Cambridge. Algorithm 16 (marginal likelihood by eigendecomposition).
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from xkron.linalg.loglik import Loglik
from xkron.settings import EIGH_SPLIT_MIN

_GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))  # radians; its multiples mod 2π never repeat

__all__ = [
    "KronEigen",
    "kron_contract",
    "kron_matvec",
    "marginal_loglik",
    "mode_product",
    "outer",
    "symmetric_eigh",
]


def mode_product(tensor, matrix, axis: int):
    """Mode-``axis`` product ``tensor ×_axis matrix``.

    Contracts axis ``axis`` of ``tensor`` with the second index of ``matrix`` (shape
    ``(m, n_axis)``); the result has ``m`` in place of ``n_axis``. Works on numpy and dask
    arrays alike (dask stays lazy).

    Examples
    --------
    >>> import numpy as np
    >>> Y = np.arange(6.0).reshape(2, 3)
    >>> M = np.ones((4, 3))
    >>> mode_product(Y, M, 1).shape
    (2, 4)
    """
    out = np.tensordot(tensor, matrix, axes=([axis], [1]))
    return np.moveaxis(out, -1, axis)


def kron_matvec(tensor, matrices: Sequence):
    """Apply ``(M_1 ⊗ ... ⊗ M_D) vec(tensor)`` by mode products; ``None`` means identity.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> A, B, Y = rng.normal(size=(2, 2)), rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    >>> np.allclose(kron_matvec(Y, [A, B]).ravel(), np.kron(A, B) @ Y.ravel())
    True
    """
    plain = isinstance(tensor, np.ndarray) and tensor.ndim == 2 and len(matrices) == 2
    if plain and all(m is not None for m in matrices):
        return matrices[0] @ tensor @ matrices[1].T  # two plain products: no tensordot/moveaxis overhead
    for axis, matrix in enumerate(matrices):
        if matrix is not None:
            tensor = mode_product(tensor, matrix, axis)
    return tensor


def outer(vectors: Sequence[np.ndarray]) -> np.ndarray:
    """Outer product ``v_1 ∘ ... ∘ v_D`` as a D-way tensor (the diagonal of ``⊗ diag(v_i)``)."""
    result = np.asarray(vectors[0])
    for v in vectors[1:]:
        result = np.multiply.outer(result, v)
    return result


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """``Σ a ∘ b`` without a temporary."""
    return float(np.dot(a.ravel(), b.ravel()))


def _broadcast_outer(vectors: Sequence[np.ndarray | None]):
    """``v_1 ∘ ... ∘ v_D`` as a broadcastable product (``None`` = ones), not a full tensor."""
    result = np.ones([1] * len(vectors))
    for axis, v in enumerate(vectors):
        if v is not None:
            shape = [1] * len(vectors)
            shape[axis] = len(v)
            result = result * v.reshape(shape)
    return result


def _contract_all_but(tensor: np.ndarray, vectors: Sequence[np.ndarray], keep: int | None):
    """Contract every axis except ``keep`` with the matching vector: ``Σ T_j ∏_{k≠keep} v_k[j_k]``."""
    for axis in reversed(range(tensor.ndim)):
        if axis != keep:
            tensor = np.tensordot(tensor, vectors[axis], axes=([axis], [0]))
    return tensor


def kron_contract(core, factors: Sequence, out_labels: Sequence[str], out_order: str):
    """Generalised Kronecker contraction ``Σ_j core[j] ∏_i factors[i][o_i, j_i]``.

    ``factors[i]`` has leading axes labelled by the characters of ``out_labels[i]`` and a
    last axis that matches axis ``i`` of ``core``. Factors that share an output label share
    that output axis (a set of scattered points), others give a grid. ``out_order`` lists
    the output labels in the order wanted. With one label per factor this is the mode
    product ``core ×_1 F_1 ... ×_D F_D``; with one shared label it evaluates the tensor
    at scattered points without forming any N×M matrix.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> core = rng.normal(size=(3, 4))
    >>> F1, F2 = rng.normal(size=(5, 3)), rng.normal(size=(5, 4))
    >>> grid = kron_contract(core, [F1, F2], ["a", "b"], "ab")
    >>> pts = kron_contract(core, [F1, F2], ["p", "p"], "p")
    >>> np.allclose(pts, np.diagonal(grid))
    True
    """
    inner = string.ascii_uppercase[: core.ndim]
    terms = [inner] + [labels + inner[i] for i, labels in enumerate(out_labels)]
    subscripts = ",".join(terms) + "->" + out_order
    return np.einsum(subscripts, core, *factors, optimize="greedy")


def _eigh(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return scipy.linalg.eigh(K, driver="evd", overwrite_a=True, check_finite=False)


def _canonical_signs(Q: np.ndarray) -> np.ndarray:
    """``Q`` with each column's sign fixed: its product with a fixed, non-symmetric vector is positive.

    LAPACK returns each eigenvector up to a sign that may flip under a change of ``K`` in its last
    digits. Exact results do not care, but the stochastic estimates (SLQ log-determinants, Hutchinson
    traces) draw their probes in the eigenbasis: a flipped column is a new probe, and the estimate
    jumps by a fraction of its standard error between hyperparameters 1e-4 apart (2 nats, se 7, in
    tutorial 6's Laplace fit), which stalls the MAP's line searches and corrupts INLA's finite-difference
    Hessian. With the signs fixed the estimate is a smooth function of the hyperparameters.
    """
    reference = np.sin(_GOLDEN_ANGLE * np.arange(1, Q.shape[0] + 1) + 0.5)
    return Q * np.where(reference @ Q < 0.0, -1.0, 1.0)


def is_centrosymmetric(K: np.ndarray) -> bool:
    """Whether ``J K J = K`` (``J`` the exchange matrix) to rounding, ``n·eps·max|K|``.

    A stationary kernel on coordinates that are symmetric about their midpoint, such as any
    evenly spaced grid (and Cartesian products of them), gives such a matrix.
    """
    n = K.shape[0]
    if n < 4:
        return False
    tol = 4 * n * np.finfo(float).eps * np.max(np.abs(K), initial=0.0)
    half = (n + 1) // 2  # rows i and n−1−i hold the same pairs: compare the top half only
    return bool(np.max(np.abs(K[:half] - K[::-1, ::-1][:half])) <= tol)


def symmetric_eigh(K, split_min: int = EIGH_SPLIT_MIN) -> tuple[np.ndarray, np.ndarray, bool]:
    """``K = Q diag(λ) Qᵀ`` for a symmetric ``K``; returns ``(λ, Q, split)``.

    A centrosymmetric ``K`` (see :func:`is_centrosymmetric`) splits exactly into two half-size
    problems (Cantoni & Butler 1976): with ``m = n // 2``, ``A = K[:m, :m]`` and
    ``C = K[:m, n−m:] J``, the eigenvectors ``[v; (√2 c); Jv]/√2`` solve
    ``[[A + C, √2 k], [√2 kᵀ, K_mm]]`` (``k = K[:m, m]``, the middle row only for odd ``n``) and
    the eigenvectors ``[v; (0); −Jv]/√2`` solve ``A − C``. Two ``eigh`` of half the size cost a
    quarter of one full ``eigh``, and :func:`rotate` with ``split=True`` applies such a ``Q`` at
    half the cost of a dense product. Factors smaller than ``split_min`` are not split. The
    eigenvalues come in no particular order.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.linspace(0, 1, 7)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.3**2)
    >>> lam, Q, split = symmetric_eigh(K, split_min=4)
    >>> bool(np.allclose(Q @ np.diag(lam) @ Q.T, K) and np.allclose(Q.T @ Q, np.eye(7)))
    True
    >>> split
    True
    """
    K = np.asarray(K, dtype=float)
    if K.shape[0] < split_min or not is_centrosymmetric(K):
        lam, Q = _eigh(K.copy())
        return lam, _canonical_signs(Q), False
    n = K.shape[0]
    m, odd = n // 2, n % 2
    K = 0.5 * (K + K[::-1, ::-1])
    A, C = K[:m, :m], K[:m, n - m :][:, ::-1]
    plus = np.empty((m + odd, m + odd))
    plus[:m, :m] = A + C
    if odd:
        plus[:m, m] = plus[m, :m] = np.sqrt(2.0) * K[:m, m]
        plus[m, m] = K[m, m]
    lam_plus, V_plus = _eigh(plus)
    lam_minus, V_minus = _eigh(A - C)
    Q = np.zeros((n, n))
    Q[:m, : m + odd] = Q[n - m :, : m + odd][::-1] = V_plus[:m] * np.sqrt(0.5)
    Q[:m, m + odd :] = V_minus * np.sqrt(0.5)
    Q[n - m :, m + odd :][::-1] = -Q[:m, m + odd :]
    if odd:
        Q[m, : m + odd] = V_plus[m]
    return np.concatenate([lam_plus, lam_minus]), _canonical_signs(Q), True


def _split_apply(M: np.ndarray, Q: np.ndarray, transpose: bool) -> np.ndarray:
    """``Q M`` (or ``Qᵀ M``) for a 2-D ``M`` and a ``Q`` from :func:`symmetric_eigh` with ``split``.

    Only the top rows of ``Q`` are read: ``P = Q[:m, :m+odd]`` (symmetric vectors),
    ``R = Q[:m, m+odd:]`` (skew ones) and, for odd ``n``, the middle row ``q``.
    """
    n = Q.shape[0]
    m, odd = n // 2, n % 2
    P, R = Q[:m, : m + odd], Q[:m, m + odd :]
    out = np.empty(M.shape, order="F" if M.ndim == 2 and not M.flags.c_contiguous else "C")
    if transpose:
        top, bottom = M[:m], M[n - m :][::-1]
        np.matmul(P.T, top + bottom, out=out[: m + odd])
        if odd:
            out[: m + odd] += np.multiply.outer(Q[m, : m + odd], M[m])
        np.matmul(R.T, top - bottom, out=out[m + odd :])
        return out
    a, b = P @ M[: m + odd], R @ M[m + odd :]
    np.add(a, b, out=out[:m])
    np.subtract(a, b, out=out[n - m :][::-1])
    if odd:
        out[m] = Q[m, : m + odd] @ M[: m + odd]
    return out


def rotate(tensor, Q: np.ndarray, axis: int, transpose: bool = False, split: bool = False):
    """Mode product of ``tensor`` with ``Q`` (``transpose``: ``Qᵀ``) along ``axis``.

    With ``split`` (a ``Q`` from :func:`symmetric_eigh` that says so) and a numpy ``tensor`` it
    costs half the dense product; otherwise it is :func:`mode_product` (numpy or dask).
    """
    if not split or not isinstance(tensor, np.ndarray):
        return mode_product(tensor, Q.T if transpose else Q, axis)
    if axis == tensor.ndim - 1 and tensor.flags.c_contiguous:
        # A transposed view: no copies in or out.
        flat = _split_apply(tensor.reshape(-1, tensor.shape[-1]).T, Q, transpose)
        return flat.T.reshape((*tensor.shape[:-1], Q.shape[0]))
    moved = np.moveaxis(tensor, axis, 0)
    flat = _split_apply(moved.reshape(moved.shape[0], -1), Q, transpose)
    return np.moveaxis(flat.reshape(moved.shape), 0, axis)


@dataclass(frozen=True)
class KronEigen:
    """Eigendecompositions ``K_i = Q_i diag(λ_i) Q_iᵀ`` of the factors of a Kronecker product.

    Eigenvalues are clipped at zero: each factor is a covariance (positive semi-definite),
    and round-off can push the zero eigenvalues of a rank-deficient factor (Cosine) below 0.
    """

    values: tuple[np.ndarray, ...]
    vectors: tuple[np.ndarray, ...]
    split: tuple[bool, ...] = ()

    @classmethod
    def from_factors(cls, factors: Sequence[np.ndarray]) -> KronEigen:
        values, vectors, split = [], [], []
        for K in factors:
            lam, Q, is_split = symmetric_eigh(K)
            values.append(np.clip(lam, 0.0, None))
            vectors.append(Q)
            split.append(is_split)
        return cls(tuple(values), tuple(vectors), tuple(split))

    def rotate(self, tensor, axis: int, transpose: bool = False, factor: int | None = None):
        """``tensor ×_axis Q_i`` (``transpose``: ``Q_iᵀ``), ``i = factor`` (default ``axis``)."""
        i = axis if factor is None else factor
        return rotate(tensor, self.vectors[i], axis, transpose, bool(self.split) and self.split[i])

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(v.shape[0] for v in self.values)

    def to_eigenbasis(self, tensor):
        """``tensor ×_1 Q_1ᵀ ... ×_D Q_Dᵀ``."""
        for axis in range(len(self.vectors)):
            tensor = self.rotate(tensor, axis, transpose=True)
        return tensor

    def from_eigenbasis(self, tensor):
        """``tensor ×_1 Q_1 ... ×_D Q_D``."""
        for axis in range(len(self.vectors)):
            tensor = self.rotate(tensor, axis)
        return tensor


def marginal_loglik(
    y: np.ndarray,
    factors: Sequence[np.ndarray] | KronEigen,
    eta2: float,
    sigma2: float,
    mean: float = 0.0,
    gradient: bool = False,
) -> Loglik:
    """Exact log marginal likelihood of ``y`` under ``N(mean, eta2 ⊗K_i + sigma2 I)``.

    Saatçi (2011), Algorithm 16: with ``Ỹ = (Y − mean) ×_i Q_iᵀ``, ``S = eta2 λ + sigma2``
    and ``W = 1/S``, ``log p = −½ Σ Ỹ² W − ½ Σ log S − (N/2) log 2π``.

    The gradient never differentiates eigenvectors, so it is exact for repeated and zero
    eigenvalues. With ``α̃ = Ỹ W`` and ``Λ = λ_1 ∘ ... ∘ λ_D``:

    - ``∂/∂K_i = ½ eta2 Q_i (H_i − diag w_i) Q_iᵀ`` where
      ``H_i[m, m'] = Σ_rest α̃[m, rest] α̃[m', rest] Λ_{−i}[rest]`` (the data term
      ``½ αᵀ (⊗ ... E_ab ...) α`` in the eigenbasis) and
      ``w_i[m] = Σ_{j: j_i=m} W_j Λ_{−i}[j]`` (the trace term, since
      ``diag(Q_kᵀ K_k Q_k) = λ_k``);
    - ``∂/∂eta2 = ½ Σ Λ α̃² − ½ Σ Λ W``;
    - ``∂/∂sigma2 = ½ Σ α̃² − ½ Σ W``;
    - ``∂/∂mean = Σ α = Σ α̃ ∏_i (Q_iᵀ 1)``.

    Examples
    --------
    >>> import numpy as np
    >>> from scipy.stats import multivariate_normal
    >>> x1, x2 = np.linspace(0, 1, 4), np.linspace(0, 1, 3)
    >>> K1 = np.exp(-0.5 * np.subtract.outer(x1, x1) ** 2)
    >>> K2 = np.exp(-np.abs(np.subtract.outer(x2, x2)))
    >>> y = np.arange(12.0).reshape(4, 3) / 10
    >>> ll = marginal_loglik(y, [K1, K2], eta2=1.5, sigma2=0.1).logp
    >>> dense = multivariate_normal(np.zeros(12), 1.5 * np.kron(K1, K2) + 0.1 * np.eye(12))
    >>> bool(np.isclose(ll, dense.logpdf(y.ravel())))
    True
    """
    eigen = factors if isinstance(factors, KronEigen) else KronEigen.from_factors(factors)
    y = np.asarray(y, dtype=float)
    if y.shape != eigen.shape:
        raise ValueError(f"data shape {y.shape} does not match the factor sizes {eigen.shape}")
    lam = outer(eigen.values)
    S = eta2 * lam + sigma2
    W = 1.0 / S
    y_tilde = eigen.to_eigenbasis(y - mean)
    alpha_tilde = y_tilde * W
    logp = -0.5 * _dot(y_tilde, alpha_tilde) - 0.5 * np.sum(np.log(S)) - 0.5 * y.size * np.log(2 * np.pi)
    if not gradient:
        return Loglik(float(logp), eigen=eigen, alpha_tilde=alpha_tilde, inv_diag=W)

    d_factors = []
    roots = [np.sqrt(v) for v in eigen.values]
    for i, Q in enumerate(eigen.vectors):
        # Λ_{−i}: the outer product of every factor's eigenvalues except factor i's.
        others = [np.ones_like(v) if k == i else v for k, v in enumerate(eigen.values)]
        # H = X Xᵀ with X = α̃ ∘ √Λ_{−i} (Λ ≥ 0): a symmetric rank-k product (BLAS syrk).
        X = alpha_tilde * _broadcast_outer([None if k == i else r for k, r in enumerate(roots)])
        if i == X.ndim - 1:
            flat = X.reshape(-1, Q.shape[0])
            H = flat.T @ flat
        else:
            flat = np.moveaxis(X, i, 0).reshape(Q.shape[0], -1)
            H = flat @ flat.T
        w = _contract_all_but(W, others, keep=i)
        H[np.diag_indices_from(H)] -= w
        # Q H Qᵀ = Q (Q H)ᵀ, H being symmetric.
        d_factors.append(0.5 * eta2 * eigen.rotate(eigen.rotate(H, 0, factor=i).T, 0, factor=i))
    weighted = lam * alpha_tilde
    return Loglik(
        logp=float(logp),
        eigen=eigen,
        alpha_tilde=alpha_tilde,
        inv_diag=W,
        d_factors=tuple(d_factors),
        d_eta2=float(0.5 * _dot(weighted, alpha_tilde) - 0.5 * _dot(lam, W)),
        d_sigma2=float(0.5 * _dot(alpha_tilde, alpha_tilde) - 0.5 * np.sum(W)),
        d_mean=float(_contract_all_but(alpha_tilde, [Q.sum(axis=0) for Q in eigen.vectors], keep=None)),
    )
