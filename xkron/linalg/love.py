"""Predicted variance on a gappy grid by Lanczos (LOVE), with a rigorous error bracket per cell.

On the observed cells ``o`` the covariance is ``A = η² (⊗K_i)_oo + diag(d_o)``; the explained
variance at a test cell ``j`` is ``η⁴ xⱼᵀ A⁻¹ xⱼ``, with ``xⱼ`` the row ``j`` of the cross-covariance
``K*`` (a Kronecker product of per-factor cross matrices) restricted to ``o``. Lanczos on ``A``
(Pleiss et al. 2018, "LOVE"), with full reorthogonalisation, gives after ``k`` steps an orthonormal
``Q`` (``n_o × k``), a tridiagonal ``T = QᵀAQ`` and the next vector ``q_{k+1}`` (``AQ = QT + β_k
q_{k+1} e_kᵀ``). In the basis ``[Q, Q⊥]``:

- ``xᵀQT⁻¹Qᵀx ≤ xᵀA⁻¹x`` (the inverse of a compression is below the compression of the inverse);
- the remainder is ``yᵀS⁻¹y`` with ``S`` the Schur complement of ``T`` in ``A`` and
  ``y = Q⊥ᵀx − β_k c Q⊥ᵀq_{k+1}``, ``c = e_kᵀT⁻¹Qᵀx``, because only ``q_{k+1}`` couples ``Q`` to
  its complement. ``S⁻¹`` is a diagonal block of ``A⁻¹`` in an orthonormal basis, so
  ``1/λ_max(A) ≤ S⁻¹ ≤ 1/λ_min(A)``, and ``‖y‖² = ‖x‖² − ‖Qᵀx‖² − 2β_k c q_{k+1}ᵀx + β_k²c²``.

Lanczos runs on the Jacobi-scaled ``A' = D^{-1/2}AD^{-1/2} = I + η²D^{-1/2}K_ooD^{-1/2}`` with
``x' = D^{-1/2}x`` (same quadratic form), so that ``λ_min(A') ≥ 1`` however unequal the noise, and
``λ_max(A') ≤ 1 + η² ∏‖K_i‖_∞ / min d_o``: every test cell gets the rigorous bracket
``x'ᵀQT⁻¹Qᵀx' + ‖y‖²/λ_max ≤ xᵀA⁻¹x ≤ x'ᵀQT⁻¹Qᵀx' + ‖y‖²``. The test side needs, per Lanczos
vector, one Kronecker contraction ``aᵢ = X'qᵢ`` (no ``N_test × k`` matrix): with the bidiagonal
Cholesky factor ``T = LLᵀ`` (whose leading part does not change as ``T`` grows),
``x'ᵀQT⁻¹Qᵀx' = Σ zᵢ²`` for ``z = L⁻¹a`` (a forward recurrence) and ``c = z_k / L_kk``; ``‖x'‖²`` is
the contraction of ``1/d`` on the observed cells with the elementwise-squared cross matrices. The
same holds block by block for block Lanczos (``p`` vectors per block, ``T`` block tridiagonal,
``β_k`` a ``p × p`` block), which turns the memory-bound reorthogonalisation into matrix products.

Lanczos runs until the bracket of the predicted sd is within a relative tolerance at every test
cell, or a step budget (memory: ``Q`` is ``k`` float64 vectors over the observed cells) is spent.
"""

from __future__ import annotations

import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from xkron.linalg.kronecker import kron_contract
from xkron.settings import LANCZOS_BLOCK, LANCZOS_CHECK_STEPS, LANCZOS_MAX_BYTES, LANCZOS_MAX_STEPS

__all__ = ["LanczosVariance", "lanczos_variance"]

STARTS = ("cross", "random")
"""Start vectors: the sum of the cross-covariance rows (as LOVE does), or Rademacher noise."""


@dataclass(frozen=True)
class LanczosVariance:
    """The posterior variance at test cells from :func:`lanczos_variance`, with its rigorous bracket.

    Attributes
    ----------
    variance : ndarray
        The midpoint of the bracket (what is returned as the predicted variance).
    lower, upper : ndarray
        Rigorous bounds on the exact variance (up to floating-point rounding).
    steps : int
        Lanczos steps taken.
    bound : float
        The achieved largest relative error of the predicted sd ``√variance`` over the test cells
        (``|√variance − sd| / sd`` for every ``sd`` in the bracket).
    tol : float
        The requested bound.
    """

    variance: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    steps: int
    bound: float
    tol: float

    @property
    def converged(self) -> bool:
        """Whether the bound met the tolerance."""
        return self.bound <= self.tol

    def report(self) -> dict:
        """The summary a result can show: ``method``, ``steps``, ``sd_bound`` (achieved), ``tol``, ``converged``."""
        return {
            "method": "lanczos",
            "steps": self.steps,
            "sd_bound": self.bound,
            "tol": self.tol,
            "converged": self.converged,
        }


