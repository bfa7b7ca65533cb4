"""Conjugate gradients on the observed cells of a gappy Kronecker grid: :class:`ObservedSystem`.

When most of a grid is missing (land plus clouds on a satellite swath), the system on the
*observed* cells ``A = η² (⊗K_i)_oo + D_o`` is smaller than the Schur complement on the
missing ones that :class:`xkron.linalg.iterative.IterativeSystem` solves. Each product
``A v`` embeds ``v`` in the full grid (zeros at missing cells), applies ``⊗K_i`` by mode
products and restricts the result: one Kronecker product, ``2 N Σ n_i`` flops, whatever the
pattern of the gaps. (Lin et al. 2025, *Scalable Gaussian processes with latent Kronecker
structure*, solve the same system.)

- :meth:`ObservedSystem.loglik`'s CG runs (the data and the probes) are preconditioned either by
  slices along one dim (block-Jacobi, :class:`xkron.linalg.slices.SlicePreconditioner`: exact
  within each time step, whatever its clouds) or with the leading modes of the complete grid,
  ``M = D + η² V Λ_r Vᵀ`` (:class:`xkron.linalg.spectral.SpectralPreconditioner`). Both bound the
  preconditioned system's condition number for any pattern of gaps and know ``log|M|`` exactly;
  :func:`xkron.linalg.slices.slice_axis` picks. On twelve cloudy months of OSTIA's Pacific the
  slices cut one log-likelihood and gradient from 18.5 s to 4.2 s (26 CG iterations instead of 102).
  :meth:`ObservedSystem.solve` (a few right-hand sides, where no log-determinant is needed) uses the
  slices where they were picked, else the full-grid inverse restricted to the observed cells,
  ``(F⁻¹)_oo``, which stays compute-bound on large grids.
- ``log|A| = log|M| + log|M⁻¹ᐟ²AM⁻¹ᐟ²|``, the second term by stochastic Lanczos quadrature
  (Ubaru, Chen & Saad 2017) from the Lanczos tridiagonals of the preconditioned CG runs on
  probes ``zₚ`` with ``E[z zᵀ] = M`` (Gardner et al. 2018). Its spectrum lies in ``[1, M.bound]``,
  so its Monte Carlo error is small.
- The gradient ``½ αᵀ∂Aα − ½ tr(A⁻¹∂A)`` with ``tr(A⁻¹∂A) ≈ mean_p (M⁻¹zₚ)ᵀ ∂A (A⁻¹zₚ)``
  (unbiased since ``E[z zᵀ] = M``) from the same probes and solves.

Probes come from a fixed seed, so an estimate is a deterministic function of the
hyperparameters and fits are reproducible.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np

from xkron.linalg.cg import block_pcg, pcg, pcg_rows, slq_logdet_se
from xkron.linalg.gridops import GridOperators
from xkron.linalg.loglik import Loglik
from xkron.linalg.slices import SlicePreconditioner, fallback_cap, slice_axis, solve_axis
from xkron.linalg.spectral import SpectralPreconditioner
from xkron.linalg.threads import map_threads
from xkron.settings import BLOCK_CG_ROWS, PROBE_TOL, SINGLE_PRECISION_TOL

__all__ = ["ObservedSystem"]


class ObservedSystem(GridOperators):
    """``A = η² (⊗K_i)_oo + diag(noise_var_o)`` by CG on the observed cells (parameters as :class:`GridOperators`).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = np.linspace(0, 1, 6)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 0.3**2)
    >>> observed = rng.random((6, 6)) > 0.6
    >>> system = ObservedSystem([K, K], 1.0, 0.1, observed)
    >>> o = observed.ravel()
    >>> A = np.kron(K, K)[o][:, o] + 0.1 * np.eye(o.sum())
    >>> b = rng.normal(size=(6, 6))
    >>> bool(np.allclose(system.solve(b)[observed], np.linalg.solve(A, b[observed])))
    True
    """

    formulation = "observed"

    @cached_property
    def slice_axis(self) -> int | None:
        """The dim whose slices precondition the CG runs (:func:`xkron.linalg.slices.slice_axis`), or ``None``."""
        return slice_axis(self.factors, self.eigen.values, self.eta2, self.floor, self.observed, 1 + self.probes)

    @cached_property
    def solve_axis(self) -> int | None:
        """The dim whose slices precondition :meth:`solve` (:func:`xkron.linalg.slices.solve_axis`), or ``None``."""
        return solve_axis(self.factors, self.observed)

    @cached_property
    def preconditioner(self) -> SlicePreconditioner | SpectralPreconditioner:
        """The preconditioner of :meth:`loglik`'s CG runs: slices along :attr:`slice_axis`, else spectral."""
        if self.slice_axis is not None:
            return self._slices(self.slice_axis)
        noise = self.noise_var.ravel()[~self.missing]
        return SpectralPreconditioner(self.eigen, self.eta2, noise, self.observed, rows=1 + self.probes)

    @cached_property
    def solve_slices(self) -> SlicePreconditioner | None:
        """The slices of :meth:`solve`: :attr:`preconditioner`'s, else along :attr:`solve_axis`, or ``None``."""
        if self.slice_axis is not None:
            return self.preconditioner
        return None if self.solve_axis is None else self._slices(self.solve_axis)

    def _slices(self, axis: int) -> SlicePreconditioner:
        return SlicePreconditioner(self.factors, self.eta2, self.noise_var.ravel()[~self.missing], self.observed, axis)

    def restricted_inverse(self, r: np.ndarray) -> np.ndarray:
        """``(F⁻¹)_oo r`` for rows ``r`` over the observed cells: the preconditioner of :meth:`solve`."""
        return self.f_power(self.embed(r), -1.0)[:, ~self.missing]

    def _pcg(self, b: np.ndarray, precondition, lanczos: bool = False, tol: float | None = None, max_iter=None):
        """CG on ``A``; solves to :data:`~xkron.settings.SINGLE_PRECISION_TOL` or looser take float32 products."""
        tol = self.tol if tol is None else tol
        single = tol >= SINGLE_PRECISION_TOL
        matvec = lambda v: self.matvec_observed(v, single)  # noqa: E731
        max_iter = self.max_iter if max_iter is None else min(max_iter, self.max_iter)
        solved = pcg_rows(matvec, b, precondition, tol=tol, max_iter=max_iter, lanczos=lanczos)
        self._reports.append(solved[1])
        return solved if lanczos else solved[0]

    def solve(self, b: np.ndarray, tol: float | None = None) -> np.ndarray:
        """``A⁻¹ b`` for ``b`` of shape ``(*batch, *grid)``; zero at unobserved cells (``tol``: this call's residual).

        Preconditioned by slices where :attr:`solve_slices` has them, else with the full-grid
        inverse restricted to the observed cells, ``(F⁻¹)_oo`` (two Kronecker rotations,
        compute-bound): for a few right-hand sides on a large grid it beats the spectral
        preconditioner, whose ``n_o × r`` matrices are read from memory at every iteration
        (measured in ``tests/benchmarks/README.md``). No log-determinant is needed here, so with
        that preconditioner up to :data:`~xkron.settings.BLOCK_CG_ROWS` right-hand sides are solved
        together by block CG (:func:`xkron.linalg.cg.block_pcg`).
        """
        self._reports = []
        b = np.asarray(b, dtype=float)
        batch = b.shape[: b.ndim - len(self.shape)]
        rows = b.reshape(-1, self.missing.size)[:, ~self.missing]
        if self.solve_slices is not None:
            return self.embed(self._pcg(rows, self.solve_slices.inverse, tol=tol)).reshape(*batch, *self.shape)
        # Hundreds of iterations each: several right-hand sides (Monte Carlo draws) share block Krylov spaces.
        tol = self.tol if tol is None else tol
        matvec = lambda v: self.matvec_observed(v, tol >= SINGLE_PRECISION_TOL)  # noqa: E731

        def solve_block(block: np.ndarray):
            solve = pcg if len(block) == 1 else block_pcg
            return solve(matvec, block, self.restricted_inverse, tol=tol, max_iter=self.max_iter)

        blocks = map_threads(solve_block, [rows[i : i + BLOCK_CG_ROWS] for i in range(0, len(rows), BLOCK_CG_ROWS)])
        self._reports.extend(report for _, report in blocks)
        solved = np.concatenate([x for x, _ in blocks]) if blocks else np.empty_like(rows)
        return self.embed(solved).reshape(*batch, *self.shape)

    def _data_solve(self, resid: np.ndarray):
        """``(A⁻¹ resid, preconditioner)``: the spectral preconditioner's run stopped once slower than slices
        would be (:func:`xkron.linalg.slices.fallback_cap`), and the slices taken from then on."""
        M = self.preconditioner
        fallback = None if self.slice_axis is not None else fallback_cap(self.factors, self.observed, M.rank, self.tol)
        alpha = self._pcg(resid[None], M.inverse, max_iter=None if fallback is None else fallback[1])[0]
        if fallback is None or self._reports[-1].converged:
            return alpha, M
        self._reports.pop()  # the abandoned run: the report is of the runs that give the result
        self.__dict__["slice_axis"] = fallback[0]  # the cached choices, for the probes and solve() too
        M = self.__dict__["preconditioner"] = self._slices(fallback[0])
        return self._pcg(resid[None], M.inverse)[0], M

    def loglik(self, y: np.ndarray, mean: float = 0.0, gradient: bool = False) -> Loglik:
        """Estimated ``log N(y_o | mean, A)`` and its gradient, as :meth:`xkron.linalg.dense.DenseSystem.loglik`.

        ``log|A|`` is ``log|M|`` plus the Lanczos quadrature of the preconditioned probes' CG
        runs; the gradient's trace term is Hutchinson's estimate on the same probes (module docstring).
        """
        self._reports = []
        rng = np.random.default_rng(self.seed)
        resid = (np.asarray(y, dtype=float) - mean).reshape(-1)[~self.missing]
        # The data's solve at tol; the probes' at PROBE_TOL at most (their Monte Carlo error dominates).
        alpha, M = self._data_solve(resid)
        z = M.probes(rng, self.probes)
        solved, _, tridiagonals = self._pcg(z, M.inverse, lanczos=True, tol=max(self.tol, PROBE_TOL))
        z_m = M.inverse(z)
        quadrature, se = slq_logdet_se(tridiagonals, np.einsum("ij,ij->i", z, z_m))
        logdet = M.logdet() + quadrature
        logp = -0.5 * float(resid @ alpha) - 0.5 * logdet - 0.5 * self.n_observed * np.log(2 * np.pi)
        grid_alpha = self.embed(alpha[None])[0].reshape(self.shape)
        done = {"alpha": grid_alpha, "cg": self.report, "logp_se": 0.5 * se, "formulation": self.formulation}
        done["preconditioner"] = M.name
        if not gradient:
            return Loglik(logp, **done)
        full_alpha = grid_alpha.reshape(1, -1)
        d_k, d_eta2, d_sigma2 = self.bilinear(full_alpha, full_alpha)
        t_k, t_eta2, t_sigma2 = self.bilinear(self.embed(z_m), self.embed(solved))
        w = 0.5 / self.probes
        d_factors = tuple(0.5 * d - w * t for d, t in zip(d_k, t_k, strict=True))
        return Loglik(
            logp, d_factors, 0.5 * d_eta2 - w * t_eta2, 0.5 * d_sigma2 - w * t_sigma2, float(alpha.sum()), **done
        )
