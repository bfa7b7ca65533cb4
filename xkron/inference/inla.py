"""Integrated hyperparameters, INLA-style: the design of ``fit(method="inla")``.

Rue, Martino & Chopin (2009): after the Laplace MAP of ``θ`` (:func:`xkron.inference.run.run_inference`),
the hyperparameters' posterior ``π(θ | y) ∝ q(y | θ) p(θ)`` (the Laplace marginal ``q``) is
explored in the unconstrained coordinates ``z`` that PyMC samples in (log-lengthscales, ...), with
the Jacobian, so that it is a density of ``z``:

1. the Hessian ``H = −∇² log π(z | y)`` at the MAP, by central differences of the model's own
   gradient (:data:`~xkron.settings.INLA_HESSIAN_STEP`), and one Newton step to the mode of the
   density with the Jacobian (the MAP is that of the density without it, as ``find_MAP``'s);
2. the central composite design around that mode in standardised coordinates ``t``,
   ``z = ẑ + V Λ^{-1/2} S(t) t`` with ``H = V Λ Vᵀ`` (:func:`xkron.linalg.quadrature.ccd`), where
   ``S`` stretches each eigen-axis by its own scale below and above the mode, measured by two
   evaluations per axis (the skewness correction of Rue et al., Sec. 6.1): posteriors of
   lengthscales are skewed even on the log scale, and a symmetric design underestimated their sd by
   a fifth in the tests;
3. importance weights ``w_k ∝ a_k π(z_k | y) J(t_k) / φ(t_k)`` (``J = det S``): the rule is exact
   for a split-normal posterior and, through ``π/φ``, follows one that is not.

Every evaluation is the PyMC model's compiled log density (the Laplace Op inside it; the design and
skewness points, which need no gradient, through its value-only twin at about half the cost), so INLA
works on the same model as the MAP and NUTS; the result's design points and weights are mixed by
:mod:`xkron.results.predict` and :mod:`xkron.results.samples`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from pymc.pytensorf import compile as pm_compile

from xkron.inference.optimize import COMPILE_MODE, compile_log_density
from xkron.linalg.quadrature import ccd
from xkron.models.laplace_op import value_only
from xkron.settings import INLA_CCD_F0, INLA_HESSIAN_STEP, INLA_SKEW_MAX, INLA_SKEW_PROBE

__all__ = ["Explored", "compile_density", "compile_value", "explore"]


class Explored(NamedTuple):
    """The design of :func:`explore`: constrained values and normalised weights per point, and a report."""

    values: list[dict[str, float]]
    weights: np.ndarray
    log_posterior: np.ndarray
    report: dict


def _unpacking(rvs):
    """``z ↦`` the free RVs' values (split and shaped), ``values ↦ {name: float}``, and their names."""
    shapes = [tuple(int(s) for s in rv.type.shape) for rv in rvs]
    sizes = [int(np.prod(s)) for s in shapes]
    names = [rv.name for rv in rvs]

    def split(z: np.ndarray) -> list[np.ndarray]:
        parts = np.split(np.asarray(z, dtype=float), np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, shapes, strict=True)]

    def named(values) -> dict[str, float]:
        return {k: float(np.squeeze(v)) for k, v in zip(names, values, strict=True)}

    return split, named, names


def compile_density(model):
    """``z ↦ (log π(z), ∇ log π(z), constrained values)`` with the Jacobian, ``values ↦ z``, and the free
    RVs' names in the order of ``z`` (scalar hyperparameters)."""
    rvs = list(model.free_RVs)
    fn, to_u = compile_log_density(model, jacobian=True)
    split, named, names = _unpacking(rvs)

    def evaluate(z: np.ndarray):
        out = fn(*split(z))
        n = len(rvs)
        return float(out[0]), np.concatenate([np.ravel(g) for g in out[1 : 1 + n]]), named(out[1 + n :])

    def to_unconstrained(start: dict) -> np.ndarray:
        args = [np.asarray(start[k], dtype=rv.dtype).reshape(rv.type.shape) for k, rv in zip(names, rvs, strict=True)]
        return np.concatenate([np.ravel(v) for v in to_u(*args)])

    return evaluate, to_unconstrained, names


def compile_value(model):
    """``z ↦ (log π(z), constrained values)``, :func:`compile_density`'s without the gradient: the Laplace
    Op's value-only twin (:func:`xkron.models.laplace_op.value_only`), at about half the cost."""
    rvs = list(model.free_RVs)
    split, named, _ = _unpacking(rvs)
    outputs = value_only([model.logp(jacobian=True), *model.replace_rvs_by_values(rvs)])
    with model:
        fn = pm_compile(list(model.value_vars), outputs, mode=COMPILE_MODE, on_unused_input="ignore")

    def value(z: np.ndarray):
        out = fn(*split(z))
        return float(out[0]), named(out[1:])

    return value


def _hessian(evaluate, z: np.ndarray, step: float) -> np.ndarray:
    """``−∇² log π`` at ``z`` by central differences of the gradient, symmetrised."""
    d = len(z)
    H = np.empty((d, d))
    for i in range(d):
        e = np.zeros(d)
        e[i] = step
        H[:, i] = -(evaluate(z + e)[1] - evaluate(z - e)[1]) / (2 * step)
    return 0.5 * (H + H.T)


