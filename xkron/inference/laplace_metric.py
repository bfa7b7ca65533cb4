"""A NUTS metric and start for the joint ``(θ, v)`` sampler of a non-Gaussian latent model, from Laplace.

NUTS on the latent model (:func:`xkron.models.build.build_latent_model`: ``f = μ + η L v``,
``L = ⊗ chol(K_i + jitter)``, ``v ~ N(0, I)``) struggles where the data pin the field down: the
posterior of ``v`` given ``θ`` has precision ``I + η² Lᵀ W L`` (``W = −∂² log p/∂f²`` at the
mode), far from the identity that a diagonal metric adapts towards, and its mean moves with ``θ``.
The Laplace approximation knows both, so the joint Gaussian it implies is the metric (the inverse
mass matrix) and its mean every chain's start:

- ``z ~ N(ẑ, Σ)``: ``ẑ`` the Laplace MAP in PyMC's unconstrained coordinates and ``Σ`` the inverse
  of ``−∇² log π(z | y)`` there (central differences of the Laplace model's gradient, with the
  Jacobian, as :mod:`xkron.inference.inla` does);
- ``v | z ~ N(v̂ + J (z − ẑ), C)``: the mode, its derivative ``J = ∂v̂/∂z`` (central differences of
  the mode at the same points), and ``C`` the conditional covariance at ``ẑ`` with ``W`` replaced by
  its projection on the Kronecker eigenbasis. With ``K_i + jitter = Q_i Λ_i Q_iᵀ`` the matrices
  ``T_i = L_i⁻¹ Q_i Λ_i^{1/2}`` are orthogonal, ``L = (⊗Q_i Λ_i^{1/2}) Tᵀ`` and
  ``I + η² Lᵀ W L = T (I + η² Λ^{1/2} Qᵀ W Q Λ^{1/2}) Tᵀ``; keeping the diagonal of the middle
  matrix, ``D⁻¹ = 1 + η² Λ ∘ (Q∘Q)ᵀ w``, gives ``C = T D Tᵀ``: exact for constant ``W`` (complete
  grids, Gaussian likelihood), and every product with it is Kronecker (``O(N Σ n_i)``).

So ``Cov = [[Σ, Σ Jᵀ], [J Σ, C + J Σ Jᵀ]]``, positive definite by construction, applied by
:class:`KronLaplacePotential` without forming it. Any metric leaves NUTS exact; this one only sets
how far each step goes, and NUTS adapts just its step size. It is fixed at the mode, while the
conditional spread of ``v`` scales with the amplitude: it is used only where the amplitude's Laplace
posterior is narrow (:data:`~xkron.settings.NUTS_LAPLACE_METRIC_MAX_SD`); elsewhere the chains start
at the Laplace mode with PyMC's diagonal adaptation.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import scipy.linalg
from pymc.step_methods.hmc.quadpotential import QuadPotential

from xkron.inference.inla import compile_density
from xkron.linalg.gridops import apply_each
from xkron.posterior.conditional import jittered_covariance
from xkron.posterior.laplace import laplace_mode
from xkron.settings import INLA_HESSIAN_STEP, NUTS_LAPLACE_METRIC_MAX_SD
from xkron.spec.modelspec import ModelSpec, factor_params

__all__ = ["KronLaplacePotential", "KronMetric", "chol_whitened", "laplace_metric", "laplace_rotations"]


class KronMetric(NamedTuple):
    """The pieces of the metric ``Cov`` (module docstring), positions as PyMC ravels the latent model's values."""

    sigma: np.ndarray
    sigma_chol: np.ndarray
    jacobian: np.ndarray
    rotations: tuple[np.ndarray, ...]
    scale: np.ndarray  # the diagonal D, flat over the grid
    theta: np.ndarray  # positions of z
    v: np.ndarray  # positions of v (the grid, row-major)
    shape: tuple[int, ...]


