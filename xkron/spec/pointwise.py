"""Each likelihood's log-density per cell and its first three derivatives in the latent field.

The Laplace approximation (:mod:`xkron.linalg.laplace`) needs, at every observed cell,
``log p(y | f)``, ``∂/∂f`` and ``∂²/∂f²`` for Newton's method on the mode of ``f | θ, y``,
and ``∂³/∂f³`` for the implicit part of the marginal's gradient (Rasmussen & Williams 2006,
Alg. 5.1). numpy and scipy only; each log-density is that of the PyMC distribution
:meth:`xkron.spec.likelihoods.Likelihood.observe` builds (tested against ``pm.logp``), and the
derivatives are tested against central finite differences.

Bernoulli, binomial, Poisson, negative binomial and gamma (log link) are log-concave in ``f``
(``∂² ≤ 0``), so the Laplace mode is unique; Student-t is not: far outliers have ``∂² > 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np
import scipy.special as sc

__all__ = ["Pointwise", "fill_unobserved", "pointwise", "pointwise_params"]


class Pointwise(NamedTuple):
    """``log p(y | f)`` per cell and its derivatives ``∂ᵏ/∂fᵏ``, ``k = 1, 2, 3`` (arrays like ``f``)."""

    logp: np.ndarray
    d1: np.ndarray
    d2: np.ndarray
    d3: np.ndarray


def _gaussian(f, y, values, data):
    s2 = values["noise"] ** 2 + np.square(np.asarray(data.get("noise_sd", 0.0), dtype=float))
    r = y - f
    d2 = np.broadcast_to(-1.0 / s2, np.shape(f))
    return Pointwise(-0.5 * r * r / s2 - 0.5 * np.log(2 * np.pi * s2), r / s2, d2, np.zeros(np.shape(f)))


def _student_t(f, y, values, data):
    nu, s = values["nu"], values["noise"]
    r, a = y - f, nu * s * s
    q = a + r * r
    logp = sc.gammaln((nu + 1) / 2) - sc.gammaln(nu / 2) - 0.5 * np.log(np.pi * a) - (nu + 1) / 2 * np.log1p(r * r / a)
    return Pointwise(logp, (nu + 1) * r / q, (nu + 1) * (r * r - a) / q**2, -2 * (nu + 1) * r * (3 * a - r * r) / q**3)


def _poisson(f, y, values, data):
    mu = np.asarray(data.get("exposure", 1.0), dtype=float) * np.exp(f)
    logp = sc.xlogy(y, mu) - mu - sc.gammaln(y + 1)
    return Pointwise(logp, y - mu, -mu, -mu)


def _negative_binomial(f, y, values, data):
    mu = np.asarray(data.get("exposure", 1.0), dtype=float) * np.exp(f)
    alpha = values["dispersion"]
    s = alpha + mu
    logp = (
        sc.gammaln(y + alpha) - sc.gammaln(alpha) - sc.gammaln(y + 1)
        + alpha * np.log(alpha / s) + sc.xlogy(y, mu / s)
    )  # fmt: skip
    d2 = -alpha * mu * (alpha + y) / s**2
    return Pointwise(logp, alpha * (y - mu) / s, d2, d2 * (alpha - mu) / s)


def _binomial(f, y, values, data, trials=None):
    n = np.asarray(data["trials"] if trials is None else trials, dtype=float)
    p = sc.expit(f)
    # log C(n, y) + y f − n log(1 + eᶠ), with log(1 + eᶠ) = −log σ(−f) computed without overflow
    logp = sc.gammaln(n + 1) - sc.gammaln(y + 1) - sc.gammaln(n - y + 1) + y * f + n * sc.log_expit(-f)
    v = n * p * (1 - p)
    return Pointwise(logp, y - n * p, -v, -v * (1 - 2 * p))


def _bernoulli(f, y, values, data):
    return _binomial(f, y, values, data, trials=1.0)


def _gamma(f, y, values, data):
    k = values["shape"]
    ratio = k * y * np.exp(-f)
    logp = k * np.log(k) - k * f - sc.gammaln(k) + (k - 1) * np.log(y) - ratio
    return Pointwise(logp, ratio - k, -ratio, ratio)


_TERMS: dict[str, Callable] = {
    "gaussian": _gaussian,
    "student_t": _student_t,
    "poisson": _poisson,
    "negative_binomial": _negative_binomial,
    "bernoulli": _bernoulli,
    "binomial": _binomial,
    "gamma": _gamma,
}


def _gaussian_params(f, y, values, data):
    noise = values["noise"]
    s2 = noise**2 + np.square(np.asarray(data.get("noise_sd", 0.0), dtype=float))
    r = y - f
    chain = 2.0 * noise  # ∂s²/∂noise
    return {"noise": (chain * (0.5 * r * r / s2**2 - 0.5 / s2), chain * (-r / s2**2), chain / s2**2 + 0 * r)}


def _student_t_params(f, y, values, data):
    nu, s = values["nu"], values["noise"]
    r, a = y - f, nu * s * s
    q = a + r * r
    # through a = ν s²: ∂/∂a of (logp, d1, d2)
    da = (-0.5 / a + (nu + 1) * r * r / (2 * q * a), -(nu + 1) * r / q**2, -(nu + 1) * (3 * r * r - a) / q**3)
    direct_nu = (
        0.5 * sc.digamma((nu + 1) / 2) - 0.5 * sc.digamma(nu / 2) - 0.5 * np.log1p(r * r / a),
        r / q,
        (r * r - a) / q**2,
    )
    return {
        "noise": tuple(2 * nu * s * d for d in da),
        "nu": tuple(d + s * s * g for d, g in zip(direct_nu, da, strict=True)),
    }


def _negative_binomial_params(f, y, values, data):
    mu = np.asarray(data.get("exposure", 1.0), dtype=float) * np.exp(f)
    alpha = values["dispersion"]
    s = alpha + mu
    dlogp = sc.digamma(y + alpha) - sc.digamma(alpha) + np.log(alpha / s) + (mu - y) / s
    return {"dispersion": (dlogp, (y - mu) * mu / s**2, -mu * ((2 * alpha + y) * s - 2 * alpha * (alpha + y)) / s**3)}


def _gamma_params(f, y, values, data):
    k = values["shape"]
    ratio = y * np.exp(-f)
    return {"shape": (np.log(k) + 1 - f - sc.digamma(k) + np.log(y) - ratio, ratio - 1, -ratio)}


_PARAMS: dict[str, Callable] = {
    "gaussian": _gaussian_params,
    "student_t": _student_t_params,
    "negative_binomial": _negative_binomial_params,
    "gamma": _gamma_params,
}


def pointwise_params(name: str, f, y, values: Mapping[str, float], data: Mapping[str, Any]) -> dict:
    """``∂/∂φ`` of ``(log p(y | f), ∂ log p/∂f, ∂² log p/∂f²)`` per cell for each extra hyperparameter ``φ``.

    The likelihood's own parameters (``noise``, ``nu``, ``dispersion``, ``shape``) by name, as
    three arrays like ``f``; empty for Poisson, Bernoulli and binomial, which have none. The
    gradient of the Laplace marginal in ``φ`` needs all three
    (:func:`xkron.linalg.laplace_grad.laplace_gradient`).

    Examples
    --------
    >>> d = pointwise_params("gamma", np.zeros(1), np.ones(1), {"shape": 1.0}, {})["shape"]
    >>> [round(float(x[0]), 12) for x in d]  # Euler's γ = log k + 1 − f − ψ(k) + log y − ye^{−f}; ye^{−f} − 1; −ye^{−f}
    [0.577215664902, 0.0, -1.0]
    """
    f, y = np.asarray(f, dtype=float), np.asarray(y, dtype=float)
    if name not in _TERMS:
        raise ValueError(f"no pointwise terms for likelihood {name!r}; known: {sorted(_TERMS)}")
    return _PARAMS[name](f, y, values, data) if name in _PARAMS else {}


def pointwise(name: str, f, y, values: Mapping[str, float], data: Mapping[str, Any]) -> Pointwise:
    """``log p(y | f)`` and its first three ``f``-derivatives per cell, for the likelihood ``name``.

    Parameters
    ----------
    name : str
        A likelihood's ``name`` (:data:`xkron.spec.likelihoods.LIKELIHOODS`).
    f, y : array_like
        The latent field (link scale) and the observations, of one shape; only cells where ``y``
        is observed are meaningful (the caller masks the rest).
    values : mapping
        The likelihood's hyperparameters (``noise``, ``nu``, ``dispersion``, ``shape``).
    data : mapping
        Per-cell data (``exposure``, ``trials``, ``noise_sd``), numbers or arrays like ``y``.

    Examples
    --------
    >>> t = pointwise("poisson", np.log([2.0, 4.0]), np.array([3.0, 4.0]), {}, {})
    >>> t.d1.tolist(), t.d2.tolist()  # y − μ, −μ
    ([1.0, 0.0], [-2.0, -4.0])
    """
    if name not in _TERMS:
        raise ValueError(f"no pointwise terms for likelihood {name!r}; known: {sorted(_TERMS)}")
    f, y = np.asarray(f, dtype=float), np.asarray(y, dtype=float)
    return _TERMS[name](f, y, values, data)


def fill_unobserved(y: np.ndarray, data: Mapping[str, Any], observed: np.ndarray) -> tuple[np.ndarray, dict]:
    """``y`` and the per-cell ``data`` with the first observed cell's values at every unobserved cell.

    The pointwise terms are computed on the whole grid and masked afterwards; a value the
    likelihood accepts (an observed one) keeps them finite, without warnings, at cells that
    leave the likelihood. Scalar data are broadcast to ``y``'s shape.

    Examples
    --------
    >>> y, data = fill_unobserved(np.array([np.nan, 2.0, 5.0]), {"exposure": 3.0}, np.array([False, True, True]))
    >>> y.tolist(), data["exposure"].tolist()
    ([2.0, 2.0, 5.0], [3.0, 3.0, 3.0])
    """
    observed = np.asarray(observed, dtype=bool)
    first = int(np.flatnonzero(observed)[0])

    def filled(a):
        a = np.broadcast_to(np.asarray(a, dtype=float), observed.shape)
        return np.where(observed, a, a.flat[first])

    return filled(y), {k: filled(v) for k, v in data.items()}
