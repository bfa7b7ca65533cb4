"""The gradient of the Laplace log marginal with respect to the kernel factors, the amplitude and the mean.

Rasmussen & Williams (2006), Alg. 5.1, with every matrix applied through Kronecker products. At the
mode ``f̂`` (:func:`xkron.linalg.laplace.newton_mode`) let ``â = ∂ log p/∂f`` (so ``f̂ − μ = K â``,
``K = η² ⊗K_i``), ``Σ = (K⁻¹ + W)⁻¹ = η² R B⁻¹ Rᵀ`` with ``B = I + η² RᵀWR`` (defined also for
rank-deficient factors) and ``C = ∂K`` for any change of ``K``. Then

- explicitly, ``½ âᵀ C â − ½ tr((W⁻¹ + K)⁻¹ C)`` with ``(W⁻¹ + K)⁻¹ = W − WΣW``;
- implicitly, through the mode, ``s₂ᵀ ∂f̂`` with ``s₂ = ½ diag(Σ) ∘ ∂³ log p/∂f³`` (the
  derivative of ``−½ log|B|`` in ``f̂``, as ``∂W/∂f = −∂³ log p/∂f³``; R&W's ``s₂`` carries the
  opposite sign in the book's eq. 5.23, their code ``infLaplace.m`` this one) and
  ``∂f̂ = (I + KW)⁻¹ C â``, i.e. ``uᵀ C â`` with ``u = (I + WK)⁻¹ s₂ = s₂ − W Σ s₂``;
- for the mean, ``Σ â + Σ u`` (``∂f̂/∂μ = (I + KW)⁻¹ 1``);
- for a likelihood parameter ``φ`` (noise, dispersion, ...), ``Σ_c ∂ log p_c/∂φ + ½ Σ_c Σ_cc
  ∂(∂² log p_c)/∂φ + (Σ s₂)ᵀ ∂(∂ log p)/∂φ`` (``∂f̂/∂φ = Σ ∂(∂ log p)/∂φ``), from
  :func:`xkron.spec.pointwise.pointwise_params` at the mode.

``tr(WΣW C)`` and ``diag(Σ)`` come from pairs of rows ``(a_p, b_p)`` with ``w Σ_p a_p b_pᵀ = Σ``
(exactly, or in expectation): ``tr(WΣWC) = w Σ_p (W a_p)ᵀ C (W b_p)`` and ``diag(Σ) = w Σ_p a_p ∘ b_p``.
With ``probes="exact"`` the ``a_p`` are the unit vectors and ``b_p = Σ a_p`` (``Σ`` formed densely;
grids of a few thousand cells); with an integer, that many Rademacher rows (Hutchinson's
estimates, unbiased); or ``pairs`` from the stochastic log-determinant's own solves
(:attr:`xkron.linalg.laplace.LaplaceResult.pairs`), which cost nothing more.
For a Gaussian likelihood ``∂³ = 0``, and the gradient is the exact marginal likelihood's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xkron.linalg.cg import pcg_rows, rademacher
from xkron.linalg.gridops import apply_each, unfold_gram
from xkron.linalg.kronecker import KronEigen, _contract_all_but
from xkron.linalg.laplace import LaplaceMode, Whitened, dense_newton, divide_by, newton_matrix
from xkron.settings import CG_MAX_ITER, LAPLACE_CG_TOL, PROBE_TOL

__all__ = ["LaplaceGradient", "laplace_gradient"]


@dataclass
class LaplaceGradient:
    """``∂ log q/∂K_i`` (every entry free, symmetrised), ``∂/∂η²``, ``∂/∂μ`` and ``∂/∂φ`` (by name) of the Laplace
    log marginal."""

    d_factors: tuple[np.ndarray, ...]
    d_eta2: float
    d_mean: float
    d_params: dict


class _Bilinear:
    """Derivatives of ``Σ_p x_pᵀ (η² ⊗K_i) y_p`` with respect to each ``K_i`` and to ``η²``."""

    def __init__(self, factors: Sequence[np.ndarray], eta2: float):
        self.factors, self.eta2 = list(factors), eta2
        self.shape = tuple(K.shape[0] for K in factors)
        self.d_factors = [np.zeros_like(K) for K in factors]
        self.d_eta2 = 0.0

    def add(self, x: np.ndarray, y: np.ndarray, weight: float) -> None:
        x, y = x.reshape(-1, int(np.prod(self.shape))), y.reshape(-1, int(np.prod(self.shape)))
        for i in range(len(self.factors)):
            skip = [None if k == i else K for k, K in enumerate(self.factors)]
            H = unfold_gram(x, apply_each(y, skip, self.shape), self.shape, i)
            self.d_factors[i] += weight * 0.5 * self.eta2 * (H + H.T)
        self.d_eta2 += weight * float(np.sum(x * apply_each(y, self.factors, self.shape)))

    def add_diagonal(self, w: np.ndarray, weight: float) -> None:
        """``Σ_c w_c (η² ⊗K_i)_cc``: only the factors' diagonals enter."""
        diagonals = [np.diag(K) for K in self.factors]
        for i in range(len(self.factors)):
            self.d_factors[i] += weight * self.eta2 * np.diag(_contract_all_but(w, diagonals, i))
        self.d_eta2 += weight * float(_contract_all_but(w, diagonals, None))


