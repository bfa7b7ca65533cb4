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

Gaussian data on any subset of cells, or with per-cell noise (:class:`xkron.posterior.observed.ObservedPosterior`):
the mean is ``μ + η² (α ×_1 K*_1 ... ×_D K*_D)`` with ``α = A⁻¹(y − μ)`` on the full grid (0 at
missing cells), from a dense or an iterative solve; the variance is exact with the dense
solver and a control-variate Monte Carlo estimate with the iterative one.

Test inputs are described per factor by output-axis labels (see
:func:`xkron.linalg.kronecker.kron_contract`): a factor whose test inputs vary along its own
labels gives a grid; factors that share a label give scattered points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import scipy.linalg

from xkron.linalg.kronecker import KronEigen, kron_contract, marginal_loglik
from xkron.linalg.lazy import is_dask
from xkron.spec.grid import Factor
from xkron.spec.modelspec import JITTER, factor_params

__all__ = ["KronPosterior", "LatentPosterior", "TestInputs", "jittered_covariance", "latent_cholesky", "place_axes"]


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
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> post = KronPosterior.condition(np.zeros((5, 4)), f, values)
    >>> mean, var = post.moments([TestInputs("p", (np.array([0.5]),)),
    ...                           TestInputs("p", (np.array([0.5]),))], "p")
    >>> float(mean[0]), bool(var[0] < 0.01)
    (0.0, True)
    """

    kind: ClassVar[str] = "kronecker"

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    eigen: KronEigen
    alpha_tilde: np.ndarray | None
    inv_diag: np.ndarray | None
    lazy_data: object = None
    """Dask-backed data (one axis per factor): moments are then lazy (:mod:`xkron.linalg.lazy`)."""

    @classmethod
    def condition(cls, y, factors: Sequence[Factor], values: Mapping[str, float]) -> KronPosterior:
        """Condition on ``y`` (one axis per grid dim) at hyperparameter ``values``; dask ``y`` stays lazy."""
        Ks = [f.covariance(factor_params(f, values)) for f in factors]
        eta2, sigma2 = values["amplitude"] ** 2, values["noise"] ** 2
        if is_dask(y):
            y = y.reshape([f.size for f in factors])
            return cls(tuple(factors), dict(values), KronEigen.from_factors(Ks), None, None, lazy_data=y)
        y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
        ll = marginal_loglik(y, Ks, eta2, sigma2, values["mean"])
        return cls(tuple(factors), dict(values), ll.eigen, ll.alpha_tilde, ll.inv_diag)

    def _lazy_moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool):
        """Moments on a test grid from dask-backed data, without computing anything."""
        from xkron.linalg.lazy import lazy_grid_moments

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
            prior.append(np.ravel(factor.variance(params, test.values)))
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

    def mean(self, tests: Sequence[TestInputs], out_order: str) -> np.ndarray:
        """Posterior mean at the test inputs (linear in the data: with a factor's kernel swapped for one
        additive part of it, the posterior mean of that part)."""
        if self.lazy_data is not None:
            raise NotImplementedError("the mean alone of dask-backed data: load the data first (fit.data.load())")
        eta2 = self.values["amplitude"] ** 2
        cross = [
            f.covariance(factor_params(f, self.values), test=t.values) @ Q
            for f, t, Q in zip(self.factors, tests, self.eigen.vectors, strict=True)
        ]
        return self.values["mean"] + eta2 * kron_contract(self.alpha_tilde, cross, [t.labels for t in tests], out_order)

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
            prior_var = prior_var * place_axes(factor.variance(params, test.values), test.labels, out_order)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha_tilde, cross, labels, out_order)
        explained = eta2**2 * kron_contract(self.inv_diag, [a * a for a in cross], labels, out_order)
        var = np.clip(prior_var - explained, 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, np.broadcast_to(var, mean.shape)


def prior_variance(factors, values, tests, out_order):
    prior = values["amplitude"] ** 2
    for factor, test in zip(factors, tests, strict=True):
        prior = prior * place_axes(factor.variance(factor_params(factor, values), test.values), test.labels, out_order)
    return prior


def jittered_covariance(factor: Factor, params: Mapping[str, float]) -> np.ndarray:
    """``K + JITTER·I``: the factor's covariance in the latent model (:data:`xkron.spec.modelspec.JITTER`)."""
    K = factor.covariance(params)
    K[np.diag_indices_from(K)] += JITTER
    return K


def latent_cholesky(factor: Factor, params: Mapping[str, float]) -> np.ndarray:
    """``L = chol(K + JITTER·I)``, the factor's root in the latent model."""
    return np.linalg.cholesky(jittered_covariance(factor, params))


@dataclass(frozen=True)
class LatentPosterior:
    """The latent field at one posterior draw ``(θ, v)``: exact conditional moments anywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "mean": 0.0}
    >>> post = LatentPosterior.condition(np.zeros((5, 4)), f, values)
    >>> mean, var = post.moments([TestInputs("p", (np.array([9.0]),)),
    ...                           TestInputs("p", (np.array([9.0]),))], "p")
    >>> float(mean[0]), round(float(var[0]), 6)   # far from the data: the prior
    (0.0, 1.0)
    """

    kind: ClassVar[str] = "latent"

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

    def mean(self, tests: Sequence[TestInputs], out_order: str) -> np.ndarray:
        """Conditional mean of ``f`` at the test inputs (see :meth:`KronPosterior.mean`)."""
        cross = self.cross(tests)
        return self.values["mean"] + self.values["amplitude"] * kron_contract(
            self.v, cross, [t.labels for t in tests], out_order
        )

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Conditional mean and variance of ``f`` at the test inputs (``noise`` adds ``σ²``)."""
        eta = self.values["amplitude"]
        B = self.cross(tests)
        prior, explained = 1.0, 1.0
        for factor, test, B_i in zip(self.factors, tests, B, strict=True):
            params = factor_params(factor, self.values)
            prior = prior * place_axes(factor.variance(params, test.values), test.labels, out_order)
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
