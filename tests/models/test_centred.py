"""Issue 14: the partially centred latent model is an exact reparameterisation of the whitened one.

``build_centred_model``'s log density at ``(θ, u)`` equals ``build_latent_model``'s at ``(θ, v)`` with
``v = whitened_from_centred(u)``, plus the change of variables' log-Jacobian (carried by the prior of ``u``).
So both models have one posterior; the compiled gradient of the centred one equals central
differences of its log density, with a Cosine factor (rank 2: repeated eigenvalues), missing cells,
a free mean (which shears ``u`` by ``μ η w̄ S1``, Jacobian 1) and a likelihood hyperparameter.
"""

from __future__ import annotations

import numpy as np
import pytest
from pymc_extras.prior import Prior

from xkron.linalg.centring import whitened_from_centred
from xkron.models.build import build_centred_model, build_latent_model
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, Matern52
from xkron.spec.likelihoods import NegativeBinomial
from xkron.spec.modelspec import JITTER, ModelSpec, factor_params

RNG = np.random.default_rng(14)
SHAPE = (7, 5)


def _spec():
    factors = (
        Factor(("a",), Matern52(), (np.linspace(0, 4, 7),)),
        Factor(("b",), Cosine(), (np.linspace(0, 2, 5),)),
    )
    priors = {
        "ls_a": Prior("Gamma", alpha=3, beta=2),
        "ls_b": Prior("Gamma", alpha=6, beta=2),
        "amplitude": Prior("HalfNormal", sigma=1.0),
        "mean": Prior("Normal", mu=0.5, sigma=1.0),
        "dispersion": Prior("LogNormal", mu=1.0, sigma=0.5),
    }
    return ModelSpec(factors, priors, likelihood=NegativeBinomial(), latent=True)


def _data():
    y = RNG.poisson(2.0, SHAPE).astype(float)
    y[RNG.random(SHAPE) < 0.2] = np.nan
    return y


Y = _data()


def _points(model, n, seed):
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    for _ in range(n):
        yield {k: v + 0.4 * rng.standard_normal(np.shape(v)) for k, v in start.items()}


@pytest.mark.parametrize("curvature", [0.3, 2.0])
def test_log_density_is_the_whitened_models_times_the_jacobian(curvature):
    """``log p_c(θ, u) = log p_w(θ, v(θ, u)) + log|∂v/∂u|``, ``log|∂v/∂u| = −½ Σ log(1 + η² w̄ λ)`` over
    the eigenvalues ``λ`` of ``⊗(K_i + JITTER·I)`` (dense here): the change of variables is exact, so
    the two models have one posterior."""
    spec = _spec()
    centred, whitened = build_centred_model(Y, spec, curvature), build_latent_model(Y, spec)
    logp_c, logp_w = centred.compile_logp(), whitened.compile_logp()
    outputs = centred.replace_rvs_by_values([centred[n] for n in ("ls_a", "ls_b", "amplitude", "mean")])
    constrained = centred.compile_fn(outputs, inputs=centred.value_vars, on_unused_input="ignore")
    for point in _points(centred, 4, seed=1):
        ls_a, ls_b, amplitude, mean = constrained(point)
        values = {"ls_a": ls_a, "ls_b": ls_b}
        factors = [f.covariance(factor_params(f, values)) + JITTER * np.eye(f.size) for f in spec.factors]
        s = amplitude**2 * curvature
        log_jacobian = -0.5 * np.sum(np.log1p(s * np.linalg.eigvalsh(np.kron(*factors))))
        v = whitened_from_centred(point["u"], factors, s, shift=mean * amplitude * curvature)
        other = {k: val for k, val in point.items() if k != "u"} | {"v": v}
        assert logp_c(point) == pytest.approx(logp_w(other) + log_jacobian, rel=1e-10, abs=1e-8)


def test_gradient_equals_central_differences():
    """Directional derivatives along random directions of every coordinate (five-point stencil)."""
    model = build_centred_model(Y, _spec(), curvature=1.5)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [v.name for v in model.value_vars]
    rng = np.random.default_rng(5)
    for point in _points(model, 3, seed=2):
        grad = dlogp(point)
        sizes = [np.size(point[n]) for n in names]
        direction = rng.standard_normal(sum(sizes))
        parts = np.split(direction, np.cumsum(sizes)[:-1])

        def value(t, point=point, parts=parts):
            return logp({n: point[n] + t * p.reshape(np.shape(point[n])) for n, p in zip(names, parts, strict=True)})

        h = 1e-4
        expected = (8 * (value(h) - value(-h)) - (value(2 * h) - value(-2 * h))) / (12 * h)
        assert grad @ direction == pytest.approx(expected, rel=1e-6)


def test_the_ops_compile_into_numba_graphs_and_agree_with_python():
    """The Ops run as compiled Numba code inside the graph (no object-mode fallback, which warns), with the
    same log density and gradient as their Python ``perform`` (PyTensor's Python linker)."""
    import warnings

    from pytensor.compile.mode import get_mode

    model = build_centred_model(Y, _spec(), curvature=0.9)
    point = next(_points(model, 1, seed=4))
    values = []
    for mode in ("NUMBA", "FAST_COMPILE"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn = model.logp_dlogp_function(ravel_inputs=True, mode=get_mode(mode))
            fn.set_extra_values({})
            values.append(fn(np.concatenate([np.ravel(point[v.name]) for v in model.continuous_value_vars])))
        assert not [w for w in caught if "object mode" in str(w.message)], mode
    np.testing.assert_allclose(values[0][0], values[1][0], rtol=1e-12)
    np.testing.assert_allclose(values[0][1], values[1][1], rtol=1e-10, atol=1e-10)
