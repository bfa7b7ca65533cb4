"""The Laplace approximation of a latent Kronecker GP: Newton's mode and the approximate log marginal.

The model is ``f = μ + η R v`` with ``v ~ N(0, I)`` and ``R = ⊗ Q_i Λ_i^{1/2}`` (so that
``η² R Rᵀ = η² ⊗ K_i``), and ``y_c | f_c ~ p(y | f)`` at the observed cells ``c``; unobserved
cells leave the likelihood (their ``W`` is 0). Working in the whitened ``v`` keeps every matrix
well defined for rank-deficient factors (Cosine) and every product a Kronecker one (Flaxman,
Wilson, Neill, Nickisch & Smola 2015; Rasmussen & Williams 2006, Alg. 3.1 in whitened form):

- **Mode** (:func:`newton_mode`): Newton's method on ``ψ(v) = Σ_c log p(y_c | f_c) − ½ vᵀv``,
  whose negative Hessian is ``H = I + η² Rᵀ W R`` with ``W = −∂² log p/∂f²``. Each step solves
  ``H δ = ∇ψ`` by conjugate gradients with two Kronecker products per iteration, preconditioned
  by ``P = I + η² w̄ Λ`` (``w̄`` the mean of ``W`` over the grid, ``Λ = ⊗ Λ_i``): ``RᵀR = Λ``,
  so ``P`` is diagonal and equals ``H`` wherever ``W`` is constant on a complete grid. A
  backtracking line search keeps every step an ascent. Likelihoods that are not log-concave
  (Student-t) take ``max(W, 0)`` in the Newton matrix, which keeps it positive definite.
- **Marginal** (:func:`laplace_loglik`): ``log q(y | θ) = ψ(v̂) − ½ log|H|`` at the mode. For a
  Gaussian likelihood this is the exact log marginal likelihood (the posterior is Gaussian).
  ``log|H|`` is either exact (``"dense"``, small grids: ``H`` built explicitly) or stochastic
  Lanczos quadrature with probes ``z = P^{1/2} g`` (``"slq"``: ``log|P|`` exactly plus the
  quadrature of ``P^{-1/2} H P^{-1/2}``, with its Monte Carlo standard error stated).

numpy and scipy only: the likelihood enters as a function ``terms(f) -> Pointwise`` (its
log-density and derivatives per cell, :func:`xkron.spec.pointwise.pointwise`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from xkron.linalg.cg import CGReport, pcg, pcg_rows, rademacher, slq_logdet_se
from xkron.linalg.gridops import apply_each
from xkron.linalg.kronecker import KronEigen, outer
from xkron.settings import (
    CG_MAX_ITER,
    LAPLACE_CG_TOL,
    LAPLACE_FORCING,
    LAPLACE_MAX_NEWTON,
    LAPLACE_TOL,
    PROBE_TOL,
    SINGLE_PRECISION_TOL,
)
from xkron.spec.pointwise import Pointwise

__all__ = [
    "LaplaceMode",
    "LaplaceResult",
    "Whitened",
    "dense_newton",
    "divide_by",
    "laplace_loglik",
    "newton_matrix",
    "newton_mode",
]


class Whitened:
    """``R v = (⊗ Q_i Λ_i^{1/2}) v`` and ``Rᵀ u`` on grid tensors with any leading batch axes.

    Each is one batched matrix product per axis (:func:`xkron.linalg.gridops.apply_each`);
    ``single=True`` runs them in float32 (about three times faster, relative rounding about
    1e-6), for solves whose tolerance is far above that (:data:`~xkron.settings.SINGLE_PRECISION_TOL`).

    Examples
    --------
    >>> x = np.linspace(0, 1, 4)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.5**2)
    >>> w = Whitened(KronEigen.from_factors([K, K]))
    >>> R = w.dense()
    >>> bool(np.allclose(R @ R.T, np.kron(K, K)))
    True
    """

    def __init__(self, eigen: KronEigen):
        self.shape = eigen.shape
        self.size = int(np.prod(self.shape))
        self.spectrum = outer(list(eigen.values))  # Λ = RᵀR, diagonal
        self._mats = {False: [Q * np.sqrt(lam)[None, :] for Q, lam in zip(eigen.vectors, eigen.values, strict=True)]}
        self._mats[True] = [np.asarray(M, dtype=np.float32) for M in self._mats[False]]

    def _apply(self, v: np.ndarray, transpose: bool, single: bool) -> np.ndarray:
        rows = np.asarray(v, dtype=np.float32 if single else np.float64).reshape(-1, self.size)
        mats = [M.T for M in self._mats[single]] if transpose else self._mats[single]
        return apply_each(rows, mats, self.shape).astype(np.float64, copy=False).reshape(np.shape(v))

    def root(self, v: np.ndarray, single: bool = False) -> np.ndarray:
        """``R v``."""
        return self._apply(v, False, single)

    def root_t(self, u: np.ndarray, single: bool = False) -> np.ndarray:
        """``Rᵀ u``."""
        return self._apply(u, True, single)

    def dense(self) -> np.ndarray:
        """``R`` as a dense matrix (for tests and small grids)."""
        return self.root(np.eye(self.size).reshape(self.size, *self.shape)).reshape(self.size, self.size).T


@dataclass
class LaplaceMode:
    """The mode of ``v | θ, y`` and what the marginal needs there.

    Attributes
    ----------
    v, f : ndarray
        The whitened mode and the latent field ``f = μ + η R v`` on the grid.
    w : ndarray
        ``W = −∂² log p/∂f²`` at the mode (0 at unobserved cells; may be negative for Student-t).
    d1, d3 : ndarray
        ``∂ log p/∂f`` (at the mode ``f̂ − μ = η² (⊗K_i) d1``) and ``∂³ log p/∂f³``, 0 at unobserved cells.
    observed : ndarray of bool
        The cells in the likelihood.
    psi : float
        ``ψ(v̂) = Σ_c log p(y_c | f_c) − ½ v̂ᵀv̂``.
    newton_steps : int
        Newton iterations taken.
    converged : bool
        Whether the Newton decrement ``∇ψᵀδ`` fell below the tolerance.
    cg : CGReport
        The largest CG run of the Newton steps.
    """

    v: np.ndarray
    f: np.ndarray
    w: np.ndarray
    d1: np.ndarray
    d3: np.ndarray
    observed: np.ndarray
    psi: float
    newton_steps: int
    converged: bool
    cg: CGReport


@dataclass
class LaplaceResult:
    """``log q(y | θ) = ψ(v̂) − ½ log|H|`` and its parts; ``logp_se`` is the log-determinant's Monte Carlo error / 2.

    ``pairs``: rows ``(a_p, b_p)`` on the grid and a weight with ``weight · Σ_p a_p b_pᵀ`` equal to
    ``Σ = (K⁻¹ + W)⁻¹`` (the dense log-determinant: unit vectors and ``Σ`` itself) or an unbiased
    estimate of it (the stochastic one, from the probes' own CG solutions: ``a = R P⁻¹ζ``,
    ``b = η² R H⁻¹ζ``, ``E[ζζᵀ] = P``): the gradient's trace and diagonal terms reuse them
    (:func:`xkron.linalg.laplace_grad.laplace_gradient`) instead of solving again.
    """

    logp: float
    logp_se: float
    logdet: float
    mode: LaplaceMode
    pairs: tuple | None = None


def newton_matrix(whitened: Whitened, eta2: float, w: np.ndarray, single: bool = False):
    """``v ↦ H v = v + η² Rᵀ W R v`` on rows of grid tensors (``single``: the products in float32), and the
    diagonal of its preconditioner ``P``."""
    shape = whitened.shape

    def matvec(rows: np.ndarray) -> np.ndarray:
        v = rows.reshape(-1, *shape)
        return (v + eta2 * whitened.root_t(w * whitened.root(v, single), single)).reshape(rows.shape)

    p = (1.0 + eta2 * float(np.mean(w)) * whitened.spectrum).ravel()
    return matvec, p


def divide_by(p: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """The diagonal preconditioner's solve, ``r ↦ r / p``."""
    return lambda r: r / p


