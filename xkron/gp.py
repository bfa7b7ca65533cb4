"""Array-level Kronecker GP posterior at fixed hyperparameters: conditioning and prediction.

Prediction never forms an N×M or N×N matrix. Gaussian data (:class:`KronPosterior`), with
``A_i = K*_i Q_i`` (test-by-train cross-covariance of factor ``i`` rotated into its
eigenbasis):

- ``mean = μ + η² (α̃ ×_1 A_1 ... ×_D A_D)``
- ``var(f*) = η² ∏ k**_i − η⁴ (W ×_1 (A_1∘A_1) ... ×_D (A_D∘A_D))``, using
  ``(⊗A_i)∘(⊗A_i) = ⊗(A_i∘A_i)``; observation noise adds ``σ²``.

A latent field given its whitened draw ``v`` (:class:`LatentPosterior`), with
``B_i = K*_i L_iᵀ⁻¹`` and ``L_i = chol(K_i + jitter·I)``:

- ``mean = μ + η (v ×_1 B_1 ... ×_D B_D)``
- ``var(f*) = η² (∏ k**_i − ∏ rowsum(B_i∘B_i))``.

Gaussian data on any subset of cells, or with per-cell noise (:class:`ObservedPosterior`):
the mean is ``μ + η² (α ×_1 K*_1 ... ×_D K*_D)`` with ``α = A⁻¹(y − μ)`` on the full grid (0 at
missing cells), from a dense or an iterative solve; the variance is exact with the dense
solver and a control-variate Monte Carlo estimate with the iterative one.

Test inputs are described per factor by output-axis labels (see
:func:`xkron.kronecker.kron_contract`): a factor whose test inputs vary along its own
labels gives a grid; factors that share a label give scattered points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from xkron.grid import Factor
from xkron.kronecker import KronEigen, kron_contract, marginal_loglik
from xkron.modelspec import JITTER, factor_params

__all__ = ["KronPosterior", "LatentPosterior", "ObservedPosterior", "TestInputs", "latent_cholesky", "place_axes"]

VARIANCE_SAMPLES = 128
"""Monte Carlo draws behind the iterative solver's predictive variance (:class:`ObservedPosterior`)."""