def lanczos_variance(
    system,
    cross: Sequence[np.ndarray],
    labels: Sequence[str],
    out_order: str,
    prior: np.ndarray,
    *,
    tol: float,
    max_steps: int | None = None,
    start: str = "cross",
    block: int | None = None,
    seed: int = 0,
) -> LanczosVariance:
    """Posterior variance ``prior − η⁴ diag(K*_o A⁻¹ K*_oᵀ)`` at test cells, by adaptive Lanczos.

    Parameters
    ----------
    system : object
        The observed-cell system: ``matvec_observed``, ``observed``, ``eta2``, ``noise_var``, ``factors``.
    cross : sequence of ndarray
        Per factor, ``K*_i`` with leading axes labelled by ``labels[i]`` and a last axis over the
        factor's training inputs (:func:`xkron.linalg.kronecker.kron_contract`'s convention: shared
        labels are scattered points, distinct ones a grid).
    labels, out_order : sequence of str, str
        The output labels of each factor and their order in the result.
    prior : ndarray
        The prior variance ``η² k**`` at the test cells (shape of the result).
    tol : float
        Wanted bound on the relative error of the predicted sd at every cell.
    max_steps : int, optional
        Step budget; default :func:`step_budget` of the system.
    start : {"cross", "random"}
        The start vector (:data:`STARTS`).
    block : int, optional
        Lanczos vectors per block (default :data:`LANCZOS_BLOCK`; 1 on tiny problems): blocks turn the
        reorthogonalisation and the Kronecker products into matrix-matrix products.
    seed : int
        Seed of the random start vectors (and of completions after an exact breakdown).

    Warns
    -----
    RuntimeWarning
        When the budget is spent before the tolerance is met; the midpoint is still returned,
        with the achieved bound in :attr:`LanczosVariance.bound`.

    Examples
    --------
    >>> from xkron.linalg.iterative import IterativeSystem
    >>> x = np.linspace(0, 1, 8)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.3**2)
    >>> observed = np.random.default_rng(0).random((8, 8)) > 0.4
    >>> system = IterativeSystem([K, K], 1.0, 0.1, observed)
    >>> out = lanczos_variance(system, [K, K], ["a", "b"], "ab", np.ones((8, 8)), tol=1e-6)
    >>> o = observed.ravel()
    >>> Ks = np.kron(K, K)[:, o]
    >>> exact = 1 - np.einsum("ij,ji->i", Ks, np.linalg.solve(Ks[o] + 0.1 * np.eye(o.sum()), Ks.T))
    >>> bool(np.all(out.lower <= exact.reshape(8, 8) + 1e-12)), out.converged
    (True, True)
    """
    if start not in STARTS:
        raise ValueError(f"start={start!r} is not one of {STARTS}")
    observed = np.asarray(system.observed, dtype=bool)
    n_obs = int(observed.sum())
    wanted = step_budget(n_obs) if max_steps is None else int(max_steps)
    p = LANCZOS_BLOCK if block is None else int(block)
    p = p if n_obs > 32 * p else 1  # small problems: single vectors, up to the whole space
    blocks = max(1, min(-(-wanted // p), n_obs if p == 1 else n_obs // p - 1))
    # Jacobi scaling: Lanczos on A' = D^{-1/2} A D^{-1/2} = I + η² D^{-1/2} K_oo D^{-1/2}, whose smallest
    # eigenvalue is at least 1 whatever the noise spread, with x' = D^{-1/2} x.
    scale = 1.0 / np.sqrt(np.asarray(system.noise_var, dtype=float)[observed])
    contract = _contraction(observed, cross, labels, out_order, scale)
    inverse_noise = np.zeros(observed.shape)
    inverse_noise[observed] = scale * scale
    x2 = kron_contract(inverse_noise, [C * C for C in cross], labels, out_order)
    gershgorin = float(np.prod([np.abs(K).sum(axis=1).max() for K in system.factors]))
    lam_min, lam_max = 1.0, 1.0 + system.eta2 * gershgorin * float(scale.max()) ** 2
    rng = np.random.default_rng(seed)
    first = rng.choice([-1.0, 1.0], size=(p, n_obs))
    if start == "cross":
        first[0] = _cross_sum(observed, cross, labels, first[0]) * scale

    def matvec(v):
        return system.matvec_observed(v * scale) * scale

    lanczos = _BlockLanczos(matvec, first, blocks, rng)
    acc = _Accumulator(contract(lanczos.block(0)))
    eta4, prior = system.eta2**2, np.asarray(prior, dtype=float)
    every = max(1, round(LANCZOS_CHECK_STEPS / p))
    while True:
        diag, coupling = lanczos.step()
        k = lanczos.blocks
        acc.update(diag, coupling, contract(lanczos.block(k)))
        if k % every and k < blocks:
            continue
        result = _bracket(acc, x2, prior, eta4, lam_min, lam_max, k * p, tol)
        if result.converged or k >= blocks:
            break
    if not result.converged:
        achieved = (
            f"within {result.bound:.3g} of the exact one (relative bound)"
            if np.isfinite(result.bound)
            else "not yet bounded away from 0 at some cells"
        )
        warnings.warn(
            f"the Lanczos variance spent its budget of {result.steps} steps with the predicted sd {achieved}, "
            f"not within {tol:g}: raise solver_options variance_steps, or use solver_options "
            "variance='sampled' (Monte Carlo)",
            RuntimeWarning,
            stacklevel=2,
        )
    return result


def step_budget(n_observed: int) -> int:
    """Default most Lanczos steps: :data:`LANCZOS_MAX_STEPS`, fewer where ``Q`` would pass :data:`LANCZOS_MAX_BYTES`."""
    return max(1, min(LANCZOS_MAX_STEPS, LANCZOS_MAX_BYTES // (8 * max(n_observed, 1)) - 1))


def _bracket(acc, x2, prior, eta4, lam_min, lam_max, steps, tol) -> LanczosVariance:
    """The variance bracket after ``steps`` steps, its midpoint and the relative sd bound."""
    y2 = np.maximum(acc.y2(x2), 0.0)
    quad = acc.sum_z2.reshape(x2.shape)
    quad_lo = quad + y2 / lam_max
    quad_hi = quad + y2 / lam_min
    lower = np.maximum(prior - eta4 * quad_hi, 0.0)
    upper = np.maximum(prior - eta4 * quad_lo, lower)
    mid = 0.5 * (lower + upper)
    s_lo, s_mid, s_hi = np.sqrt(lower), np.sqrt(mid), np.sqrt(upper)
    with np.errstate(divide="ignore", invalid="ignore"):
        rel = np.maximum((s_mid - s_lo) / s_lo, (s_hi - s_mid) / s_hi)
    rel = np.where(upper == 0.0, 0.0, np.where(s_lo > 0, rel, np.inf))
    bound = float(np.max(rel, initial=0.0))
    return LanczosVariance(mid, lower, upper, steps, bound, float(tol))


class _Accumulator:
    """Running state over the test cells: ``Σ‖zᵢ‖²``, ``Σ‖aᵢ‖²``, the last block ``z_k`` and ``L_kk``.

    Blocks of ``p`` Lanczos vectors: ``T`` is block tridiagonal (diagonal blocks ``A_i``, coupling
    ``B_i = Q_{i+1}ᵀAQ_i``), its Cholesky factor block bidiagonal, ``z = L⁻¹a`` block by block and
    ``c = E_kᵀT⁻¹a = L_kk⁻ᵀ z_k``.
    """

    def __init__(self, a1: np.ndarray):
        self.a = a1  # (p, *test): a_k = Q_k X for the current block, before its update
        self.sum_z2 = 0.0
        self.sum_a2 = 0.0
        self.z = None
        self.chol = None
        self.coupling = None  # B_k

    def update(self, diag: np.ndarray, coupling: np.ndarray, a_next: np.ndarray) -> None:
        """Fold in block ``k`` (``A_k``, ``B_k``) and the next block's contraction ``a_{k+1}``."""
        p = len(diag)
        a = self.a.reshape(p, -1)
        if self.chol is None:
            sub, rhs = None, a
            schur = diag
        else:  # L_{k,k-1} = B_{k-1} L_{k-1,k-1}⁻ᵀ
            sub = self.coupling @ self.inv.T
            schur = diag - sub @ sub.T
            rhs = a - sub @ self.z
        try:
            self.chol = np.linalg.cholesky(0.5 * (schur + schur.T))
        except np.linalg.LinAlgError as err:
            raise np.linalg.LinAlgError("the Lanczos tridiagonal is not positive definite: neither is A") from err
        # Tiny triangular inverses applied by matmul: much faster than a solve with many right-hand sides.
        self.inv = scipy.linalg.solve_triangular(self.chol, np.eye(p), lower=True)
        self.z = self.inv @ rhs
        self.sum_z2 = self.sum_z2 + np.sum(self.z * self.z, axis=0)
        self.sum_a2 = self.sum_a2 + np.sum(a * a, axis=0)
        self.coupling = coupling
        self.a = a_next

    def y2(self, x2: np.ndarray) -> np.ndarray:
        """``‖y‖² = ‖x‖² − ‖Qᵀx‖² − 2 a_{k+1}ᵀB_k c + ‖B_k c‖²``."""
        c = self.inv.T @ self.z
        bc = self.coupling @ c
        a_next = self.a.reshape(len(bc), -1)
        y2 = x2.ravel() - self.sum_a2 - 2 * np.sum(a_next * bc, axis=0) + np.sum(bc * bc, axis=0)
        return y2.reshape(x2.shape)


class _BlockLanczos:
    """Block Lanczos on ``A`` (a ``matvec`` over rows) with full reorthogonalisation.

    Rows of ``Q`` are the basis vectors, ``p`` per block. A rank-deficient residual (an invariant
    subspace) is completed by random vectors orthogonal to the basis, with ``B_k = Q_{k+1}ᵀW``, so
    that ``AQ = QT + Q_{k+1}B_kE_kᵀ`` still holds.
    """

    def __init__(self, matvec, first: np.ndarray, blocks: int, rng):
        self.matvec, self.rng = matvec, rng
        p, n = first.shape
        self.p = p
        self.Q = np.empty(((blocks + 1) * p, n))  # pages are committed only as rows are written
        self.Q[:p] = self._orthonormal(first, 0)
        self.blocks = 0
        self.coupling = None

    def block(self, i: int) -> np.ndarray:
        return self.Q[i * self.p : (i + 1) * self.p]

    def step(self) -> tuple[np.ndarray, np.ndarray]:
        """One block step: ``A_k = Q_kᵀAQ_k`` and ``B_k = Q_{k+1}ᵀAQ_k``; the next block is stored."""
        k, p = self.blocks, self.p
        q = self.block(k)
        w = self.matvec(q)
        diag = q @ w.T
        diag = 0.5 * (diag + diag.T)
        w = w - diag @ q
        if k > 0:
            w = w - self.coupling @ self.block(k - 1)
        nxt = self._orthonormal(w, (k + 1) * p)
        self.Q[(k + 1) * p : (k + 2) * p] = nxt
        self.coupling = nxt @ w.T
        self.blocks = k + 1
        return diag, self.coupling

    def _orthonormal(self, w: np.ndarray, m: int) -> np.ndarray:
        """Orthonormal rows spanning ``w`` (completed at random), orthogonal to the first ``m`` rows of ``Q``."""
        if m + len(w) > w.shape[1]:  # the basis spans the whole space (block size 1): nothing couples
            return np.zeros_like(w)
        basis = self.Q[:m]
        w = self._project_out(w, basis)
        scale = np.sqrt(np.max(np.sum(w * w, axis=1), initial=0.0))
        q, r = np.linalg.qr(w.T)
        weak = np.abs(np.diag(r)) <= 1e-10 * max(scale, np.finfo(float).tiny)
        if weak.any():
            fresh = self._project_out(self.rng.standard_normal((int(weak.sum()), w.shape[1])), basis)
            q[:, weak] = fresh.T
            q, _ = np.linalg.qr(self._project_out(q.T, basis).T)
        return np.ascontiguousarray(q.T)

    @staticmethod
    def _project_out(w: np.ndarray, basis: np.ndarray) -> np.ndarray:
        if not len(basis):
            return w
        for _ in range(2):  # twice is enough (Giraud et al. 2005)
            w = w - (basis @ w.T).T @ basis  # this order keeps both products in BLAS's fast layout
        return w


def _contraction(observed, cross, labels, out_order, scale):
    """``Q ↦ (Q diag(scale)) Xᵀ``: rows over the observed cells contracted with the cross matrices."""
    flat = np.flatnonzero(observed.ravel())
    joined = "".join(labels)
    grid = len(set(joined)) == len(joined)

    def contract(q: np.ndarray) -> np.ndarray:
        full = np.zeros((len(q), observed.size))
        full[:, flat] = q * scale
        core = full.reshape(len(q), *observed.shape)
        if grid:  # mode products: each consumes axis 1 and appends the factor's test axes
            for C in cross:
                core = np.tensordot(core, C, axes=([1], [C.ndim - 1]))
            return np.ascontiguousarray(core.transpose(0, *[1 + joined.index(c) for c in out_order]))
        batch = next(c for c in string.ascii_lowercase if c not in joined)
        inner = string.ascii_uppercase[: observed.ndim]
        terms = [batch + inner] + [lab + inner[i] for i, lab in enumerate(labels)]
        return np.einsum(",".join(terms) + "->" + batch + out_order, core, *cross, optimize="greedy")

    return contract


def _cross_sum(observed, cross, labels, fallback) -> np.ndarray:
    """LOVE's start vector: the sum of the cross-covariance rows, over the observed cells."""
    inner = string.ascii_uppercase[: len(cross)]
    terms = [lab + inner[i] for i, lab in enumerate(labels)]
    summed = np.einsum(",".join(terms) + "->" + inner, *cross, optimize="greedy")[observed]
    return summed if np.any(summed) else fallback
