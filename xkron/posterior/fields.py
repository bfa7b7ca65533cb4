"""Exact joint posterior sample fields on grids, by Matheron's rule with Kronecker prior draws.

For each factor take the inputs ``U_i = [X_i; X*_i]`` (training, then test; repeats are
fine) and a square root ``R_i`` of ``K_i(U_i)`` from its eigendecomposition (``Q√λ``: exact
for rank-deficient factors too). A prior draw on the U-grid is ``f = η z ×_1 R_1 ... ×_D R_D``,
``z ~ N(0, I)``; its training and test blocks use the rows of ``R_i`` for ``X_i`` and ``X*_i``.
Matheron's rule then moves the prior draw to the posterior:

- Gaussian data (:class:`xkron.posterior.conditional.KronPosterior`):
  ``f* = μ + f*_prior + η² K*(K + σ²I)⁻¹ (y − μ − f_prior − ε)``, ``ε ~ N(0, σ²I)``;
  the solve is the eigenbasis solve that gives the posterior mean.
- Gaussian data on a subset of cells or with per-cell noise (:class:`xkron.posterior.observed.ObservedPosterior`):
  the same, with ``ε`` of the per-cell noise and the solve by its dense or iterative system.
- A latent draw ``v`` (:class:`xkron.posterior.conditional.LatentPosterior`), whose training block has prior
  covariance ``η² ⊗(K_i + jitter·I)``: ``f* = μ + f*_prior + (η v − f_prior ×_i L_i⁻¹) ×_i B_i``
  with ``B_i = K*_i L_iᵀ⁻¹``.

:func:`whitened_draws` draws the whitened field ``v`` itself given ``θ`` and complete Gaussian
data, for the collapsed sampler of :mod:`xkron.inference.collapsed`.

No N×N or N×M matrix is formed: the cost is a few mode products on the U-grid per field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import scipy.linalg

from xkron.linalg.kronecker import KronEigen, mode_product, outer, symmetric_eigh
from xkron.posterior.anchored import anchored_roots
from xkron.posterior.conditional import KronPosterior, TestInputs, jittered_covariance
from xkron.settings import SAMPLE_BATCH_ELEMENTS, SAMPLE_EXACT_UNION
from xkron.spec.grid import Factor, distinct_inputs, union_size
from xkron.spec.modelspec import JITTER, factor_params

__all__ = ["SAMPLE_BATCH_ELEMENTS", "apply_factors", "posterior_fields", "union_roots", "whitened_draws"]


def union_roots(factor: Factor, params, test: Sequence[np.ndarray], jitter: float):
    """Rows of a square root of ``k(U, U)`` for the training and for the test inputs.

    Without jitter an input that is both a training and a test input (sampling on the training
    grid, or on a grid that shares points with it) is decomposed once: the root is that of the
    distinct inputs, its rows repeated, which gives the same ``k(U, U)`` at a fraction of the cost.
    """
    train = factor.inputs()
    n = factor.size
    if jitter == 0.0:
        unique, inverse = distinct_inputs(train, test)
        columns = [unique[:, k] for k in range(unique.shape[1])]
        lam, Q, _ = symmetric_eigh(factor.kernel_matrix(params, columns, columns))
        R = (Q * np.sqrt(np.clip(lam, 0.0, None)))[np.ravel(inverse)]
        return R[:n], R[n:]
    union = [np.concatenate([np.asarray(a, float), np.asarray(b, float)]) for a, b in zip(train, test, strict=True)]
    K = factor.kernel_matrix(params, union, union)
    K[np.arange(n), np.arange(n)] += jitter
    lam, Q, _ = symmetric_eigh(K)
    R = Q * np.sqrt(np.clip(lam, 0.0, None))
    return R[:n], R[n:]


def _roots(factors, values, tests, latent: bool, report: dict | None):
    """Per factor ``(train rows, test rows, residual sd or None)``: exact union roots, the largest union anchored.

    Gaussian data only: the latent update needs the exact (jittered) root at the training inputs.
    """
    unions = [union_size(f.inputs(), t) for f, t in zip(factors, tests, strict=True)]
    big = int(np.argmax(unions))
    roots = []
    for i, (f, t) in enumerate(zip(factors, tests, strict=True)):
        params = factor_params(f, values)
        if latent or i != big or unions[i] <= SAMPLE_EXACT_UNION:
            roots.append((*union_roots(f, params, t, JITTER if latent else 0.0), None))
            continue
        train, new, residual_sd, share = anchored_roots(f, params, t, SAMPLE_EXACT_UNION)
        if report is not None:
            report[f.name] = (train.shape[1], max(share, report.get(f.name, (0, 0.0))[1]))
        roots.append((train, new, residual_sd))
    return roots


def _residual_draw(roots, size: int, rng) -> np.ndarray | float:
    """The anchored factor's independent residuals, times the other factors' test roots (0 if none is anchored)."""
    for i, (_, _, d) in enumerate(roots):
        if d is not None:
            shape = [len(d) if k == i else r.shape[1] for k, (_, r, _) in enumerate(roots)]
            xi = rng.standard_normal((size, *shape)) * d.reshape([-1 if k == i else 1 for k in range(len(roots))])
            for axis, (_, r, _) in enumerate(roots, start=1):
                if axis - 1 != i:
                    xi = mode_product(xi, r, axis)
            return xi
    return 0.0


def apply_factors(tensor: np.ndarray, matrices: Sequence[np.ndarray]) -> np.ndarray:
    """Mode products along axes 1..D (axis 0 holds the sample fields)."""
    for axis, M in enumerate(matrices, start=1):
        tensor = mode_product(tensor, M, axis)
    return tensor


def _solve_lower(tensor: np.ndarray, chols: Sequence[np.ndarray]) -> np.ndarray:
    """``tensor ×_i L_i⁻¹`` along axes 1..D."""
    for axis, L in enumerate(chols, start=1):
        moved = np.moveaxis(tensor, axis, 0)
        flat = scipy.linalg.solve_triangular(L, moved.reshape(L.shape[0], -1), lower=True, check_finite=False)
        tensor = np.moveaxis(flat.reshape(moved.shape), 0, axis)
    return tensor


def posterior_fields(
    posterior,
    tests: Sequence[Sequence[np.ndarray]],
    n: int,
    rng: np.random.Generator,
    progress: Callable[[int], None] | None = None,
    report: dict | None = None,
) -> np.ndarray:
    """``n`` exact joint posterior draws of ``f`` on a test grid, at one posterior draw's values.

    Parameters
    ----------
    posterior : KronPosterior or LatentPosterior
        The GP at fixed hyperparameters (and, for a latent model, a fixed whitened draw).
    tests : sequence
        Per factor, the test inputs as one flat array per dim of the factor (the Cartesian
        product of its dims' new coordinates, :func:`xkron.spec.grid.cartesian`).
    n : int
        Number of fields.
    rng : numpy.random.Generator
    progress : callable, optional
        Called with the number of fields done after each batch (numpy data only).
    report : dict, optional
        Filled with ``{factor name: (anchors, largest residual share)}`` for the factor whose prior draw was
        anchored (the largest union of inputs, above :data:`~xkron.settings.SAMPLE_EXACT_UNION`,
        Gaussian data; :mod:`xkron.posterior.anchored`): the marginals stay exact.

    Returns
    -------
    ndarray
        Shape ``(n, m_1, ..., m_D)``, ``m_i`` the number of test inputs of factor ``i``.

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad
    >>> x = np.linspace(0, 1, 6)
    >>> f = (Factor(("a",), ExpQuad(), (x,)), Factor(("b",), ExpQuad(), (x,)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.3, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> post = KronPosterior.condition(np.zeros((6, 6)), f, values)
    >>> posterior_fields(post, [[np.array([0.5, 3.0])], [np.array([0.2])]], 4, np.random.default_rng(0)).shape
    (4, 2, 1)
    """
    if posterior.kind == "whitened":  # a noise sd per label: draws of the whitened GP, scaled back
        inner = posterior_fields(posterior.inner, tests, n, rng, progress, report)
        return posterior.scale_fields(inner, tests)
    latent = posterior.kind == "latent"
    values = posterior.values
    if getattr(posterior, "lazy_data", None) is not None:
        return _lazy_fields(posterior, tests, n, rng)
    roots = _roots(posterior.factors, values, tests, latent, report)
    labels = [TestInputs("", tuple(np.asarray(c, float) for c in t)) for t in tests]
    observed = posterior.kind == "observed"
    if latent or observed:
        cross = posterior.cross(labels)
    else:
        cross = [
            f.covariance(factor_params(f, values), test=t.values) @ Q
            for f, t, Q in zip(posterior.factors, labels, posterior.eigen.vectors, strict=True)
        ]
    columns = int(np.prod([r.shape[1] for r, _, _ in roots]))
    batch = max(1, SAMPLE_BATCH_ELEMENTS // columns)
    fields = []
    for start in range(0, n, batch):
        size = min(batch, n - start)
        z = rng.standard_normal((size, *(r.shape[1] for r, _, _ in roots)))
        prior_train = values["amplitude"] * apply_factors(z, [r for r, _, _ in roots])
        prior_test = values["amplitude"] * (
            apply_factors(z, [r for _, r, _ in roots]) + _residual_draw(roots, size, rng)
        )
        if latent:
            w = values["amplitude"] * posterior.v - _solve_lower(prior_train, posterior.chols)
            fields.append(values["mean"] + prior_test + apply_factors(w, cross))
        elif observed:
            sd = np.sqrt(np.broadcast_to(posterior.noise_variance(), prior_train.shape[1:]))
            alpha = posterior.alpha - posterior.system.solve(prior_train + sd * rng.standard_normal(prior_train.shape))
            fields.append(values["mean"] + prior_test + values["amplitude"] ** 2 * apply_factors(alpha, cross))
        else:
            noise = values["noise"] * rng.standard_normal(prior_train.shape)
            rotated = prior_train + noise
            for axis in range(len(roots)):
                rotated = posterior.eigen.rotate(rotated, axis + 1, transpose=True, factor=axis)
            alpha = posterior.alpha_tilde - posterior.inv_diag * rotated
            fields.append(values["mean"] + prior_test + values["amplitude"] ** 2 * apply_factors(alpha, cross))
        if progress is not None:
            progress(start + size)
    return np.concatenate(fields)


def _lazy_fields(posterior: KronPosterior, tests, n: int, rng: np.random.Generator):
    """Sample fields from dask-backed data: the same rule, as a chunked dask graph."""
    from xkron.linalg.lazy import lazy_grid_samples

    values, y = posterior.values, posterior.lazy_data
    roots = [union_roots(f, factor_params(f, values), t, 0.0) for f, t in zip(posterior.factors, tests, strict=True)]
    cross = [f.covariance(factor_params(f, values), test=t) for f, t in zip(posterior.factors, tests, strict=True)]
    chunks = [y.chunks[i] if C.shape[0] == C.shape[1] else y.chunks[i][0] for i, C in enumerate(cross)]
    eta2, sigma2, seed = values["amplitude"] ** 2, values["noise"] ** 2, int(rng.integers(2**63))
    return lazy_grid_samples(y, posterior.eigen, roots, cross, eta2, sigma2, values["mean"], chunks, n, seed)


def whitened_draws(y: np.ndarray, factors: Sequence[Factor], values, noise_var: float, rng, n: int = 1) -> np.ndarray:
    """``n`` exact draws of the whitened field ``v`` given ``θ`` and complete Gaussian data.

    The latent Gaussian model ``y = μ + η (⊗L_i) v + ε`` with ``v ~ N(0, I)``,
    ``ε ~ N(0, s²I)`` and ``L_i = chol(K_i + JITTER·I)`` (:func:`xkron.models.build.build_latent_model`)
    gives, by Matheron's rule, ``v | θ, y = z + η (⊗L_iᵀ) C⁻¹ (y − μ − η (⊗L_i) z − ε)`` with
    fresh ``z ~ N(0, I)``, ``ε ~ N(0, s²I)`` and ``C = η² ⊗(K_i + JITTER·I) + s²I``, solved in
    its Kronecker eigenbasis. Cost: a few mode products and one ``eigh`` per factor.

    Parameters
    ----------
    y : ndarray
        Complete data, one axis per factor.
    factors : sequence of Factor
    values : mapping
        Hyperparameters by model name (``amplitude``, ``mean``, kernel parameters).
    noise_var : float
        ``s²``: the total noise variance (``σ²`` plus any equal known ``noise_sd²``).
    rng : numpy.random.Generator
    n : int
        Number of draws (axis 0 of the result).

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),)),)
    >>> v = whitened_draws(np.ones(4), f, {"ls_a": 0.5, "amplitude": 1.0, "mean": 0.0}, 0.01,
    ...                    np.random.default_rng(0), n=3)
    >>> v.shape
    (3, 4)
    """
    Ks = [jittered_covariance(factor, factor_params(factor, values)) for factor in factors]
    chols = [np.linalg.cholesky(K) for K in Ks]
    eigen = KronEigen.from_factors(Ks)
    eta, mean = values["amplitude"], values["mean"]
    y = np.asarray(y, dtype=float).reshape(eigen.shape)
    z = rng.standard_normal((n, *eigen.shape))
    resid = (y - mean)[None] - eta * apply_factors(z, chols) - np.sqrt(noise_var) * rng.standard_normal(z.shape)
    weight = 1.0 / (eta**2 * outer(eigen.values) + noise_var)
    alpha = np.empty_like(resid)
    for k in range(n):
        alpha[k] = eigen.from_eigenbasis(eigen.to_eigenbasis(resid[k]) * weight)
    return z + eta * apply_factors(alpha, [L.T for L in chols])
