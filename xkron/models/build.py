"""PyMC model building for Kronecker GPs: MarginalKron- and LatentKron-style graphs.

Input: numeric arrays and a :class:`ModelSpec`; output: a :class:`pymc.Model`. The marginal
model's observed variable has the exact Kronecker marginal likelihood
(:class:`xkron.models.ops.KronMarginalLogp`); the latent model whitens the field (Saatçi 2011,
Alg. 14) and observes it through any :mod:`xkron.spec.likelihoods` likelihood. Nothing here knows
of xarray.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from xkron.models.centred import centred_latent_field
from xkron.models.laplace_op import kron_laplace_logp
from xkron.models.ops import kron_marginal_logp, kron_observed_logp
from xkron.spec.modelspec import JITTER, ModelSpec, factor_params
from xkron.spec.pointwise import fill_unobserved
from xkron.spec.prior_types import is_prior

__all__ = [
    "build_centred_model",
    "build_laplace_model",
    "build_latent_model",
    "build_marginal_model",
    "build_model",
    "centred_shift",
    "kron_mv",
]


def _variable(name: str, spec):
    if is_prior(spec):
        return spec.create_variable(name)
    return pt.as_tensor_variable(np.float64(spec))


def build_marginal_model(y: np.ndarray, spec: ModelSpec, jitter: float = 0.0) -> pm.Model:
    """PyMC model of ``y = mean + f + ε``, ``f ~ GP(0, η² ⊗k_i)``, ``ε ~ N(0, σ²)``.

    Parameters
    ----------
    y : ndarray
        Data tensor, one axis per grid dim in ``spec.dims`` order, all finite. It is
        reshaped to one axis per factor.
    spec : ModelSpec
        Factors and priors.
    jitter : float
        Added to the diagonal of each factor: :data:`JITTER` gives the covariance of the latent
        model, ``η² ⊗(K_i + JITTER·I)``, whose marginal the collapsed sampler needs
        (:mod:`xkron.inference.collapsed`).

    Returns
    -------
    pymc.Model
        Free variables are the hyperparameters with priors; ``y`` is observed with the
        exact Kronecker log-likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.spec.kernels import ExpQuad
    >>> from pymc_extras.prior import Prior
    >>> from xkron.spec.grid import Factor
    >>> f1 = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),))
    >>> f2 = Factor(("b",), ExpQuad(), (np.linspace(0, 1, 3),))
    >>> spec = ModelSpec((f1, f2), {"ls_a": 0.5, "ls_b": 0.5, "amplitude": Prior("HalfNormal"),
    ...                             "noise": 0.1, "mean": 0.0})
    >>> model = build_marginal_model(np.zeros((4, 3)), spec)
    >>> [v.name for v in model.free_RVs]
    ['amplitude']
    """
    shape = [f.size for f in spec.factors]
    y = np.asarray(y, dtype=float).reshape(shape)
    observed = np.isfinite(y)
    with pm.Model() as model:
        values = {name: _variable(name, p) for name, p in spec.priors.items()}
        factors = [f.covariance(factor_params(f, values), xp=pt) for f in spec.factors]
        if jitter:
            factors = [K + jitter * pt.eye(f.size) for K, f in zip(factors, spec.factors, strict=True)]
        eta, sigma = values["amplitude"], values["noise"]

        if spec.own_noise_axis() is not None and spec.solver.name != "dense":
            logp = _whitened_logp(spec, observed)
        elif spec.solver.name == "kronecker":
            known = spec.equal_noise_var()  # equal known noise (if any) simply adds to σ²

            def logp(value, eta2, sigma2, mean, *factors):
                return kron_marginal_logp(value, factors, eta2, sigma2 + known, mean)
        else:
            mask, known_grid = observed.astype(float), np.broadcast_to(spec.known_noise_var(), y.shape).astype(float)
            axis = spec.own_noise_axis()  # each label of a Coregion dim its own noise variance, fitted

            def logp(value, eta2, sigma2, mean, *args):
                factors, own = (args[:-1], args[-1]) if axis is not None else (args, None)
                known = known_grid if own is None else known_grid + own.reshape([-1 if k == axis else 1 for k in
                                                                                 range(len(factors))])  # fmt: skip
                return kron_observed_logp(value, mask, known, factors, eta2, sigma2, mean, solver=spec.solver,
                                          noise_gradient=own is not None)  # fmt: skip

        n = len(factors)
        own = [] if spec.own_noise_axis() is None else [own_noise(spec, values)]
        signature = "(),(),()," + ",".join(f"(n{i},n{i})" for i in range(n)) + ",(v)" * len(own)
        signature += "->(" + ",".join(f"n{i}" for i in range(n)) + ")"
        pm.CustomDist(
            "y",
            eta**2,
            sigma**2,
            values["mean"],
            *factors,
            *own,
            logp=logp,
            signature=signature,
            observed=np.where(observed, y, 0.0),  # unobserved cells leave the likelihood (mask above)
        )
    return model


def _whitened_logp(spec: ModelSpec, observed: np.ndarray):
    """The log-likelihood with a noise sd per label of one factor, whitened to unit noise: any solver.

    With ``τ_v² = σ_v² + σ² + known`` the noise variance of label ``v`` of the ``Coregion(noise=True)``
    factor ``B``, ``S = diag(τ)`` along its axis, the covariance ``η² B ⊗ K + S² ⊗ I`` is
    ``S (η² S⁻¹BS⁻¹ ⊗ K + I) S``: a Kronecker model with unit noise in the whitened data
    ``(y − μ)/τ``, and ``log p(y) = log p̃((y − μ)/τ) − Σ_v n_v log τ_v`` (``n_v`` the label's observed
    cells). So the exact Kronecker solver (complete grids) and the iterative one (gappy grids, equal
    noise: the Schur complement and its preconditioners) both fit it; the data depend on ``τ``, so the
    Op returns the data's gradient ``−α`` as well.
    """
    axis, n = spec.own_noise_axis(), len(spec.factors)
    along = [-1 if k == axis else 1 for k in range(n)]
    counts = observed.sum(axis=tuple(k for k in range(n) if k != axis)).astype(float)
    known, mask = spec.equal_noise_var(), observed.astype(float)

    def logp(value, eta2, sigma2, mean, *args):
        factors, own = list(args[:-1]), args[-1]
        tau = pt.sqrt(own + sigma2 + known)
        factors[axis] = factors[axis] / pt.outer(tau, tau)
        white = (value - mean) / tau.reshape(along)
        if spec.solver.name == "kronecker":
            ll = kron_marginal_logp(white, factors, eta2, 1.0, 0.0, data_gradient=True)
        else:
            ll = kron_observed_logp(white, mask, np.zeros(observed.shape), factors, eta2, 1.0, 0.0,
                                    solver=spec.solver, data_gradient=True)  # fmt: skip
        return ll - pt.sum(counts * pt.log(tau))

    return logp


def own_noise(spec: ModelSpec, values):
    """The noise variances of the labels of a ``Coregion(noise=True)`` factor, as one PyTensor vector."""
    factor = spec.factors[spec.own_noise_axis()]
    return factor.kernel.noise_variances(factor_params(factor, values), xp=pt)


def kron_mv(matrices, tensor):
    """``(M_1 ⊗ ... ⊗ M_D) vec(tensor)`` in PyTensor, by mode products (never the Kronecker matrix)."""
    for axis, M in enumerate(matrices):
        tensor = pt.moveaxis(pt.tensordot(M, tensor, axes=[[1], [axis]]), 0, axis)
    return tensor


def build_latent_model(y: np.ndarray, spec: ModelSpec) -> pm.Model:
    """PyMC model of ``y ~ p(y | g⁻¹(f))`` with the whitened latent field of Saatçi (2011), Alg. 14.

    ``f = mean + η (L_1 ⊗ ... ⊗ L_D) v``, ``v ~ N(0, I)``, ``L_i = chol(K_i + JITTER·I)``,
    applied by mode products: no N×N matrix or Cholesky is formed. The free variable ``v`` has
    the grid's shape (one axis per factor). NaN cells of ``y`` are unobserved: they are left
    out of the likelihood, which marginalises them exactly.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.spec.kernels import ExpQuad
    >>> from xkron.spec.likelihoods import Poisson
    >>> from xkron.spec.grid import Factor
    >>> f1 = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),))
    >>> f2 = Factor(("b",), ExpQuad(), (np.linspace(0, 1, 3),))
    >>> spec = ModelSpec((f1, f2), {"ls_a": 0.5, "ls_b": 0.5, "amplitude": 1.0, "mean": 0.0},
    ...                  likelihood=Poisson(), latent=True)
    >>> model = build_latent_model(np.ones((4, 3)), spec)
    >>> [(v.name, model.initial_point()[v.name].shape) for v in model.free_RVs]
    [('v', (4, 3))]
    """
    shape = [f.size for f in spec.factors]
    with pm.Model() as model:
        values = {name: _variable(name, p) for name, p in spec.priors.items()}
        chols = [pt.linalg.cholesky(K) for K in _jittered(spec, values)]
        v = pm.Normal("v", 0.0, 1.0, shape=shape)
        _observe(y, spec, values, values["mean"] + values["amplitude"] * kron_mv(chols, v))
    return model


def build_centred_model(y: np.ndarray, spec: ModelSpec, curvature: float) -> pm.Model:
    """The latent model of :func:`build_latent_model` with the field partially centred per eigenmode.

    ``f = mean + η S u`` with ``u ~ N(0, I + sM)``, ``M = ⊗(K_i + JITTER·I)``, ``s = η² w̄``
    (``w̄ = curvature``, the likelihood's typical ``−∂² log p/∂f²`` per cell) and
    ``S = √(M (I + sM)⁻¹)`` (:mod:`xkron.linalg.centring`): the same prior of ``f``, so the same
    posterior, in coordinates where NUTS needs far fewer gradients (``u`` given the hyperparameters
    is close to ``N(·, I)`` when the curvature is near ``w̄``). The free field is ``u`` (a flat
    variable with its prior as the potential ``"u_prior"``); the whitened field of
    :func:`build_latent_model` is ``v = (⊗L_i)⁻¹ S u`` (:func:`xkron.linalg.centring.whitened_from_centred`),
    so draws of ``u`` map to draws of the whitened model's posterior. With a free mean ``u`` is
    sheared by :func:`centred_shift` (``S u`` becomes ``S(u − c S1)``, Jacobian 1).

    Examples
    --------
    Yes/no events on one time axis, the amplitude free (``w̄ = p(1 − p) = 0.25`` at ``p = ½``):

    >>> from pymc_extras.prior import Prior
    >>> from xkron.spec.grid import Factor
    >>> from xkron.spec.kernels import Matern32
    >>> from xkron.spec.likelihoods import Bernoulli
    >>> time = Factor(("time",), Matern32(), (np.arange(6.0),))
    >>> spec = ModelSpec((time,), {"ls_time": 2.0, "amplitude": Prior("HalfNormal"), "mean": 0.0},
    ...                  likelihood=Bernoulli(), latent=True)
    >>> model = build_centred_model(np.array([0, 1, 1, np.nan, 0, 1]), spec, curvature=0.25)
    >>> [v.name for v in model.free_RVs], [p.name for p in model.potentials]
    (['amplitude', 'u'], ['u_prior'])
    """
    shape = [f.size for f in spec.factors]
    with pm.Model() as model:
        values = {name: _variable(name, p) for name, p in spec.priors.items()}
        factors = _jittered(spec, values)
        u = pm.Flat("u", shape=shape)
        s = values["amplitude"] ** 2 * float(curvature)
        g, q = centred_latent_field(factors, u, s, centred_shift(spec, values, curvature))
        pm.Potential("u_prior", -q - 0.5 * np.prod(shape) * np.log(2 * np.pi))
        _observe(y, spec, values, values["mean"] + values["amplitude"] * g)
    return model


def centred_shift(spec: ModelSpec, values, curvature: float):
    """The shift ``c = μ η w̄`` of :func:`build_centred_model`'s field where the mean is free, else 0.

    ``values`` may be numbers or the model's variables. With ``ũ = u − c S1``, ``f = μ (I + sM)⁻¹ 1
    + η S u``: in the modes the data pin down (``sλ ≫ 1``) the mean leaves ``f``, so ``u`` does not
    have to move with ``μ`` (without it, ``μ`` and the field's constant part trade off along a ridge
    that NUTS's diagonal metric cannot follow).
    """
    if "mean" not in spec.free_names():
        return 0.0
    return values["mean"] * values["amplitude"] * float(curvature)


def _jittered(spec: ModelSpec, values) -> list:
    """Each factor's symbolic ``K_i + JITTER·I``."""
    return [f.covariance(factor_params(f, values), xp=pt) + JITTER * pt.eye(f.size) for f in spec.factors]


def _observe(y: np.ndarray, spec: ModelSpec, values, latent_field) -> None:
    """Observe ``y`` through the likelihood at the latent field (in the open model); NaN cells leave it."""
    shape = [f.size for f in spec.factors]
    observed = np.asarray(y, dtype=float).reshape(shape)
    data = spec.cell_data()
    seen = np.isfinite(observed)
    if not seen.all():
        # Unobserved cells simply leave the likelihood (exact); the field still spans the grid.
        index = np.flatnonzero(seen)
        latent_field = latent_field.flatten()[index]
        observed = observed.ravel()[index]
        data = {k: (d.ravel()[index] if isinstance(d, np.ndarray) else d) for k, d in data.items()}
    spec.likelihood.observe(latent_field, values, data, observed)


def build_laplace_model(y: np.ndarray, spec: ModelSpec) -> pm.Model:
    """PyMC model of the hyperparameters of a latent model, the field integrated out by Laplace.

    The log marginal ``log q(y | θ)`` of :class:`xkron.models.laplace_op.KronLaplaceLogp` enters
    as the potential ``"log_marginal"``, so the model's log density is the Laplace log posterior
    of ``θ``: xkron's MAP (``fit(method="laplace")``), ``pm.find_MAP`` and NUTS over ``θ`` run on it
    as on any PyMC model. NaN cells of ``y`` are unobserved (their ``W`` is 0).

    Examples
    --------
    >>> from xkron.spec.kernels import ExpQuad
    >>> from xkron.spec.likelihoods import Poisson
    >>> from xkron.spec.grid import Factor
    >>> from pymc_extras.prior import Prior
    >>> f1 = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),))
    >>> f2 = Factor(("b",), ExpQuad(), (np.linspace(0, 1, 3),))
    >>> spec = ModelSpec((f1, f2), {"ls_a": 0.5, "ls_b": 0.5, "amplitude": Prior("HalfNormal"), "mean": 0.0},
    ...                  likelihood=Poisson(), latent=True)
    >>> model = build_laplace_model(np.ones((4, 3)), spec)
    >>> [v.name for v in model.free_RVs], [p.name for p in model.potentials]
    (['amplitude'], ['log_marginal'])
    """
    shape = [f.size for f in spec.factors]
    y = np.asarray(y, dtype=float).reshape(shape)
    observed = np.isfinite(y)
    filled, data = fill_unobserved(y, spec.cell_data(), observed)
    with pm.Model() as model:
        values = {name: _variable(name, p) for name, p in spec.priors.items()}
        factors = [f.covariance(factor_params(f, values), xp=pt) for f in spec.factors]
        params = {name: values[name] for name in spec.likelihood.params}
        logq = kron_laplace_logp(
            spec.likelihood.name, filled, observed.astype(float), factors, values["amplitude"] ** 2,
            values["mean"], data, params,
        )  # fmt: skip
        pm.Potential("log_marginal", logq)
    return model


def build_model(y: np.ndarray, spec: ModelSpec, laplace: bool = False) -> pm.Model:
    """The latent or the marginal model, as ``spec`` says; ``laplace``: a latent model's Laplace marginal."""
    if laplace:
        return build_laplace_model(y, spec)
    return build_latent_model(y, spec) if spec.latent else build_marginal_model(y, spec)
