"""The Laplace posterior of a latent Kronecker GP at fixed hyperparameters, as a Gaussian-noise posterior.

At the mode ``f̂`` of ``f | θ, y`` the Laplace approximation is ``q(f) = N(f̂, (K⁻¹ + W)⁻¹)``,
``W = −∂² log p(y | f̂)/∂f²``. At any inputs its mean and covariance are (Rasmussen & Williams
2006, eqs. 3.21 and 3.24)

    ``E[f*] = μ + k*ᵀ ∇log p(y | f̂)``,   ``Cov[f*] = k** − k*ᵀ (K + W⁻¹)⁻¹ k*``,

which are those of GP regression on pseudo-observations ``ỹ = f̂ + W⁻¹ ∇log p(y | f̂)`` with
per-cell noise variance ``W⁻¹`` (at the mode ``K⁻¹(f̂ − μ) = ∇log p``, so ``(K + W⁻¹)⁻¹(ỹ − μ)``
is ``∇log p`` itself). So the Laplace posterior *is* an
:class:`~xkron.posterior.observed.ObservedPosterior` on the cells with ``W > 0``, with noise
``W⁻¹`` and representer weights ``α = ∇log p(y | f̂)`` (no solve): its dense or iterative
variances and its Matheron sample fields are exact for the approximation, anywhere.

Unobserved cells have ``W = 0`` and leave the system. A Student-t likelihood is not log-concave:
far outliers have ``W < 0``. They keep their pull on the mean (``α`` is the whole gradient) and
leave the covariance, which uses ``max(W, 0)`` as the mode search does (a positive-definite
approximation; the exact ``(K⁻¹ + W)⁻¹`` is then larger at those cells).
"""

from __future__ import annotations

import hashlib
import threading
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from xkron.linalg.gridops import apply_each
from xkron.linalg.kronecker import KronEigen, kron_contract
from xkron.linalg.laplace import LaplaceMode, newton_mode
from xkron.linalg.laplace_system import LaplaceSystem, LaplaceVariance, VarianceWeights, laplace_variance
from xkron.linalg.systems import make_system
from xkron.posterior.conditional import TestInputs, prior_variance
from xkron.posterior.observed import ObservedPosterior
from xkron.settings import (
    DENSE_MAX_CELLS,
    LAPLACE_MEAN_CORRECTION,
    LAPLACE_MIN_CURVATURE,
    LAPLACE_MIXTURE_MIN_PROBES,
    LAPLACE_POOLED_MIN_PROBES,
    LAPLACE_VARIANCE_PROBES,
    LAPLACE_VARIANCE_WARN_SE,
)
from xkron.spec.grid import Factor
from xkron.spec.modelspec import ModelSpec, factor_params
from xkron.spec.pointwise import fill_unobserved, pointwise
from xkron.spec.solver import Solver

__all__ = [
    "LaplacePosterior",
    "SharedWeights",
    "laplace_mode",
    "laplace_posterior",
    "mean_correction_weights",
    "mixture_probes",
]


def laplace_mode(
    y: np.ndarray, spec: ModelSpec, values: Mapping[str, float], v0=None, eigen: KronEigen | None = None
) -> LaplaceMode:
    """The mode of ``f | θ, y`` of the latent model ``spec`` at hyperparameter ``values`` (NaN cells unobserved).

    ``v0``: a whitened starting point (the previous mode of nearby hyperparameters); ``eigen``: the
    factors' eigendecomposition at ``values`` where the caller already has it.
    """
    shape = [f.size for f in spec.factors]
    y = np.asarray(y, dtype=float).reshape(shape)
    observed = np.isfinite(y)
    filled, data = fill_unobserved(y, spec.cell_data(), observed)
    name = spec.likelihood.name

    def terms(f):
        return pointwise(name, f, filled, values, data)

    if eigen is None:
        eigen = KronEigen.from_factors([f.covariance(factor_params(f, values)) for f in spec.factors])
    return newton_mode(terms, eigen, values["amplitude"] ** 2, values["mean"], observed, v0)