def _probe_rows(n: int, count: int, seed: int) -> tuple[np.ndarray, float]:
    """``count`` Rademacher rows of length ``n`` and the weight of their Hutchinson average."""
    return rademacher(np.random.default_rng(seed), (int(count), n)), 1.0 / int(count)


def laplace_gradient(
    mode: LaplaceMode,
    factors: Sequence[np.ndarray],
    eigen: KronEigen,
    eta2: float,
    params=None,
    *,
    pairs=None,
    probes="exact",
    trace_probes: int | None = None,
    seed: int = 0,
    cg_tol: float = LAPLACE_CG_TOL,
) -> LaplaceGradient:
    """The gradient of :func:`xkron.linalg.laplace.laplace_loglik` at ``mode`` (module docstring).

    ``factors`` are the ``K_i`` whose eigendecompositions ``eigen`` are; ``params`` maps each
    likelihood parameter to ``∂/∂φ`` of ``(log p, ∂ log p/∂f, ∂² log p/∂f²)`` at the mode (any value
    at unobserved cells); ``probes`` is ``"exact"`` (unit vectors) or a number of Rademacher rows.

    ``trace_probes`` (with ``W ≥ 0``) estimates the whole trace ``tr((W⁻¹ + K)⁻¹ C) = tr(W^½ Ã⁻¹ W^½ C)``,
    ``Ã = I + W^½ K W^½``, by that many Rademacher rows ``z`` (``Ã⁻¹z = z − η² W^½ R H⁻¹ Rᵀ W^½ z``, one
    solve each at :data:`~xkron.settings.PROBE_TOL`), instead of ``tr(WC)`` exactly minus an estimate of
    ``tr(WΣWC)``: where the data are informative the two nearly cancel, and the estimate of the
    second alone carried an error as large as the gradient (1,960 Poisson cells, 32 probes: sd 11-28
    against gradients of 7-28 in the log lengthscales and amplitude), while ``Ã⁻¹`` is small there.
    """
    whitened = Whitened(eigen)
    shape, n = whitened.shape, int(np.prod(whitened.shape))
    matvec, p = newton_matrix(whitened, eta2, mode.w)

    def sigma(rows: np.ndarray, tol: float = cg_tol) -> np.ndarray:
        """``Σ r = η² R B⁻¹ Rᵀ r`` for rows of grid tensors."""
        rhs = whitened.root_t(rows.reshape(-1, *shape)).reshape(len(rows), -1)
        solved, _ = pcg_rows(matvec, rhs, divide_by(p), tol=tol, max_iter=CG_MAX_ITER)
        return eta2 * whitened.root(solved.reshape(-1, *shape)).reshape(len(rows), -1)

    a, w = mode.d1.reshape(1, n), mode.w.reshape(1, n)
    if pairs is None and probes == "exact":  # Σ densely: one Cholesky of H instead of n CG solves
        pairs = dense_newton(whitened, eta2, mode.w)[1]
    elif pairs is None:
        z, weight = _probe_rows(n, probes, seed)
        pairs = (z, sigma(z), weight)
    z, sz, weight = pairs
    diag_sigma = weight * np.sum(sz * z, axis=0)
    s2 = 0.5 * diag_sigma * mode.d3.reshape(n)  # ∂(−½ log|B|)/∂f̂, since ∂W/∂f = −∂³ log p
    # With a Monte Carlo diag(Σ) its error dominates: the solve need not be tighter than the probes'.
    sigma_s2 = sigma(s2[None], cg_tol if weight == 1.0 else max(cg_tol, PROBE_TOL))[0]
    u = s2 - w[0] * sigma_s2
    grad = _Bilinear(factors, eta2)
    grad.add(a, a, 0.5)  # ½ âᵀ C â
    if trace_probes is not None and np.all(mode.w >= 0):  # −½ tr(W^½ Ã⁻¹ W^½ C), estimated whole
        root_w = np.sqrt(w)
        g, weight_g = _probe_rows(n, trace_probes, seed + 1)
        rhs = whitened.root_t((root_w * g).reshape(-1, *shape), True).reshape(len(g), -1)
        x, _ = pcg_rows(newton_matrix(whitened, eta2, mode.w, True)[0], rhs, divide_by(p), tol=PROBE_TOL,
                        max_iter=CG_MAX_ITER)  # fmt: skip
        a_inv_g = g - eta2 * root_w * whitened.root(x.reshape(-1, *shape), True).reshape(len(g), -1)
        grad.add(root_w * a_inv_g, root_w * g, -0.5 * weight_g)
    else:
        grad.add_diagonal(mode.w, -0.5)  # −½ tr(W C)
        grad.add(w * sz, w * z, 0.5 * weight)  # +½ tr(WΣW C)
    grad.add(u[None], a, 1.0)  # uᵀ C â: through the mode
    d_mean = float(np.sum(a) + np.sum(u))
    seen = mode.observed.reshape(n)
    d_params = {
        name: float(
            np.sum(np.where(seen, dlp.reshape(n) + 0.5 * diag_sigma * dd2.reshape(n) + sigma_s2 * dd1.reshape(n), 0.0))
        )
        for name, (dlp, dd1, dd2) in (params or {}).items()
    }
    return LaplaceGradient(tuple(grad.d_factors), grad.d_eta2, d_mean, d_params)
