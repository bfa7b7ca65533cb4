"""The GP posterior on the observed cells of a grid: missing cells or per-cell noise.

:class:`ObservedPosterior` conditions with the dense (Cholesky) or iterative (conjugate
gradients) system of :mod:`xkron.linalg`; its variance is exact with the dense system; with the
iterative one, a Lanczos estimate with a rigorous bracket (:func:`xkron.linalg.love.lanczos_variance`)
or the Monte Carlo estimate with a Kronecker control variate of :func:`sampled_variance`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from xkron.linalg.kronecker import kron_contract
from xkron.linalg.love import lanczos_variance
from xkron.linalg.systems import make_system
from xkron.posterior.conditional import TestInputs, place_axes, prior_variance
from xkron.posterior.fields import apply_factors, union_roots
from xkron.settings import SAMPLE_BATCH_ELEMENTS
from xkron.spec.grid import Factor
from xkron.spec.modelspec import factor_params
from xkron.spec.solver import Solver, variance_method

__all__ = ["ObservedPosterior", "sampled_variance"]

DENSE = Solver("dense")
"""The default solver of :meth:`ObservedPosterior.condition`: exact Cholesky on the observed cells."""


@dataclass(frozen=True)
class ObservedPosterior:
    """A Gaussian-noise Kronecker GP conditioned on any subset of cells, with per-cell noise.

    ``A = η² (⊗K_i)_oo + diag(σ² + known_var)_o`` on the observed cells ``o`` (the finite
    cells of ``y``), handled by the system of ``solver`` (:func:`xkron.linalg.systems.make_system`):
    :class:`xkron.linalg.dense.DenseSystem` (exact) or :class:`xkron.linalg.iterative.IterativeSystem`.

    With the iterative solver and Lanczos (``solver.variance``; ``"auto"`` picks it on small grids,
    :func:`~xkron.spec.solver.variance_method`) the variance ``η² k** − η⁴ k*ᵀA⁻¹k*`` is the
    midpoint of a rigorous Lanczos bracket, within ``solver.variance_tol`` in relative sd
    (:func:`xkron.linalg.love.lanczos_variance`; the bound reached is in :attr:`variance_reports`).
    With ``"sampled"`` it is estimated: the explained
    part ``η⁴ k*ᵀA⁻¹k*`` is ``Var(η² k*ᵀ A⁻¹ ε_o)`` for ``ε ~ N(0, G)`` on the grid, and the same
    draws give ``η² k*ᵀ F⁻¹ ε'`` (``ε'`` sharing ``ε``'s field part), whose variance under the
    complete-grid Kronecker model ``F`` is known exactly; their difference is the control variate
    (``solver.variance_samples`` draws, seeded by ``solver.seed``).

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> y = np.zeros((5, 4)); y[2, 1] = np.nan
    >>> post = ObservedPosterior.condition(y, f, values)
    >>> mean, var = post.moments([TestInputs("a", (np.linspace(0, 1, 5),)),
    ...                           TestInputs("b", (np.linspace(0, 1, 4),))], "ab")
    >>> bool(0.01 < var[2, 1] < 0.1), bool(var[0, 0] < 0.01)
    (True, True)
    """

    kind: ClassVar[str] = "observed"

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    system: object
    alpha: np.ndarray
    known_var: np.ndarray | float = 0.0
    solver: Solver = DENSE
    variance_reports: list = field(default_factory=list, compare=False, repr=False)
    """One entry per Lanczos variance computed by :meth:`moments` (:meth:`LanczosVariance.report`):
    steps, the achieved relative sd bound and the tolerance, for results to surface."""
    system_noise: np.ndarray | None = None
    """The system's noise variance per cell where it is not ``σ² + known_var``: the Laplace
    posterior's pseudo-noise ``W⁻¹`` (:mod:`xkron.posterior.laplace`)."""
    own_noise: tuple[int, np.ndarray] | None = None
    """``(axis, variance per label)`` of a factor whose labels have their own noise (``Coregion(noise=True)``):
    part of :attr:`known_var` at the data, and added at the test inputs by ``moments(noise=True)``."""

    def noise_variance(self):
        """The noise variance per cell in the system ``A``: ``σ² + known_var``, or :attr:`system_noise`."""
        if self.system_noise is not None:
            return self.system_noise
        return self.values["noise"] ** 2 + np.asarray(self.known_var)

    @classmethod
    def condition(
        cls,
        y: np.ndarray,
        factors: Sequence[Factor],
        values: Mapping[str, float],
        known_var=0.0,
        solver: Solver = DENSE,
        own_noise: tuple[int, np.ndarray] | None = None,
    ) -> ObservedPosterior:
        """Condition on the finite cells of ``y`` (one axis per factor) at hyperparameter ``values``.

        ``own_noise`` is ``(axis, variance per label)`` of a ``Coregion(noise=True)`` factor, added to ``known_var``.
        """
        y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
        if own_noise is not None:
            axis, var = own_noise
            known_var = known_var + np.asarray(var).reshape([-1 if k == axis else 1 for k in range(len(factors))])
        Ks = [f.covariance(factor_params(f, values)) for f in factors]
        eta2 = values["amplitude"] ** 2
        noise = np.broadcast_to(known_var, y.shape) + values["noise"] ** 2
        observed = np.isfinite(y)
        system = make_system(solver, Ks, eta2, noise, observed, solves_only=True)
        alpha = system.solve(np.where(observed, y - values["mean"], 0.0))
        return cls(tuple(factors), dict(values), system, alpha, known_var, solver, own_noise=own_noise)

    def cross(self, tests: Sequence[TestInputs]) -> list[np.ndarray]:
        """``K*_i`` per factor, shape ``test shape + (n_i,)``."""
        return [
            f.covariance(factor_params(f, self.values), test=t.values) for f, t in zip(self.factors, tests, strict=True)
        ]

    def mean(self, tests: Sequence[TestInputs], out_order: str) -> np.ndarray:
        """Posterior mean at the test inputs (see :meth:`xkron.posterior.conditional.KronPosterior.mean`)."""
        eta2 = self.values["amplitude"] ** 2
        return self.values["mean"] + eta2 * kron_contract(self.alpha, self.cross(tests), [t.labels for t in tests],
                                                          out_order)  # fmt: skip

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Posterior mean and variance at the test inputs (``noise`` adds ``σ²``, not the known noise)."""
        eta2 = self.values["amplitude"] ** 2
        cross = self.cross(tests)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha, cross, labels, out_order)
        if self.solver.name == "dense":
            explained = self._dense_explained(cross, labels, out_order, mean.shape)
            var = prior_variance(self.factors, self.values, tests, out_order) - explained
        elif variance_method(self.solver.variance, int(np.count_nonzero(self.system.observed))) == "lanczos":
            prior = np.broadcast_to(prior_variance(self.factors, self.values, tests, out_order), mean.shape)
            s = self.solver
            result = lanczos_variance(
                self.system,
                cross,
                labels,
                out_order,
                prior,
                tol=s.variance_tol,
                max_steps=s.variance_steps,
                seed=s.seed,
            )
            self.variance_reports.append(result.report())
            var = result.variance
        elif len(set("".join(labels))) == len("".join(labels)):  # a grid
            rng = np.random.default_rng(self.solver.seed)
            var = sampled_variance(self, tests, out_order, self.solver.variance_samples, rng)
        else:
            explained = self._sampled_explained(cross, labels, out_order)
            var = prior_variance(self.factors, self.values, tests, out_order) - explained
        var = np.clip(var, 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2 + self._own_noise_at(tests, out_order)
        return mean, np.broadcast_to(var, mean.shape)

    def _own_noise_at(self, tests: Sequence[TestInputs], out_order: str):
        """The labels' own noise variance at the test inputs (0 without ``Coregion(noise=True)``)."""
        if self.own_noise is None:
            return 0.0
        axis, var = self.own_noise
        test = tests[axis]
        return place_axes(np.asarray(var)[np.asarray(test.values[0]).astype(int)], test.labels, out_order)

    def _dense_explained(self, cross, labels, out_order, shape):
        """Exact ``η⁴ diag(k*ᵀ A⁻¹ k*)`` with every output cell's cross-covariance rows."""
        rows = []
        for C, lab in zip(cross, labels, strict=True):
            placed = place_axes(C, lab + "~", out_order + "~")
            rows.append(np.broadcast_to(placed, (*shape, C.shape[-1])).reshape(-1, C.shape[-1]))
        return self.system.explained_variance(rows).reshape(shape)

    def _sampled_explained(self, cross, labels, out_order):
        """Control-variate Monte Carlo estimate of ``η⁴ diag(k*ᵀ A⁻¹ k*)`` (see the class docstring)."""
        system, eta2 = self.system, self.values["amplitude"] ** 2
        eigen = system.eigen
        rotated = [C @ Q for C, Q in zip(cross, eigen.vectors, strict=True)]
        exact_f = eta2**2 * kron_contract(1.0 / system.f_diag, [a * a for a in rotated], labels, out_order)
        rng = np.random.default_rng(self.solver.seed)
        roots = [Q * np.sqrt(lam) for Q, lam in zip(eigen.vectors, eigen.values, strict=True)]
        z = rng.standard_normal((self.solver.variance_samples, *system.shape))
        for axis, R in enumerate(roots):
            z = np.moveaxis(np.tensordot(R, z, axes=([1], [axis + 1])), 0, axis + 1)
        field = np.sqrt(eta2) * z
        xi = rng.standard_normal(field.shape)
        eps_g = field + np.sqrt(system.noise_var) * xi
        eps_f = field + np.sqrt(system.floor) * xi
        solved_g = system.solve(eps_g)
        solved_f = system.f_power(eps_f.reshape(len(eps_f), -1), -1.0).reshape(eps_f.shape)
        diff = 0.0
        for a, b in zip(solved_g, solved_f, strict=True):
            u = eta2 * kron_contract(a, cross, labels, out_order)
            v = eta2 * kron_contract(b, cross, labels, out_order)
            diff = diff + (u * u - v * v)
        return exact_f + diff / self.solver.variance_samples