@dataclass(frozen=True)
class TestInputs:
    """Test inputs of one factor.

    Parameters
    ----------
    labels : str
        Output-axis labels (one character each) along which the inputs vary.
    values : tuple of ndarray
        One array per dim of the factor, each of shape ``[sizes of labels]``.
    """

    labels: str
    values: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class KronPosterior:
    """A Gaussian-noise Kronecker GP conditioned on complete grid data.

    Build it with :meth:`condition`; then :meth:`moments` predicts anywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> post = KronPosterior.condition(np.zeros((5, 4)), f, values)
    >>> mean, var = post.moments([TestInputs("p", (np.array([0.5]),)),
    ...                           TestInputs("p", (np.array([0.5]),))], "p")
    >>> float(mean[0]), bool(var[0] < 0.01)
    (0.0, True)
    """

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    eigen: KronEigen
    alpha_tilde: np.ndarray | None
    inv_diag: np.ndarray | None
    lazy_data: object = None
    """Dask-backed data (one axis per factor): moments are then lazy (:mod:`xkron.lazy`)."""

    @classmethod
    def condition(cls, y, factors: Sequence[Factor], values: Mapping[str, float]) -> KronPosterior:
        """Condition on ``y`` (one axis per grid dim) at hyperparameter ``values``; dask ``y`` stays lazy."""
        Ks = [f.covariance(factor_params(f, values)) for f in factors]
        eta2, sigma2 = values["amplitude"] ** 2, values["noise"] ** 2
        if type(y).__module__.startswith("dask"):
            y = y.reshape([f.size for f in factors])
            return cls(tuple(factors), dict(values), KronEigen.from_factors(Ks), None, None, lazy_data=y)
        y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
        ll = marginal_loglik(y, Ks, eta2, sigma2, values["mean"])
        return cls(tuple(factors), dict(values), ll.eigen, ll.alpha_tilde, ll.inv_diag)

    def _lazy_moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool):
        """Moments on a test grid from dask-backed data, without computing anything."""
        from xkron.lazy import lazy_grid_moments

        if len(set("".join(t.labels for t in tests))) != len("".join(t.labels for t in tests)):
            raise NotImplementedError(
                "scattered points from dask-backed training data: predict on a grid, or load the data first "
                "(fit.data.load())"
            )
        y = self.lazy_data
        cross, prior, sizes, chunks = [], [], [], []
        for axis, (factor, test) in enumerate(zip(self.factors, tests, strict=True)):
            params = factor_params(factor, self.values)
            shape = np.broadcast_shapes(*(np.shape(v) for v in test.values))
            C = factor.covariance(params, test=test.values).reshape(-1, factor.size)
            cross.append(C)
            prior.append(np.ravel(factor.variance(params, shape)))
            sizes.append(shape)
            step = y.chunks[axis][0]
            chunks.append(y.chunks[axis] if C.shape[0] == factor.size else step)
        v = self.values
        mean, var = lazy_grid_moments(y, self.eigen, cross, prior, v["amplitude"] ** 2, v["noise"] ** 2, v["mean"],
                                      chunks)  # fmt: skip
        if noise:
            var = var + v["noise"] ** 2
        shape = [n for s in sizes for n in s]
        labels = "".join(t.labels for t in tests)
        order = [labels.index(c) for c in out_order]
        mean, var = (a.reshape(shape).transpose(order) for a in (mean, var))
        return mean, var

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Posterior mean and variance at the test inputs, as arrays over ``out_order``.

        Parameters
        ----------
        tests : sequence of TestInputs
            One per factor.
        out_order : str
            Output-axis labels in the order of the result's axes.
        noise : bool
            Add the observation noise ``σ²`` to the variance (predictive of ``y``).
        """
        if self.lazy_data is not None:
            return self._lazy_moments(tests, out_order, noise)
        eta2 = self.values["amplitude"] ** 2
        cross, prior_var = [], eta2
        for factor, test, Q in zip(self.factors, tests, self.eigen.vectors, strict=True):
            params = factor_params(factor, self.values)
            cross.append(factor.covariance(params, test=test.values) @ Q)
            shape = np.broadcast_shapes(*(np.shape(v) for v in test.values))
            prior_var = prior_var * place_axes(factor.variance(params, shape), test.labels, out_order)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha_tilde, cross, labels, out_order)
        explained = eta2**2 * kron_contract(self.inv_diag, [a * a for a in cross], labels, out_order)
        var = np.clip(prior_var - explained, 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, np.broadcast_to(var, mean.shape)


def _prior_variance(factors, values, tests, out_order):
    prior = values["amplitude"] ** 2
    for factor, test in zip(factors, tests, strict=True):
        shape = np.broadcast_shapes(*(np.shape(v) for v in test.values))
        prior = prior * place_axes(factor.variance(factor_params(factor, values), shape), test.labels, out_order)
    return prior


@dataclass(frozen=True)
class ObservedPosterior:
    """A Gaussian-noise Kronecker GP conditioned on any subset of cells, with per-cell noise.

    ``A = η² (⊗K_i)_oo + diag(σ² + known_var)_o`` on the observed cells ``o`` (the finite
    cells of ``y``), handled by :class:`xkron.dense.DenseSystem` (exact) or
    :class:`xkron.iterative.IterativeSystem`.

    With the iterative solver the variance ``η² k** − η⁴ k*ᵀA⁻¹k*`` is estimated: the explained
    part ``η⁴ k*ᵀA⁻¹k*`` is ``Var(η² k*ᵀ A⁻¹ ε_o)`` for ``ε ~ N(0, G)`` on the grid, and the same
    draws give ``η² k*ᵀ F⁻¹ ε'`` (``ε'`` sharing ``ε``'s field part), whose variance under the
    complete-grid Kronecker model ``F`` is known exactly; their difference is the control variate
    (``VARIANCE_SAMPLES`` draws, seeded by ``solver_options["seed"]``).

    Examples
    --------
    >>> from xkron.kernels import ExpQuad
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

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    system: object
    alpha: np.ndarray
    known_var: np.ndarray | float = 0.0
    solver: str = "dense"
    seed: int = 0
    variance_samples: int = VARIANCE_SAMPLES

    @classmethod
    def condition(
        cls,
        y: np.ndarray,
        factors: Sequence[Factor],
        values: Mapping[str, float],
        known_var=0.0,
        solver: str = "dense",
        options: Mapping | None = None,
    ) -> ObservedPosterior:
        """Condition on the finite cells of ``y`` (one axis per factor) at hyperparameter ``values``."""
        from xkron.dense import DenseSystem
        from xkron.iterative import IterativeSystem

        options = dict(options or {})
        samples = options.pop("variance_samples", VARIANCE_SAMPLES)
        y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
        Ks = [f.covariance(factor_params(f, values)) for f in factors]
        eta2 = values["amplitude"] ** 2
        noise = np.broadcast_to(known_var, y.shape) + values["noise"] ** 2
        observed = np.isfinite(y)
        if solver == "dense":
            system = DenseSystem(Ks, eta2, noise, observed)
        else:
            system = IterativeSystem(Ks, eta2, noise, observed, **options)
        alpha = system.solve(np.where(observed, y - values["mean"], 0.0))
        seed = options.get("seed", 0)
        return cls(tuple(factors), dict(values), system, alpha, known_var, solver, seed, samples)

    def cross(self, tests: Sequence[TestInputs]) -> list[np.ndarray]:
        """``K*_i`` per factor, shape ``test shape + (n_i,)``."""
        return [
            f.covariance(factor_params(f, self.values), test=t.values) for f, t in zip(self.factors, tests, strict=True)
        ]

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Posterior mean and variance at the test inputs (``noise`` adds ``σ²``, not the known noise)."""
        eta2 = self.values["amplitude"] ** 2
        cross = self.cross(tests)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha, cross, labels, out_order)
        if self.solver == "dense":
            explained = self._dense_explained(cross, labels, out_order, mean.shape)
            var = _prior_variance(self.factors, self.values, tests, out_order) - explained
        elif len(set("".join(labels))) == len("".join(labels)):  # a grid
            from xkron.sampling import sampled_variance

            rng = np.random.default_rng(self.seed)
            var = sampled_variance(self, tests, out_order, self.variance_samples, rng)
        else:
            explained = self._sampled_explained(cross, labels, out_order)
            var = _prior_variance(self.factors, self.values, tests, out_order) - explained
        var = np.clip(var, 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, np.broadcast_to(var, mean.shape)

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
        rng = np.random.default_rng(self.seed)
        roots = [Q * np.sqrt(lam) for Q, lam in zip(eigen.vectors, eigen.values, strict=True)]
        z = rng.standard_normal((self.variance_samples, *system.shape))
        for axis, R in enumerate(roots):
            z = np.moveaxis(np.tensordot(R, z, axes=([1], [axis + 1])), 0, axis + 1)
        field = np.sqrt(eta2) * z
        xi = rng.standard_normal(field.shape)
        eps_g = field + np.sqrt(system.noise_var) * xi
        eps_f = field + np.sqrt(system.floor) * xi
        solved_g = system.solve(eps_g)
        solved_f = system._f_power(eps_f.reshape(len(eps_f), -1), -1.0).reshape(eps_f.shape)
        diff = 0.0
        for a, b in zip(solved_g, solved_f, strict=True):
            u = eta2 * kron_contract(a, cross, labels, out_order)
            v = eta2 * kron_contract(b, cross, labels, out_order)
            diff = diff + (u * u - v * v)
        return exact_f + diff / self.variance_samples


def latent_cholesky(factor: Factor, params: Mapping[str, float]) -> np.ndarray:
    """``L = chol(K + JITTER·I)``, the factor's root in the latent model."""
    K = factor.covariance(params)
    K[np.diag_indices_from(K)] += JITTER
    return np.linalg.cholesky(K)


