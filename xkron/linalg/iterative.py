"""Scalable Gaussian log-likelihood of a Kronecker GP seen on any subset of cells, with per-cell noise.

Over the observed cells ``o`` the covariance is ``A = η² (⊗K_i)_oo + D_o``, ``D``
diagonal (noise variance per cell). Missing cells and unequal noise break the Kronecker
eigenbasis, so ``A`` is handled by conjugate gradients (CG) built on two exact Kronecker
pieces:

- ``F = η² ⊗K_i + d₀ I`` with ``d₀ = min D_o``: solved, and its log-determinant taken,
  exactly in the factors' eigenbases (Saatçi 2011, Alg. 16).
- ``G = η² ⊗K_i + D̃`` on the full grid (``D̃ = D`` at observed cells, ``d₀`` at missing
  ones), so that ``A = G_oo``. With equal noise ``G = F``; otherwise ``G`` is solved by CG
  preconditioned with ``F``, whose condition number is at most ``max D / d₀``.
- Missing cells by the Schur complement on the missing set ``m``:
  ``A⁻¹ = (G⁻¹)_oo − (G⁻¹)_om S⁻¹ (G⁻¹)_mo`` with ``S = (G⁻¹)_mm``, and Jacobi's identity
  ``log|A| = log|G| + log|S|``. ``S`` is solved by CG with one ``G`` solve per product. Its
  condition number is small when the missing cells are scattered (a vector on scattered
  cells is far from the smooth directions that ``G⁻¹`` shrinks) and grows with the size of
  contiguous gaps, relative to the lengthscales. Gaps that are static along an axis (a land
  mask, the same at every time) are preconditioned by their exact structure
  (:class:`xkron.linalg.gaps.StaticGapPreconditioner`): a land mass of 20% of a 100 × 100 × 100 grid
  needs 17 CG iterations instead of thousands.
- Log-determinants ``log|F⁻¹ᐟ² G F⁻¹ᐟ²|`` and ``log|S|`` by stochastic Lanczos quadrature
  (Ubaru, Chen & Saad 2017) with Rademacher probes, from the Lanczos tridiagonals that CG
  yields for free (Gardner et al. 2018, mBCG).
- The gradient ``∂ log p = ½ αᵀ∂Aα − ½ ∂ log|A|`` with ``α = A⁻¹(y − μ)``: ``∂ log|F|``
  exactly, the corrections for unequal noise and missing cells by Hutchinson estimates on the
  probes of their quadratures (:meth:`IterativeSystem.loglik`).

Probes come from a fixed seed, so the estimate is a deterministic function of the
hyperparameters and fits are reproducible. The relative Monte Carlo error of the trace
terms falls as ``1/√(probes · N)``; accuracy against the exact answer is measured in
``tests/test_iterative.py`` and ``tests/benchmarks/bench_missing.py``.
"""

from __future__ import annotations

import numpy as np

from xkron.linalg.cg import block_pcg, pcg, pcg_rows, rademacher, slq_logdet_se
from xkron.linalg.gaps import StaticGapPreconditioner
from xkron.linalg.gridops import GridOperators
from xkron.linalg.kronecker import marginal_loglik
from xkron.linalg.loglik import Loglik
from xkron.linalg.threads import map_threads
from xkron.settings import BLOCK_CG_ROWS, PROBE_TOL, SINGLE_PRECISION_TOL

__all__ = ["IterativeSystem"]