def _psi(terms, whitened, eta, mean, observed, v):
    f = mean + eta * whitened.root(v)
    t: Pointwise = terms(f)
    return float(np.sum(t.logp[observed])) - 0.5 * float(np.sum(v * v)), f, t


def newton_mode(
    terms: Callable[[np.ndarray], Pointwise],
    eigen: KronEigen,
    eta2: float,
    mean: float,
    observed: np.ndarray,
    v0: np.ndarray | None = None,
    *,
    tol: float = LAPLACE_TOL,
    cg_tol: float = LAPLACE_CG_TOL,
    max_steps: int = LAPLACE_MAX_NEWTON,
) -> LaplaceMode:
    """The mode of ``ψ(v)`` by damped Newton with CG solves (module docstring).

    ``terms(f)`` gives the likelihood's log-density and derivatives per cell (any value at
    unobserved cells: they are masked here); ``v0`` a starting point (default 0, the prior
    mean); ``tol`` the Newton decrement ``∇ψᵀδ`` (nats) at which the mode is taken, or the
    rounding of ``ψ`` (``64 ε (1 + |ψ|)``) if that is larger; a last full Newton step follows.

    Examples
    --------
    >>> from xkron.spec.pointwise import pointwise
    >>> x = np.linspace(0, 3, 6)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2)
    >>> y = np.array([[0, 1, 3, 2, 1, 0]] * 6, dtype=float)
    >>> mode = newton_mode(lambda f: pointwise("poisson", f, y, {}, {}), KronEigen.from_factors([K, K]),
    ...                    1.0, 0.0, np.ones((6, 6), dtype=bool))
    >>> mode.converged, bool(np.all(np.abs(mode.f.mean(axis=0) - np.log(y[0] + 0.3)) < 1.5))
    (True, True)
    """
    observed = np.asarray(observed, dtype=bool)
    whitened, eta = Whitened(eigen), float(np.sqrt(eta2))
    v = np.zeros(eigen.shape) if v0 is None else np.array(v0, dtype=float)
    psi, f, t = _psi(terms, whitened, eta, mean, observed, v)
    if not np.isfinite(psi):
        raise ValueError("the Laplace mode search starts where the log-likelihood is not finite")
    reports, converged, steps, forcing = [], False, 0, LAPLACE_FORCING
    while not converged and steps < max_steps:
        steps += 1
        d1, w = np.where(observed, t.d1, 0.0), np.where(observed, -t.d2, 0.0)
        grad = eta * whitened.root_t(d1) - v
        matvec, p = newton_matrix(whitened, eta2, np.maximum(w, 0.0))
        # Inexact Newton: a loose solve far from the mode, tighter as the decrement falls (superlinear
        # convergence is kept; Eisenstat & Walker 1996), never looser than LAPLACE_FORCING.
        delta, report = pcg(matvec, grad.reshape(1, -1), divide_by(p), tol=max(cg_tol, forcing), max_iter=CG_MAX_ITER)
        reports.append(report)
        delta = delta.reshape(eigen.shape)
        decrement = float(np.sum(grad * delta))
        forcing = min(LAPLACE_FORCING, np.sqrt(max(decrement, 0.0)) / (1.0 + abs(psi)))
        # Below the rounding of ψ itself the line search cannot see progress: stop there too. The last
        # (full) Newton step costs one likelihood evaluation and squares the remaining error.
        converged = bool(decrement <= max(tol, 64 * np.finfo(float).eps * (1.0 + abs(psi))))
        s = 1.0
        while True:  # backtracking (Armijo) line search: every step an ascent
            trial = v + s * delta
            psi_new, f_new, t_new = _psi(terms, whitened, eta, mean, observed, trial)
            if converged or (np.isfinite(psi_new) and psi_new >= psi + 1e-4 * s * decrement):
                break
            s *= 0.5
            if s < 1e-10:
                break
        if s < 1e-10:
            # No ascent seen along an ascent direction: where the decrement is below what the sum ψ
            # over every cell can resolve, this is the mode to rounding (seen on saturated Bernoulli
            # grids); elsewhere the search has failed.
            if decrement > np.sqrt(np.finfo(float).eps) * (1.0 + abs(psi)):
                raise RuntimeError(
                    f"the Laplace mode search stalled: no ascent along the Newton direction (decrement {decrement:.3g})"
                )
            converged = True
            break
        v, psi, f, t = trial, psi_new, f_new, t_new
    masked = [np.where(observed, d, 0.0) for d in (-t.d2, t.d1, t.d3)]
    return LaplaceMode(v, f, *masked, observed, psi, steps, converged, CGReport.merge(reports))