class SharedWeights:
    """The variance weights of an INLA mixture's centre, per output grid, for its other design points.

    :func:`xkron.linalg.laplace_system.laplace_variance` combines two Monte Carlo estimates with
    per-cell weights. Fitted on the samples they weight they bias the estimate, so a posterior
    cross-fits them, which needs 16 probes and draws to be unbiased. The design points of one mixture
    are nearby posteriors: each takes the centre's weights (independent samples: unbiased), so only the
    centre needs 16 and the others :data:`~xkron.settings.LAPLACE_POOLED_MIN_PROBES`. ``reference``
    is the centre's posterior: it fits the weights of a grid when another point first asks for them.
    """

    def __init__(self):
        self.reference: LaplacePosterior | None = None
        self._weights: dict[tuple, VarianceWeights] = {}
        self._lock = threading.RLock()

    @staticmethod
    def key(tests: Sequence[TestInputs], out_order: str) -> tuple:
        """What the weights depend on: the test inputs and the output's order."""
        digest = hashlib.sha1()
        for t in tests:
            for v in t.values:
                a = np.ascontiguousarray(v, dtype=float)
                digest.update(repr((t.labels, a.shape)).encode())
                digest.update(a.tobytes())
        return out_order, digest.hexdigest()

    def put(self, tests: Sequence[TestInputs], out_order: str, weights: VarianceWeights) -> None:
        with self._lock:
            self._weights[self.key(tests, out_order)] = weights

    def get(self, tests: Sequence[TestInputs], out_order: str) -> VarianceWeights:
        """The centre's weights on these outputs, fitted by it first where it has not predicted there."""
        with self._lock:
            key = self.key(tests, out_order)
            if key not in self._weights:
                if self.reference is None:
                    raise RuntimeError("the mixture's centre must be conditioned before its other design points")
                self._weights[key] = self.reference.variance(tests, out_order).weights
            return self._weights[key]

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}  # a lock does not pickle (dask workers)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.RLock()


@dataclass(frozen=True)
class LaplacePosterior:
    """The Laplace posterior on grids above :data:`~xkron.settings.DENSE_MAX_CELLS` cells, in whitened coordinates.

    The same posterior as the pseudo-data :class:`~xkron.posterior.observed.ObservedPosterior`
    (``kind = "observed"``: :func:`xkron.posterior.fields.posterior_fields` draws Matheron fields from
    ``alpha``, ``system.solve`` and :meth:`noise_variance`), but every solve goes through the Newton
    matrix ``H`` (:class:`xkron.linalg.laplace_system.LaplaceSystem`) and the variance is
    :func:`xkron.linalg.laplace_system.laplace_variance`: exact Kronecker terms plus a Monte Carlo
    correction (probes and posterior draws), whose largest relative se is reported in
    :attr:`variance_reports`.
    """

    kind: ClassVar[str] = "observed"

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    system: LaplaceSystem
    alpha: np.ndarray
    pseudo_var: np.ndarray
    seed: int = 0
    points: float = 1.0
    shared: SharedWeights | None = field(default=None, compare=False, repr=False)
    reference: bool = False
    variance_reports: list = field(default_factory=list, compare=False, repr=False)

    def noise_variance(self) -> np.ndarray:
        """The pseudo-noise ``W⁻¹`` per cell (1 where ``W = 0``: those cells are not in the system)."""
        return self.pseudo_var

    cross = ObservedPosterior.cross
    mean = ObservedPosterior.mean

    @property
    def _pooled(self) -> bool:
        """Whether the variance takes the mixture centre's weights (:class:`SharedWeights`)."""
        return self.shared is not None and not self.reference

    @property
    def _probes(self) -> int:
        """This posterior's probes (and draws) of the variance: its share of a mixture's."""
        return mixture_probes(self.points, pooled=self._pooled)

    def variance(self, tests: Sequence[TestInputs], out_order: str, cross=None) -> LaplaceVariance:
        """The variance at the test inputs, its se and bounds (the centre of a mixture shares its weights);
        ``cross``: :meth:`cross` of ``tests`` where the caller has it."""
        cross = self.cross(tests) if cross is None else cross
        labels = [t.labels for t in tests]
        prior = prior_variance(self.factors, self.values, tests, out_order)
        weights = self.shared.get(tests, out_order) if self._pooled else None
        result = laplace_variance(self.system, cross, labels, out_order, prior, self._probes, self.seed, weights)
        if self.reference and self.shared is not None:
            self.shared.put(tests, out_order, result.weights)
        return result

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Mean ``μ + η² K*ᵀ ∇log p`` (exact) and variance (``noise`` adds the likelihood's ``σ²``)."""
        eta2 = self.values["amplitude"] ** 2
        labels = [t.labels for t in tests]
        cross = self.cross(tests)
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha, cross, labels, out_order)
        result = self.variance(tests, out_order, cross)
        probes = self._probes
        var = np.broadcast_to(result.variance, mean.shape)
        with np.errstate(over="ignore", divide="ignore", invalid="ignore"):  # of the variance; inf where it is 0
            relative = np.broadcast_to(result.se, mean.shape) / var / np.sqrt(self.points)  # the mixture's
        worst = float(np.max(relative, initial=0.0))
        unresolved = int(np.count_nonzero(relative > LAPLACE_VARIANCE_WARN_SE))
        self.variance_reports.append({"probes": probes, "points": self.points, "max_relative_se": worst,
                                      "cells_over_warn_se": unresolved})  # fmt: skip
        if unresolved:
            # One text for every design point of a mixture, so that Python's default filter shows it once
            single = self.points == 1
            where = (f"at {unresolved} of {var.size} cells (worst {worst:.3g})" if single else
                     f"at some cells of some of its design points (effectively {self.points:.3g}, each with its "
                     "share of the probes)")  # fmt: skip
            samples = f"{probes} probes and as many draws" if single else "probes and draws at each design point"
            warnings.warn(
                f"the Laplace posterior's variance is partly a Monte Carlo estimate ({samples}) "
                f"whose standard error exceeds {LAPLACE_VARIANCE_WARN_SE:.0%} of the variance {where}: "
                "the sd there is uncertain (held within rigorous bounds: the "
                "prior's above, W's largest value everywhere below). This happens where the curvature W spans "
                "orders of magnitude, e.g. nearly certain yes/no events; cells where W is larger are estimated well",
                UserWarning,
                stacklevel=4,
            )
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, var