class IterativeSystem(GridOperators):
    """``A = η² (⊗K_i)_oo + diag(noise_var_o)`` by conjugate gradients, for large grids.

    Parameters are those of :class:`~xkron.linalg.gridops.GridOperators`.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 6)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.3**2)
    >>> observed = rng.random((6, 6)) > 0.3
    >>> system = IterativeSystem([K, K], 1.0, 0.1, observed)
    >>> o = observed.ravel()
    >>> A = np.kron(K, K)[o][:, o] + 0.1 * np.eye(o.sum())
    >>> b = rng.normal(size=(6, 6))
    >>> bool(np.allclose(system.solve(b)[observed], np.linalg.solve(A, b[observed])))
    True
    """

    formulation = "missing"

    def __init__(self, factors, eta2, noise_var, observed, **options):
        super().__init__(factors, eta2, noise_var, observed, **options)
        self.gaps = StaticGapPreconditioner.build(self.eigen, self.eta2, self.floor, self.observed)

    def _g_solve(self, v: np.ndarray, tol: float | None = None, single: bool = False) -> np.ndarray:
        if self.equal_noise:
            return self.f_power(v, -1.0, single)
        tol = self.tol if tol is None else tol
        x, report = pcg(self.g_matvec, v, lambda r: self.f_power(r, -1.0), tol=tol, max_iter=self.max_iter)
        self._reports.append(report)
        return x

    def _s_matvec(self, c: np.ndarray, tol: float, single: bool) -> np.ndarray:
        """``S c = (G⁻¹)_mm c``."""
        full = np.zeros((len(c), self.missing.size))
        full[:, self.missing] = c
        return self._g_solve(full, tol, single)[:, self.missing]

    def _s_solve(self, rhs: np.ndarray, tol: float, lanczos: bool = True):
        """``S⁻¹ rhs`` by CG (preconditioned by the static gaps), with each row's Lanczos tridiagonal;
        solves to :data:`~xkron.settings.SINGLE_PRECISION_TOL` or looser take float32 products.

        Without ``lanczos`` (no tridiagonals returned), up to :data:`~xkron.settings.BLOCK_CG_ROWS` rows at a
        time share one block Krylov space (:func:`xkron.linalg.cg.block_pcg`): fewer iterations for Monte Carlo draws.
        """
        single = tol >= SINGLE_PRECISION_TOL
        precondition = None if self.gaps is None else self.gaps.solve
        matvec = lambda v: self._s_matvec(v, tol, single)  # noqa: E731
        if lanczos or len(rhs) == 1:
            solved = pcg_rows(matvec, rhs, precondition, tol=tol, max_iter=self.max_iter, lanczos=lanczos)
            self._reports.append(solved[1])
            return solved[0], solved[2] if lanczos else []
        blocks = map_threads(
            lambda block: block_pcg(matvec, block, precondition, tol=tol, max_iter=self.max_iter),
            [rhs[i : i + BLOCK_CG_ROWS] for i in range(0, len(rhs), BLOCK_CG_ROWS)],
        )
        self._reports.extend(report for _, report in blocks)
        return (np.concatenate([x for x, _ in blocks]) if blocks else np.empty_like(rhs)), []

    def _a_solve(self, b: np.ndarray, lanczos_rows: np.ndarray | None = None, tol: float | None = None):
        """``A⁻¹ b`` for full-grid rows ``b`` (zero at missing cells); optionally SLQ rows for ``S``.

        ``α = G⁻¹(b − E_m c)`` with ``c`` chosen so that ``α_m = 0``: ``S c = (G⁻¹ b)_m``. ``tol``
        (default the system's) is the relative residual of every solve for ``b``; the probes'
        solves stop at :data:`~xkron.settings.PROBE_TOL` at most (their Monte Carlo error dominates).
        """
        inner = self.tol if tol is None else tol
        single = inner >= SINGLE_PRECISION_TOL
        t = self._g_solve(b, inner, single)
        if not self.missing.any():
            return t, [], None
        c, _ = self._s_solve(t[:, self.missing], inner, lanczos=False)
        s_solved, tridiagonals = None, []
        if lanczos_rows is not None:
            s_solved, tridiagonals = self._s_solve(lanczos_rows, max(self.tol, PROBE_TOL))
        full = np.zeros_like(b)
        full[:, self.missing] = c
        alpha = self._g_solve(b - full, inner, single)
        alpha[:, self.missing] = 0.0
        return alpha, tridiagonals, s_solved

    # --- public ------------------------------------------------------------------------------
    def solve(self, b: np.ndarray, tol: float | None = None) -> np.ndarray:
        """``A⁻¹ b`` for ``b`` of shape ``(*batch, *grid)``; zero at unobserved cells.

        ``tol``: relative CG residual of this call (default the system's ``tol``).
        """
        self._reports = []
        b = np.asarray(b, dtype=float)
        batch = b.shape[: b.ndim - len(self.shape)]
        flat = np.where(self.observed, b, 0.0).reshape(-1, self.missing.size)
        x = self._a_solve(flat, tol=tol)[0]
        return x.reshape(*batch, *self.shape)

    def _logdet_g(self, rng: np.random.Generator):
        """``log|G| = log|F| + tr log(F⁻¹ᐟ² G F⁻¹ᐟ²)`` (exact when the noise is equal).

        Also returns the probes ``g`` and the solves ``G⁻¹ F^{1/2} g`` for the gradient.
        """
        logdet_f = float(np.sum(np.log(self.f_diag)))
        if self.equal_noise:
            return logdet_f, 0.0, None, None
        g = rademacher(rng, (self.probes, self.missing.size))
        precondition = lambda r: self.f_power(r, -1.0)  # noqa: E731
        u, report, tridiagonals = pcg_rows(
            self.g_matvec, self.f_power(g, 0.5), precondition, tol=self.tol, max_iter=self.max_iter, lanczos=True
        )
        self._reports.append(report)
        logdet, se = slq_logdet_se(tridiagonals, g.shape[1])
        return logdet_f + logdet, se, g, u

    def loglik(self, y: np.ndarray, mean: float = 0.0, gradient: bool = False) -> Loglik:
        """Estimated ``log N(y_o | mean, A)`` and its gradient, as :meth:`xkron.linalg.dense.DenseSystem.loglik`.

        ``d_factors[i]`` is ``∂ log p / ∂K_i`` with every entry free; ``d_sigma2`` the
        derivative with respect to a variance added to every cell. The gradient of
        ``log|A| = log|F| + log|F⁻¹ᐟ²GF⁻¹ᐟ²| + log|S|`` takes the first term exactly
        (:func:`xkron.linalg.kronecker.marginal_loglik`) and estimates the two corrections with the
        probes of their Lanczos quadratures, so the estimate is exact for a complete grid with
        equal noise and its error shrinks with the number of missing cells and the noise spread:

        - ``∂ log|G| − ∂ log|F| ≈ mean_p (uₚ − vₚ)ᵀ ∂F vₚ``, ``uₚ = G⁻¹zₚ``, ``vₚ = F⁻¹zₚ``,
          ``zₚ = F^{1/2} gₚ`` (both unbiased, since ``E[z zᵀ] = F``; ``∂G = ∂F``);
        - ``∂ log|S| = tr(S⁻¹ ∂S) ≈ −mean_p aₚᵀ ∂F bₚ``, ``aₚ = G⁻¹ E_m S⁻¹ zₚ``,
          ``bₚ = G⁻¹ E_m P⁻¹ zₚ`` (``∂S = −(G⁻¹ ∂G G⁻¹)_mm``), with ``zₚ = C gₚ`` for the
          static-gap preconditioner ``P = CCᵀ`` of :mod:`xkron.linalg.gaps` (``P = I`` without
          static gaps), so that ``P⁻¹ zₚ = C⁻ᵀ gₚ``.
        """
        self._reports = []
        rng = np.random.default_rng(self.seed)
        resid = np.where(self.observed, np.asarray(y, dtype=float) - mean, 0.0).reshape(1, -1)
        slq = rademacher(rng, (self.probes, int(self.missing.sum()))) if self.missing.any() else None
        # With the gap preconditioner P = CCᵀ, the probes are z = C g (E[z zᵀ] = P): CG's Lanczos
        # quadrature, started at C⁻¹z = g, then estimates log|C⁻¹ S C⁻ᵀ|, and log|S| adds log|P|.
        z = slq if slq is None or self.gaps is None else self.gaps.root(slq)
        solved, tridiagonals, s_solved = self._a_solve(resid, z)
        alpha = solved[0]
        logdet, se_g, g, u = self._logdet_g(rng)
        se_s = 0.0
        if slq is not None:
            logdet_s, se_s = slq_logdet_se(tridiagonals, slq.shape[1])
            logdet += logdet_s + (0.0 if self.gaps is None else self.gaps.logdet())
        se = 0.5 * float(np.hypot(se_g, se_s))
        n = self.n_observed
        logp = -0.5 * float(resid[0] @ alpha) - 0.5 * logdet - 0.5 * n * np.log(2 * np.pi)
        grid_alpha = alpha.reshape(self.shape)
        if not gradient:
            return Loglik(logp, alpha=grid_alpha, cg=self.report, logp_se=se, formulation=self.formulation)
        # −½ ∂ log|F|, exactly: the gradient of log N(0 | 0, F).
        exact = marginal_loglik(np.zeros(self.shape), self.eigen, self.eta2, self.floor, gradient=True)
        d_k, d_eta2, d_sigma2 = self.bilinear(alpha[None], alpha[None])
        d_factors = [0.5 * d + e for d, e in zip(d_k, exact.d_factors, strict=True)]
        d_eta2, d_sigma2 = 0.5 * d_eta2 + exact.d_eta2, 0.5 * d_sigma2 + exact.d_sigma2
        corrections = []
        if g is not None:
            v = self.f_power(g, -0.5)
            corrections.append((-0.5 / self.probes, u - v, v))
        if slq is not None:
            embedded = np.zeros((2 * self.probes, self.missing.size))
            embedded[: self.probes, self.missing] = s_solved
            embedded[self.probes :, self.missing] = slq if self.gaps is None else self.gaps.root_inv_t(slq)
            ab = self._g_solve(embedded, single=max(self.tol, PROBE_TOL) >= SINGLE_PRECISION_TOL)
            corrections.append((0.5 / self.probes, ab[: self.probes], ab[self.probes :]))
        for weight, x, z in corrections:
            c_k, c_eta2, c_sigma2 = self.bilinear(x, z)
            d_factors = [d + weight * c for d, c in zip(d_factors, c_k, strict=True)]
            d_eta2, d_sigma2 = d_eta2 + weight * c_eta2, d_sigma2 + weight * c_sigma2
        return Loglik(
            logp,
            tuple(d_factors),
            d_eta2,
            d_sigma2,
            float(alpha.sum()),
            alpha=grid_alpha,
            cg=self.report,
            logp_se=se,
            formulation=self.formulation,
        )