def dense_newton(whitened: Whitened, eta2: float, w: np.ndarray) -> tuple[float, tuple]:
    """``log|H|`` and the exact pairs ``(I, Σ, 1)`` of ``Σ = η² R H⁻¹ Rᵀ``, from one Cholesky of ``H`` built densely.

    For grids of a few thousand cells: the marginal's log-determinant and the gradient's trace and
    diagonal terms (:func:`xkron.linalg.laplace_grad.laplace_gradient`) share the one factorisation.
    """
    R = whitened.dense()
    H = np.eye(R.shape[0]) + eta2 * (R.T * w.ravel()) @ R
    try:
        L = scipy.linalg.cholesky(H, lower=True)
    except np.linalg.LinAlgError as error:
        raise np.linalg.LinAlgError("I + η² RᵀWR is not positive definite at the mode (W < 0 somewhere)") from error
    sigma = eta2 * R @ scipy.linalg.cho_solve((L, True), R.T)
    return 2.0 * float(np.sum(np.log(np.diag(L)))), (np.eye(R.shape[0]), sigma, 1.0)


def laplace_loglik(
    mode: LaplaceMode,
    eigen: KronEigen,
    eta2: float,
    logdet: str = "dense",
    *,
    probes: int = 32,
    seed: int = 0,
    cg_tol: float = PROBE_TOL,
) -> LaplaceResult:
    """``log q(y | θ) = ψ(v̂) − ½ log|I + η² Rᵀ W R|`` at the ``mode`` (module docstring).

    ``logdet="dense"`` builds ``H`` (exact; grids of a few thousand cells); ``"slq"`` estimates
    ``log|H| = log|P| + log|P^{-1/2} H P^{-1/2}|`` with ``probes`` Rademacher probes
    ``z = P^{1/2} g`` and CG to ``cg_tol`` (float32 products from
    :data:`~xkron.settings.SINGLE_PRECISION_TOL`), and states the Monte Carlo error (``logp_se``). It is
    exact when ``P = H`` (a constant ``W`` on a complete grid), since every quadrature then
    sees one eigenvalue, 1.
    """
    whitened, pairs = Whitened(eigen), None
    if logdet == "dense":
        (value, pairs), se = dense_newton(whitened, eta2, mode.w), 0.0
    elif logdet == "slq":
        matvec, p = newton_matrix(whitened, eta2, mode.w, single=cg_tol >= SINGLE_PRECISION_TOL)
        g = rademacher(np.random.default_rng(seed), (probes, p.size))
        solved, _, tridiagonals = pcg_rows(matvec, g * np.sqrt(p), divide_by(p), tol=cg_tol, max_iter=CG_MAX_ITER,
                                           lanczos=True)  # fmt: skip
        quadrature, se = slq_logdet_se(tridiagonals, p.size)
        value = float(np.sum(np.log(p))) + quadrature
        shape = (probes, *eigen.shape)
        a = whitened.root((g / np.sqrt(p)).reshape(shape)).reshape(probes, -1)
        b = eta2 * whitened.root(solved.reshape(shape)).reshape(probes, -1)
        pairs = (a, b, 1.0 / probes)
    else:
        raise ValueError(f"logdet must be 'dense' or 'slq', not {logdet!r}")
    return LaplaceResult(mode.psi - 0.5 * value, 0.5 * se, value, mode, pairs)