def mixture_probes(points: float, pooled: bool = False) -> int:
    """Probes (and draws) of the Laplace variance at one of ``points`` equally weighted design points.

    The mixture's Monte Carlo variance is ``Σ w_k² σ²/n_k``: with ``n_k = n/points`` and
    ``points = 1/Σ w_k²`` it is that of one posterior with ``n`` probes. At least
    :data:`~xkron.settings.LAPLACE_MIXTURE_MIN_PROBES` where the point cross-fits its own weights, and
    :data:`~xkron.settings.LAPLACE_POOLED_MIN_PROBES` where it takes the centre's (``pooled``,
    :class:`SharedWeights`): below those the estimate is biased.

    Examples
    --------
    >>> mixture_probes(1.0), mixture_probes(2.0), mixture_probes(22.1), mixture_probes(22.1, pooled=True)
    (64, 32, 16, 8)
    """
    least = LAPLACE_POOLED_MIN_PROBES if pooled else LAPLACE_MIXTURE_MIN_PROBES
    return max(least, min(LAPLACE_VARIANCE_PROBES, int(np.ceil(LAPLACE_VARIANCE_PROBES / points))))


def laplace_posterior(
    y: np.ndarray,
    spec: ModelSpec,
    values: Mapping[str, float],
    mode: LaplaceMode | None = None,
    mean_correction: bool = LAPLACE_MEAN_CORRECTION,
    seed: int = 0,
    points: float = 1.0,
    shared: SharedWeights | None = None,
    reference: bool = False,
) -> ObservedPosterior:
    """The Laplace posterior of ``f`` at ``values`` as GP regression on pseudo-data (module docstring).

    ``mode``: the mode at ``values`` if already found (:func:`laplace_mode`). Up to
    :data:`~xkron.settings.DENSE_MAX_CELLS` cells with ``W > 0`` the pseudo-data system is dense
    (exact variances); above, :class:`LaplacePosterior` works in whitened coordinates.
    ``mean_correction``: move the mean from the mode towards the posterior mean
    (:func:`mean_correction_weights`); without it the moments are Rasmussen & Williams's. ``seed``: of
    the Monte Carlo part of the variance above that size (INLA gives each design point its own);
    ``points``: the effective number of design points the posterior is mixed with (INLA), whose
    mixture averages their Monte Carlo errors, so each takes fewer probes (:func:`mixture_probes`)
    and warns on the mixture's se; ``shared``: the mixture's :class:`SharedWeights`, whose centre
    (``reference``) fits the variance's weights for the other points.

    Examples
    --------
    >>> from xkron.spec.grid import Factor
    >>> from xkron.spec.kernels import ExpQuad
    >>> from xkron.spec.likelihoods import Poisson
    >>> x = np.linspace(0, 3, 6)
    >>> spec = ModelSpec((Factor(("a",), ExpQuad(), (x,)), Factor(("b",), ExpQuad(), (x,))), {},
    ...                  likelihood=Poisson(), latent=True)
    >>> values = {"ls_a": 1.0, "ls_b": 1.0, "amplitude": 1.0, "mean": 0.0}
    >>> y = np.array([[0, 1, 3, 2, 1, 0]] * 6, dtype=float)
    >>> mode = laplace_mode(y, spec, values)
    >>> from xkron.posterior.conditional import TestInputs
    >>> grid = [TestInputs("a", (x,)), TestInputs("b", (x,))]
    >>> at_mode, var = laplace_posterior(y, spec, values, mean_correction=False).moments(grid, "ab")
    >>> mean, _ = laplace_posterior(y, spec, values).moments(grid, "ab")
    >>> bool(np.allclose(at_mode, mode.f)), bool(np.all(var < 1.0))
    (True, True)
    >>> bool(np.all(mean < at_mode))  # low counts: a longer tail towards low rates, the mean below the mode
    True
    """
    y = np.asarray(y, dtype=float).reshape([f.size for f in spec.factors])
    factors = [f.covariance(factor_params(f, values)) for f in spec.factors]
    eigen = KronEigen.from_factors(factors)  # once: the mode search and the whitened system share it
    mode = laplace_mode(y, spec, values, eigen=eigen) if mode is None else mode
    keep = mode.observed & (mode.w > LAPLACE_MIN_CURVATURE * max(float(np.max(mode.w)), 0.0))
    pseudo_var = 1.0 / np.where(keep, mode.w, 1.0)
    eta2 = values["amplitude"] ** 2
    if np.count_nonzero(keep) > DENSE_MAX_CELLS:
        system = LaplaceSystem(eigen, eta2, np.where(keep, mode.w, 0.0))
        post = LaplacePosterior(
            tuple(spec.factors), dict(values), system, mode.d1, pseudo_var, seed, points, shared, reference
        )
    else:
        solver = Solver("dense")
        system = make_system(solver, factors, eta2, pseudo_var, keep, solves_only=True)
        post = ObservedPosterior(
            tuple(spec.factors), dict(values), system, mode.d1, solver=solver, system_noise=pseudo_var
        )
    if not mean_correction:
        return post
    return replace(post, alpha=post.alpha + mean_correction_weights(post, factors, mode, keep))


