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

numpy, scipy and numba only; :mod:`xkron.models.centred` wraps these in PyTensor Ops.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numba
import numpy as np
import scipy.linalg
from scipy.linalg import lapack

from xkron.linalg.kronecker import kron_matvec, outer

__all__ = [
    "CentredField",
    "centred_field",
    "centred_field_vjp",
    "centred_from_field",
    "whitened_from_centred",
]

EIGEN_FLOOR = 1e-12
"""Eigenvalues of a factor below this fraction of its largest are raised to it: ``h`` is a square
root, and a rounding-error eigenvalue of zero (or below) would make its derivative infinite.
The factors of a latent model carry ``JITTER`` on the diagonal, far above this floor."""


class CentredField(NamedTuple):
    """The factors' eigendecompositions, the centred field ``g = S u`` and ``q = −log N(u; 0, I + sM) − N/2 log 2π``."""

    g: np.ndarray
    q: float
    eigenvalues: tuple[np.ndarray, ...]
    vectors: tuple[np.ndarray, ...]


def _eigh(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # LAPACK's dsyevd without numpy's wrapper (NUTS decomposes every factor at every gradient).
    # dsyevr was faster on smooth test matrices but 40% slower on a real Matérn factor of 50
    # points, whose eigenvalues cluster at the jitter.
    lam, Q, info = lapack.dsyevd(K, compute_v=1, lower=1)
    if info != 0:
        lam, Q = np.linalg.eigh(K)
    return np.maximum(lam, EIGEN_FLOOR * max(lam[-1], 0.0) + np.finfo(float).tiny), Q


def centred_field(factors: Sequence[np.ndarray], u: np.ndarray, s: float) -> CentredField:
    """``g = S u`` and ``q = ½ uᵀ(I + sM)⁻¹u + ½ log|I + sM|`` (module docstring), ``M = ⊗ factors``.

    Examples
    --------
    >>> K1, K2 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.eye(3)
    >>> u = np.arange(6.0).reshape(2, 3)
    >>> out = centred_field([K1, K2], u, 0.7)
    >>> lam, Q = np.linalg.eigh(np.kron(K1, K2))
    >>> S = Q @ np.diag(np.sqrt(lam / (1 + 0.7 * lam))) @ Q.T
    >>> bool(np.allclose(out.g.ravel(), S @ u.ravel()))
    True
    """
    eig = [_eigh(np.asarray(K, dtype=float)) for K in factors]
    lams, vectors = tuple(e[0] for e in eig), tuple(e[1] for e in eig)
    lam = outer(lams)
    one = 1.0 + s * lam
    uh = kron_matvec(u, [Q.T for Q in vectors])
    g = kron_matvec(np.sqrt(lam / one) * uh, vectors)
    q = 0.5 * float(np.sum(uh * uh / one)) + 0.5 * float(np.sum(np.log(one)))
    return CentredField(g, q, lams, vectors)


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


def _unfold(x: np.ndarray, axis: int) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1))


def centred_field_vjp(
    u: np.ndarray,
    s: float,
    eigenvalues: Sequence[np.ndarray],
    vectors: Sequence[np.ndarray],
    g_bar: np.ndarray,
    q_bar: float,
) -> tuple[list[np.ndarray], np.ndarray, float]:
    """The cotangents ``(K̄_d per factor, ū, s̄)`` of ``⟨ḡ, g⟩ + q̄ q`` (:func:`centred_field`), from its eigenpairs.

    Each ``K̄_d`` is symmetric (the function reads a factor as symmetric).
    """
    lam = outer(eigenvalues)
    r = 1.0 / (1.0 + s * lam)
    h = np.sqrt(lam * r)
    uh = kron_matvec(u, [Q.T for Q in vectors])
    gh = kron_matvec(g_bar, [Q.T for Q in vectors])
    u_bar = kron_matvec(h * gh + q_bar * r * uh, vectors)
    s_bar = float(np.sum(gh * (-0.5 * lam * h * r) * uh)) + 0.5 * q_bar * float(np.sum(lam * r * (1.0 - r * uh * uh)))
    G, U = gh * r, uh * r
    k_bars = []
    for d, Q in enumerate(vectors):
        # ∂λ/∂λ_d along the other factors: the product of their eigenvalues (row-major over them).
        rest = outer([e for k, e in enumerate(eigenvalues) if k != d]).ravel() if len(vectors) > 1 else np.ones(1)
        Ud = _unfold(U, d)
        B = _divided_sum(_unfold(G, d), Ud, _unfold(h, d), rest)
        B -= (0.5 * q_bar * s) * ((Ud * rest) @ Ud.T)
        B[np.diag_indices_from(B)] += (0.5 * q_bar * s) * (_unfold(r, d) @ rest)
        k_bars.append(Q @ B @ Q.T)  # B is symmetric: so is K̄
    return k_bars, u_bar, s_bar


def centred_from_field(field: np.ndarray, factors: Sequence[np.ndarray], eta: float, s: float, w: float) -> np.ndarray:
    """A start ``u`` for a rough link-scale ``field − μ``: its smooth part, ``u = S⁻¹ E[f − μ] / η``.

    ``E[f − μ]`` is the posterior mean of a Gaussian GP observing ``field`` with noise variance
    ``1 / w`` (``w`` the typical curvature): mode by mode ``η²λ / (η²λ + 1/w)`` of the field, so
    that the field's noise does not land in modes the prior keeps small, where ``S⁻¹`` is large.
    """
    eig = [_eigh(np.asarray(K, dtype=float)) for K in factors]
    lam = outer([e[0] for e in eig])
    vectors = [e[1] for e in eig]
    fh = kron_matvec(field, [Q.T for Q in vectors])
    # (η²λ w / (1 + η²λ w)) fh / (η h),  h = √(λ / (1 + sλ)),  written without dividing by a small λ.
    uh = eta * w * np.sqrt(lam) * np.sqrt(1.0 + s * lam) / (1.0 + eta**2 * w * lam) * fh
    return kron_matvec(uh, vectors)


def whitened_from_centred(u: np.ndarray, factors: Sequence[np.ndarray], s: float) -> np.ndarray:
    """The whitened field ``v = (⊗L_i)⁻¹ S u`` (``L_i = chol(K_i)``) with the same ``f − μ = η S u = η (⊗L_i) v``.

    Examples
    --------
    >>> K1, K2 = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([[1.0, 0.3], [0.3, 1.0]])
    >>> u = np.array([[1.0, -1.0], [0.5, 2.0]])
    >>> v = whitened_from_centred(u, [K1, K2], 0.4)
    >>> L = np.kron(np.linalg.cholesky(K1), np.linalg.cholesky(K2))
    >>> bool(np.allclose(L @ v.ravel(), centred_field([K1, K2], u, 0.4).g.ravel()))
    True
    """
    g = centred_field(factors, u, s).g
    inverses = [scipy.linalg.solve_triangular(np.linalg.cholesky(K), np.eye(len(K)), lower=True) for K in factors]
    return kron_matvec(g, inverses)