@dataclass(frozen=True)
class LatentPosterior:
    """The latent field at one posterior draw ``(θ, v)``: exact conditional moments anywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "mean": 0.0}
    >>> post = LatentPosterior.condition(np.zeros((5, 4)), f, values)
    >>> mean, var = post.moments([TestInputs("p", (np.array([9.0]),)),
    ...                           TestInputs("p", (np.array([9.0]),))], "p")
    >>> float(mean[0]), round(float(var[0]), 6)   # far from the data: the prior
    (0.0, 1.0)
    """

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    chols: tuple[np.ndarray, ...]
    v: np.ndarray

    @classmethod
    def condition(cls, v: np.ndarray, factors: Sequence[Factor], values: Mapping[str, float]) -> LatentPosterior:
        chols = tuple(latent_cholesky(f, factor_params(f, values)) for f in factors)
        v = np.asarray(v, dtype=float).reshape([f.size for f in factors])
        return cls(tuple(factors), dict(values), chols, v)

    def field(self) -> np.ndarray:
        """``f`` at the training cells: ``μ + η (⊗L_i) v``."""
        f = self.v
        for axis, L in enumerate(self.chols):
            f = np.moveaxis(np.tensordot(L, f, axes=([1], [axis])), 0, axis)
        return self.values["mean"] + self.values["amplitude"] * f

    def cross(self, tests: Sequence[TestInputs]) -> list[np.ndarray]:
        """``B_i = K*_i L_iᵀ⁻¹`` per factor, shape ``test shape + (n_i,)``."""
        out = []
        for factor, test, L in zip(self.factors, tests, self.chols, strict=True):
            K_star = factor.covariance(factor_params(factor, self.values), test=test.values)
            flat = K_star.reshape(-1, factor.size)
            B = scipy.linalg.solve_triangular(L, flat.T, lower=True, check_finite=False).T
            out.append(B.reshape(K_star.shape))
        return out

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Conditional mean and variance of ``f`` at the test inputs (``noise`` adds ``σ²``)."""
        eta = self.values["amplitude"]
        B = self.cross(tests)
        prior, explained = 1.0, 1.0
        for factor, test, B_i in zip(self.factors, tests, B, strict=True):
            params = factor_params(factor, self.values)
            prior = prior * place_axes(factor.variance(params, B_i.shape[:-1]), test.labels, out_order)
            explained = explained * place_axes(np.sum(B_i * B_i, axis=-1), test.labels, out_order)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta * kron_contract(self.v, B, labels, out_order)
        var = np.clip(eta**2 * (prior - explained), 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, np.broadcast_to(var, mean.shape)


def place_axes(array: np.ndarray, labels: str, out_order: str) -> np.ndarray:
    """Place an array over ``labels`` into the axes of ``out_order`` (size 1 elsewhere)."""
    sizes = dict(zip(labels, np.shape(array), strict=True))
    array = np.transpose(array, [labels.index(c) for c in out_order if c in labels])
    return array.reshape([sizes.get(c, 1) for c in out_order])