class LaplaceMetric(NamedTuple):
    """The chains' start (the latent model's ``initvals``), the metric and a report.

    ``fits`` is whether the fixed metric suits the posterior: the Laplace sd of the log-amplitude is
    at most :data:`~xkron.settings.NUTS_LAPLACE_METRIC_MAX_SD` (or the amplitude is fixed).
    """

    start: dict
    metric: KronMetric
    report: dict
    fits: bool


def chol_whitened(field: np.ndarray, spec: ModelSpec, values) -> np.ndarray:
    """``v = (⊗L_i)⁻¹ (f − μ) / η``: the latent model's whitened coordinates of a field on the grid."""
    v = np.asarray(field, dtype=float) - values["mean"]
    for axis, f in enumerate(spec.factors):
        L = np.linalg.cholesky(jittered_covariance(f, factor_params(f, values)))
        v = np.moveaxis(scipy.linalg.solve_triangular(L, np.moveaxis(v, axis, 0), lower=True), 0, axis)
    return v / values["amplitude"]


def laplace_rotations(spec: ModelSpec, values, w: np.ndarray):
    """The rotations ``T_i`` and the diagonal ``D`` of ``C = T D Tᵀ`` (module docstring), flat over the grid."""
    rotations, spectra, squares = [], [], []
    for f in spec.factors:
        K = jittered_covariance(f, factor_params(f, values))
        lam, Q = np.linalg.eigh(K)
        lam = np.maximum(lam, 0.0)
        rotations.append(scipy.linalg.solve_triangular(np.linalg.cholesky(K), Q * np.sqrt(lam), lower=True))
        spectra.append(lam)
        squares.append((Q**2).T)
    shape = tuple(len(s) for s in spectra)
    projected = apply_each(np.maximum(w, 0.0).reshape(1, -1), squares, shape)[0]
    spectrum = spectra[0]
    for s in spectra[1:]:
        spectrum = np.multiply.outer(spectrum, s)
    return tuple(rotations), 1.0 / (1.0 + values["amplitude"] ** 2 * spectrum.ravel() * projected)