def sampled_variance(posterior: ObservedPosterior, tests: Sequence[TestInputs], out_order: str, n: int, rng):
    """Posterior variance on a test grid by Matheron draws with a Kronecker control variate.

    Each draw gives the posterior deviation ``s_A = f* − η² K*A⁻¹(f_o + ε_o)`` of the fitted
    model and, from the same prior draw, the deviation ``s_F`` under the complete-grid model
    ``F = η² ⊗K_i + d₀ I``, whose variance ``v_F`` is exact (:class:`xkron.posterior.conditional.KronPosterior`'s
    formula). The estimate ``v_F + mean(s_A² − s_F²)`` is unbiased, and its error shrinks as
    the two models agree (few missing cells, nearly equal noise). The draws are solved to the
    system's ``tol``: a looser solve's error adds to every draw's squared deviation, a bias that
    does not average out (at 1e-4 it took tutorial 4's 90% coverage to 99%).
    """
    values, system = posterior.values, posterior.system
    eta2 = values["amplitude"] ** 2
    flat = [tuple(np.ravel(np.broadcast_arrays(*t.values)[k]) for k in range(len(t.values))) for t in tests]
    roots = [union_roots(f, factor_params(f, values), t, 0.0) for f, t in zip(posterior.factors, flat, strict=True)]
    cross = [f.covariance(factor_params(f, values), test=t) for f, t in zip(posterior.factors, flat, strict=True)]
    rotated = [C @ Q for C, Q in zip(cross, system.eigen.vectors, strict=True)]
    total = 0.0
    union_size = int(np.prod([r.shape[1] for r, _ in roots]))
    batch = max(1, SAMPLE_BATCH_ELEMENTS // union_size)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        z = rng.standard_normal((size, *(r.shape[1] for r, _ in roots)))
        prior_train = np.sqrt(eta2) * apply_factors(z, [r for r, _ in roots])
        prior_test = np.sqrt(eta2) * apply_factors(z, [r for _, r in roots])
        xi = rng.standard_normal(prior_train.shape)
        solved_a = system.solve(prior_train + np.sqrt(system.noise_var) * xi)
        eps_f = (prior_train + np.sqrt(system.floor) * xi).reshape(size, -1)
        solved_f = system.rotate(eps_f, True).reshape(prior_train.shape) / system.f_diag
        s_a = prior_test - eta2 * apply_factors(solved_a, cross)
        s_f = prior_test - eta2 * apply_factors(solved_f, rotated)
        total = total + np.sum(s_a * s_a - s_f * s_f, axis=0)
    labels = [t.labels for t in tests]
    exact_f = (
        _prior_grid(posterior, flat) - eta2**2 * apply_factors(1.0 / system.f_diag[None], [a * a for a in rotated])[0]
    )
    var = exact_f + total / n
    sizes = [s for t in tests for s in np.broadcast_shapes(*(np.shape(v) for v in t.values))]
    var = var.reshape(sizes)
    joined = "".join(labels)
    return np.transpose(var, [joined.index(c) for c in out_order])


def _prior_grid(posterior, flat) -> np.ndarray:
    """Prior variance ``η² ∏ k_i(x, x)`` on the test grid (factors' flat test inputs)."""
    out = posterior.values["amplitude"] ** 2
    for f, t in zip(posterior.factors, flat, strict=True):
        out = np.multiply.outer(out, f.variance(factor_params(f, posterior.values), t))
    return out