def _skew_scales(value, centre: np.ndarray, logp_c: float, axes: np.ndarray) -> np.ndarray:
    """Per eigen-axis, the scale of the posterior below and above the mode relative to the Hessian's
    (``2 × d``; Rue, Martino & Chopin 2009, Sec. 6.1): where ``log π`` falls by ``Δ`` at
    :data:`~xkron.settings.INLA_SKEW_PROBE` standard deviations, a Gaussian with scale ``s``
    falls by ``u²/(2s²)``, so ``s = u / √(2Δ)``, kept within ``[1/INLA_SKEW_MAX, INLA_SKEW_MAX]``."""
    u = INLA_SKEW_PROBE
    scales = np.ones((2, axes.shape[1]))
    for i in range(axes.shape[1]):
        for side, sign in enumerate((-1.0, 1.0)):
            drop = logp_c - value(centre + sign * u * axes[:, i])[0]
            s = u / np.sqrt(2 * drop) if np.isfinite(drop) and drop > 0 else INLA_SKEW_MAX
            scales[side, i] = np.clip(s, 1 / INLA_SKEW_MAX, INLA_SKEW_MAX)
    return scales


def explore(model, values: dict[str, float], f0: float = INLA_CCD_F0, step: float = INLA_HESSIAN_STEP) -> Explored:
    """The CCD design of the hyperparameters' Laplace posterior around the MAP ``values`` (module docstring).

    Raises
    ------
    ValueError
        Where the Hessian at the MAP is not positive definite (the MAP is not a maximum: a flat or
        improper direction of the posterior), naming the direction's largest components.
    """
    evaluate, to_unconstrained, names = compile_density(model)
    value = compile_value(model)
    z0 = to_unconstrained(values)
    logp0, grad0, values0 = evaluate(z0)
    H = _hessian(evaluate, z0, step)
    lam, V = np.linalg.eigh(H)
    if lam[0] <= 0:
        worst = V[:, 0]
        order = np.argsort(-np.abs(worst))[:3]
        top = ", ".join(f"{names[i]} ({worst[i]:+.2f}, at {values.get(names[i], float('nan')):.3g})" for i in order)
        hint = (
            " A lengthscale at the MAP far below its dim's spacing means the data are nearly independent along "
            "that dim beyond a smooth part: a kernel such as Matern52() + WhiteNoise() there models both."
            if names[order[0]].startswith("ls_")
            else ""
        )
        raise ValueError(
            f"the hyperparameters' Laplace log posterior is not concave at the MAP (Hessian eigenvalue {lam[0]:.3g} "
            f"along {top}): INLA cannot build its design there. Give those hyperparameters tighter priors, or fix "
            f"them, or use method='laplace'.{hint}"
        )
    centre = z0 + V @ ((V.T @ grad0) / lam)  # one Newton step to the mode with the Jacobian
    logp_c, values_c = value(centre)
    if not logp_c > logp0:
        centre, logp_c, values_c = z0, logp0, values0
    axes = V / np.sqrt(lam)  # column i: one standard deviation along the Hessian's i-th eigenvector
    scales = _skew_scales(value, centre, logp_c, axes)
    design = ccd(len(z0), f0)
    stretch = np.where(design.points > 0, scales[1], np.where(design.points < 0, scales[0], scales.mean(axis=0)))
    zs = centre + (design.points * stretch) @ axes.T
    evaluated = [(logp_c, values_c) if np.array_equal(z, centre) else value(z) for z in zs]
    log_post = np.array([e[0] for e in evaluated])
    # w_k ∝ a_k π(z_k) J(t_k) / φ(t_k), J = Π stretch: exact for a split-normal posterior.
    log_j = np.sum(np.log(stretch), axis=1)
    log_w = np.log(design.weights) + (log_post - log_post[0]) + log_j + 0.5 * np.sum(design.points**2, axis=1)
    log_w[~np.isfinite(log_w)] = -np.inf
    weights = np.exp(log_w - np.max(log_w))
    # A point whose weight underflows to 0, or whose values left the support (an amplitude of inf
    # where the MAP sits near 0), adds nothing to the mixture and cannot be conditioned on: dropped.
    finite = [all(np.all(np.isfinite(np.asarray(v, dtype=float))) for v in e[1].values()) for e in evaluated]
    keep = np.flatnonzero((weights > 0) & np.asarray(finite))
    weights = weights[keep] / weights[keep].sum()
    evaluated, log_post = [evaluated[k] for k in keep], log_post[keep]
    report = {
        "n_points": len(keep),
        "n_dropped": len(zs) - len(keep),
        "hessian_eigenvalues": lam.tolist(),
        "f0": f0,
        "effective_points": float(1.0 / np.sum(weights**2)),
        "newton_gain": logp_c - logp0,
        "skew_scales": scales.T.tolist(),
    }
    return Explored([e[1] for e in evaluated], weights, log_post, report)