def laplace_metric(y, spec: ModelSpec, laplace_model, latent_model, values: dict, step: float = INLA_HESSIAN_STEP):
    """The start and metric of the joint sampler at the Laplace MAP ``values`` (module docstring).

    ``laplace_model`` is :func:`~xkron.models.build.build_laplace_model`'s for ``(y, spec)`` and
    ``latent_model`` :func:`~xkron.models.build.build_latent_model`'s. Costs ``2d`` Laplace
    evaluations and mode searches (``d`` free hyperparameters) after the MAP.
    """
    fixed = spec.fixed()
    full = {**fixed, **values}
    mode = laplace_mode(y, spec, full)
    v_hat = chol_whitened(mode.f, spec, full)
    if spec.free_names():
        evaluate, to_unconstrained, names = compile_density(laplace_model)
        z0 = to_unconstrained(values)
    else:  # only v is sampled
        evaluate, names, z0 = None, [], np.zeros(0)
    d, n = len(z0), v_hat.size
    H, J = np.empty((d, d)), np.empty((n, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = step
        (_, g_plus, at_plus), (_, g_minus, at_minus) = evaluate(z0 + e), evaluate(z0 - e)
        H[:, i] = -(g_plus - g_minus) / (2 * step)
        ends = []
        for at in (at_plus, at_minus):
            point = {**fixed, **at}
            ends.append(chol_whitened(laplace_mode(y, spec, point, v0=mode.v).f, spec, point).ravel())
        J[:, i] = (ends[0] - ends[1]) / (2 * step)
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    # A direction the Laplace posterior does not curve down in gets unit variance in the metric.
    sigma = (V / np.where(lam > 0, lam, 1.0)) @ V.T
    rotations, scale = laplace_rotations(spec, full, mode.w)
    theta, v = _positions(latent_model, names)
    metric = KronMetric(sigma, np.linalg.cholesky(sigma), J, rotations, scale, theta, v, v_hat.shape)
    sd = dict(zip(names, np.sqrt(np.diag(sigma)).tolist(), strict=True))
    fits = sd.get("amplitude", 0.0) <= NUTS_LAPLACE_METRIC_MAX_SD
    report = {"metric": "laplace" if fits else "adapt_diag", "newton_steps": mode.newton_steps,
              "hessian_eigenvalues": lam.tolist(), "sd_unconstrained": sd}  # fmt: skip
    return LaplaceMetric({**values, "v": v_hat}, metric, report, fits)


def _positions(latent_model, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Where ``z`` (in the order of ``names``) and ``v`` sit in the latent model's raveled values."""
    start, where = 0, {}
    point = latent_model.initial_point()
    for value in latent_model.value_vars:
        size = int(np.size(point[value.name]))
        where[latent_model.values_to_rvs[value].name] = np.arange(start, start + size)
        start += size
    theta = np.concatenate([where[name] for name in names]) if names else np.zeros(0, dtype=int)
    return theta, where["v"]


def _as_slice(index: np.ndarray):
    """A contiguous run of positions as a slice (a view, no copy), else the index array itself."""
    if len(index) and np.array_equal(index, np.arange(index[0], index[0] + len(index))):
        return slice(int(index[0]), int(index[0]) + len(index))
    return index


class KronLaplacePotential(QuadPotential):
    """PyMC's kinetic energy with the metric :class:`KronMetric` (``Cov`` of the module docstring).

    ``velocity(p) = Cov p`` and ``random() ~ N(0, Cov⁻¹)`` in Kronecker products; with
    ``x ~ N(0, Cov)`` written as ``z = Σ^{1/2}ξ``, ``v = J z + C^{1/2}ζ``, the momentum ``Cov⁻¹ x`` is
    ``p_v = T D^{-1/2} ζ`` and ``p_z = L_Σ⁻ᵀ ξ − Jᵀ p_v``.
    """

    def __init__(self, metric: KronMetric, rng=None):
        super().__init__(rng)
        self.metric = metric
        self.dtype = np.dtype("float64")
        self._n = len(metric.theta) + len(metric.v)
        self._theta, self._v = _as_slice(metric.theta), _as_slice(metric.v)
        shape = metric.shape
        # Mode products as (before, n_i, after) matmuls, their shapes precomputed (called every leapfrog step).
        self._steps = [
            (T, T.T, (int(np.prod(shape[:i], dtype=int)), shape[i], int(np.prod(shape[i + 1 :], dtype=int))))
            for i, T in enumerate(metric.rotations)
        ]

    def _rotate(self, x: np.ndarray, transpose: bool) -> np.ndarray:
        for T, Tt, (before, n, after) in self._steps:
            M = Tt if transpose else T
            # The last axis as one GEMM (x M^T); a batch of matrix-vector products is much slower.
            x = x.reshape(before, n) @ M.T if after == 1 else np.matmul(M, x.reshape(before, n, after))
        return x.reshape(-1)

    def velocity(self, x, out=None):
        m = self.metric
        p_v = x[self._v]
        a = m.sigma @ (x[self._theta] + m.jacobian.T @ p_v)
        vel = np.empty(self._n) if out is None else out
        vel[self._theta] = a
        vel[self._v] = m.jacobian @ a + self._rotate(m.scale * self._rotate(p_v, True), False)
        return vel if out is None else None

    def energy(self, x, velocity=None):
        if velocity is None:
            velocity = self.velocity(x)
        return 0.5 * float(np.dot(x, velocity))

    def velocity_energy(self, x, v_out):
        self.velocity(x, out=v_out)
        return self.energy(x, v_out)

    def random(self):
        m = self.metric
        p = np.empty(self._n)
        p_v = self._rotate(self.rng.normal(size=len(m.v)) / np.sqrt(m.scale), False)
        p[self._v] = p_v
        xi = self.rng.normal(size=len(m.theta))
        p[self._theta] = scipy.linalg.solve_triangular(m.sigma_chol.T, xi, lower=False) - m.jacobian.T @ p_v
        return p

    __call__ = random
