"""The Kronecker pieces shared by the iterative systems on a gappy grid: :class:`GridOperators`.

Both formulations of :mod:`xkron.linalg.systems` (the Schur complement on the missing cells,
:class:`xkron.linalg.iterative.IterativeSystem`, and conjugate gradients on the observed cells,
:class:`xkron.linalg.observed_cg.ObservedSystem`) work with the same operators on batches of flat
grid vectors ``(B, N)``: ``(⊗K_i) v`` by mode products, the full-grid ``F = η² ⊗K_i + d₀ I``
exactly in the Kronecker eigenbasis, ``G = η² ⊗K_i + D̃`` and the bilinear forms of their
derivatives that the gradients need. They live here once.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import numpy as np

from xkron.linalg.cg import CGReport
from xkron.linalg.kronecker import KronEigen, outer
from xkron.settings import CG_MAX_ITER, CG_PROBES, CG_TOL

__all__ = ["GridOperators", "apply_each", "unfold_gram"]


class GridOperators:
    """``A = η² (⊗K_i)_oo + diag(noise_var_o)`` on the observed cells of a grid: the shared operators.

    Parameters
    ----------
    factors : sequence of ndarray
        Symmetric factor matrices ``K_i``.
    eta2 : float
        ``η²``.
    noise_var : array_like
        Noise variance per cell, broadcastable to the grid; positive at observed cells
        (ignored elsewhere).
    observed : ndarray of bool
        The grid's observed cells.
    tol, probes, seed, max_iter
        CG relative residual, Rademacher probes per stochastic estimate, their seed, and the CG
        iteration cap (defaults :data:`~xkron.settings.CG_TOL`, :data:`~xkron.settings.CG_PROBES`,
        0, :data:`~xkron.settings.CG_MAX_ITER`).
    """

    formulation = ""

    def __init__(
        self,
        factors: Sequence[np.ndarray],
        eta2: float,
        noise_var,
        observed: np.ndarray,
        *,
        tol: float = CG_TOL,
        probes: int = CG_PROBES,
        seed: int = 0,
        max_iter: int = CG_MAX_ITER,
    ):
        self.factors = [np.asarray(K, dtype=float) for K in factors]
        self.shape = tuple(K.shape[0] for K in self.factors)
        self.observed = np.asarray(observed, dtype=bool)
        if self.observed.shape != self.shape:
            raise ValueError(f"observed has shape {self.observed.shape}, the grid {self.shape}")
        if not self.observed.any():
            raise ValueError("no cell is observed")
        noise_var = np.broadcast_to(np.asarray(noise_var, dtype=float), self.shape)
        bad = self.observed & ~(noise_var > 0)
        if bad.any():
            raise ValueError(f"noise variance must be positive at observed cells; {int(bad.sum())} are not")
        self.eta2 = float(eta2)
        self.floor = float(noise_var[self.observed].min())
        # D̃: the noise at observed cells, the floor d₀ at missing ones (any value works: A = G_oo).
        self.noise_var = np.where(self.observed, noise_var, self.floor)
        self.equal_noise = bool(np.all(self.noise_var == self.floor))
        self.missing = ~self.observed.ravel()
        self.tol, self.probes, self.seed, self.max_iter = tol, probes, seed, max_iter
        self.eigen = KronEigen.from_factors(self.factors)
        self.f_diag = self.eta2 * outer(self.eigen.values) + self.floor
        self._reports: list[CGReport] = []

    @property
    def n_observed(self) -> int:
        return int(self.observed.sum())

    @property
    def report(self) -> CGReport:
        """CG iterations and residual of the hardest solve of the last :meth:`loglik` or :meth:`solve`."""
        return CGReport.merge(self._reports)

    def rotate(self, v: np.ndarray, transpose: bool, single: bool = False) -> np.ndarray:
        """``(⊗Q_i) v`` (``transpose``: ``(⊗Q_iᵀ) v``) for rows ``v`` over the grid (``single``: in float32)."""
        if single:
            v = np.asarray(v, dtype=np.float32)
        mats = [Q.T if transpose else Q for Q in (self._vectors32 if single else self.eigen.vectors)]
        return apply_each(v, mats, self.shape)

    def f_power(self, v: np.ndarray, power: float, single: bool = False) -> np.ndarray:
        """``F^power v``, exactly in the Kronecker eigenbasis.

        ``single``: the two rotations in float32 (about three times faster, relative rounding about
        1e-6), for solves whose tolerance is far above it (:data:`~xkron.settings.SINGLE_PRECISION_TOL`).
        """
        scale = self.f_diag.ravel() ** power
        scale = scale.astype(np.float32) if single else scale
        return self.rotate(self.rotate(v, True, single) * scale, False, single).astype(np.float64, copy=False)

    @cached_property
    def _vectors32(self) -> list[np.ndarray]:
        return [np.asarray(Q, dtype=np.float32) for Q in self.eigen.vectors]

    def k_apply(self, v: np.ndarray, skip: int | None = None, single: bool = False) -> np.ndarray:
        """``(⊗K_i) v`` (no ``η²``); ``skip`` leaves factor ``skip`` out; ``single``: float32, as :meth:`f_power`."""
        if not single:
            return apply_each(v, [None if i == skip else K for i, K in enumerate(self.factors)], self.shape)
        mats = [None if i == skip else K for i, K in enumerate(self._factors32)]
        return apply_each(np.asarray(v, dtype=np.float32), mats, self.shape).astype(np.float64)

    @cached_property
    def _factors32(self) -> list[np.ndarray]:
        return [np.asarray(K, dtype=np.float32) for K in self.factors]

    def g_matvec(self, v: np.ndarray, single: bool = False) -> np.ndarray:
        """``G v = η² (⊗K_i) v + D̃ v`` on the full grid."""
        return self.eta2 * self.k_apply(v, single=single) + self.noise_var.ravel() * v

    def embed(self, v: np.ndarray) -> np.ndarray:
        """Rows over the observed cells as full-grid rows, zero at missing cells."""
        full = np.zeros((len(v), self.missing.size))
        full[:, ~self.missing] = v
        return full

    def matvec_observed(self, v: np.ndarray, single: bool = False) -> np.ndarray:
        """``A v`` for rows ``v`` of shape ``(B, n_observed)`` over the observed cells (row-major order)."""
        return self.g_matvec(self.embed(v), single)[:, ~self.missing]

    def bilinear(self, x: np.ndarray, y: np.ndarray):
        """``Σ_p x_pᵀ (∂G) y_p`` for ``∂G/∂K_i`` (every entry free), ``∂G/∂η²`` and ``∂G/∂σ²``."""
        d_factors = []
        for i in range(len(self.factors)):
            # ∂/∂K_i of uᵀ(⊗K)v is Σ_rest u[a, rest] (v ×_{k≠i} K_k)[b, rest].
            H = unfold_gram(x, self.k_apply(y, skip=i), self.shape, i)
            d_factors.append(0.5 * self.eta2 * (H + H.T))
        return d_factors, float(np.sum(x * self.k_apply(y))), float(np.sum(x * y))


def apply_each(v: np.ndarray, matrices: Sequence[np.ndarray | None], shape: tuple[int, ...]) -> np.ndarray:
    """``(M_1 ⊗ ... ⊗ M_D) v_p`` for every row ``v_p`` of ``v`` (``None``: identity).

    Each mode product is a batched ``matmul`` on a contiguous view (no transposed copies):
    axis ``i`` of the row-major tensor sits between ``∏_{k<i} n_k`` and ``∏_{k>i} n_k``.
    """
    out = np.ascontiguousarray(v).reshape(len(v), *shape)
    rows = len(v)
    for i, M in enumerate(matrices):
        if M is None:
            continue
        before, after = rows * int(np.prod(shape[:i])), int(np.prod(shape[i + 1 :]))
        if after == 1:
            out = out.reshape(-1, shape[i]) @ M.T
        else:
            out = np.matmul(M, out.reshape(before, shape[i], after))
    return out.reshape(rows, -1)


def unfold_gram(a: np.ndarray, b: np.ndarray, shape: tuple[int, ...], axis: int) -> np.ndarray:
    """``Σ_{p, rest} a[p, m, rest] b[p, m', rest]`` over grid axis ``axis`` of flat rows."""
    n = shape[axis]
    before, after = len(a) * int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1 :]))
    a, b = a.reshape(before, n, after), b.reshape(before, n, after)
    if after == 1:
        return a.reshape(-1, n).T @ b.reshape(-1, n)
    if before < 8:
        return np.einsum("bia,bja->ij", a, b, optimize=True)
    return sum(x @ y.T for x, y in zip(a, b, strict=True))