def mean_correction_weights(post, factors: Sequence[np.ndarray], mode: LaplaceMode, keep: np.ndarray) -> np.ndarray:
    """Representer weights that move the Laplace mean from the mode towards the posterior mean.

    The mode of a skewed posterior is not its mean. Expanding ``log p(f | y)`` to third order at
    the mode ``f̂`` (the likelihood's third derivatives ``d₃`` are diagonal) gives
    ``E[f] ≈ f̂ + δ``, ``δ = ½ Σ (d₃ ∘ diag Σ)`` with ``Σ = (C⁻¹ + W)⁻¹`` (``C = η²⊗K_i``): the
    first-order mean correction of the Laplace approximation (in 1-D, ``½ d₃ σ⁴``; the location
    part of Rue, Martino & Chopin's 2009 simplified Laplace approximation). At any inputs the GP
    carries it as ``δ* = c*ᵀ C⁻¹ δ = η² k*ᵀ α_δ`` with ``α_δ = ½ (g − A⁻¹ (C g))``, ``g = d₃ ∘ diag Σ``
    and ``A = C_kk + W_k⁻¹`` the pseudo-data system, so it is added to the weights ``α``: means,
    quantiles and Matheron fields all shift by it. ``diag Σ`` is the posterior's own variance at the
    training cells (exact on the dense path, with its Monte Carlo error above). Zero for a Gaussian
    likelihood (``d₃ = 0``).
    """
    tests = [TestInputs(chr(97 + i), tuple(f.inputs())) for i, f in enumerate(post.factors)]
    order = "".join(t.labels for t in tests)
    # An uncertain variance is reported where a prediction asks for it, not here.
    var = post.variance(tests, order).variance if isinstance(post, LaplacePosterior) else post.moments(tests, order)[1]
    shape = mode.d3.shape
    g = np.where(mode.observed, mode.d3, 0.0) * np.reshape(var, shape)
    cg = post.values["amplitude"] ** 2 * apply_each(g.reshape(1, -1), list(factors), shape)[0].reshape(shape)
    return 0.5 * (g - post.system.solve(np.where(keep, cg, 0.0)))
