"""Kernel algebra inside a factor and the trend kernels, against PyMC's ``pm.gp.cov`` and written-out formulas.

References: PyMC's own covariance functions and their ``+``/``*`` (same parameterisation, to
1e-12), the spectral mixture written out from Wilson & Adams (2013, eq. 12), and numpy's
symmetric eigensolver for positive semi-definiteness on random points with repeats.
"""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymc_extras.prior import Prior

import xkron
from xkron.spec.grid import Factor
from xkron.spec.kernel_base import Scaled, Sum
from xkron.spec.kernel_registry import kernel_from_dict, parse_kernel_expression
from xkron.spec.spectral_mixture import SpectralMixture, Wave

RNG = np.random.default_rng(11)
X = np.sort(RNG.uniform(-2.0, 3.0, 9))
X2 = np.column_stack([RNG.uniform(-1, 1, 7), RNG.uniform(0, 2, 7)])


def ours(kernel, params, left, right=None) -> np.ndarray:
    left = [left[:, k] for k in range(left.shape[1])] if left.ndim == 2 else [left]
    right = left if right is None else ([right[:, k] for k in range(right.shape[1])] if right.ndim == 2 else [right])
    return np.asarray(kernel.matrix(left, right, params), dtype=float)


# --------------------------------------------------------------------------- against pm.gp.cov


def test_linear_and_polynomial_equal_pymc():
    c, d, offset = 0.4, 3, 1.7
    np.testing.assert_allclose(
        ours(xkron.Linear(), {"c": [c]}, X), pm.gp.cov.Linear(1, c=c)(X[:, None]).eval(), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        ours(xkron.Polynomial(d=d), {"c": [c], "offset": offset}, X),
        pm.gp.cov.Polynomial(1, c=c, d=d, offset=offset)(X[:, None]).eval(),
        rtol=1e-12,
    )
    # Over two dims PyMC's Linear is the dot product of (x - c): one pivot per dim here.
    np.testing.assert_allclose(
        ours(xkron.Linear(), {"c": [0.3, 0.3]}, X2), pm.gp.cov.Linear(2, c=0.3)(X2).eval(), rtol=1e-12, atol=1e-12
    )


def test_white_noise_equals_pymc_on_the_training_inputs_and_correlates_equal_coordinates():
    sigma = 0.35
    np.testing.assert_allclose(
        ours(xkron.WhiteNoise(), {"sigma": sigma}, X), pm.gp.cov.WhiteNoise(sigma)(X[:, None]).eval(), rtol=1e-12
    )
    cross = ours(xkron.WhiteNoise(), {"sigma": sigma}, np.array([X[2], 99.0]), X)
    assert cross[0, 2] == sigma**2 and np.count_nonzero(cross) == 1  # a random effect per coordinate value


def test_sums_products_and_weights_equal_pymc():
    """``Periodic*Matern52 + 0.3*ExpQuad + c*Linear``, each part with its own hyperparameters."""
    kernel = xkron.Periodic(period=2.5) * xkron.Matern52() + 0.3 * xkron.ExpQuad() + xkron.Linear()
    params = {"ls_1": [0.8], "period": 2.5, "ls_2": [3.0], "scale_1": 0.3, "ls_3": [0.6], "scale_2": 0.07, "c": [0.5]}
    reference = (
        pm.gp.cov.Periodic(1, period=2.5, ls=0.8) * pm.gp.cov.Matern52(1, ls=3.0)
        + 0.3 * pm.gp.cov.ExpQuad(1, ls=0.6)
        + 0.07 * pm.gp.cov.Linear(1, c=0.5)
    )
    Xs = np.linspace(-3, 4, 5)
    # PyMC's Matern52 graph is off the exact formula by up to 2e-8 here (its |x|²+|x'|²−2x·x' distances and
    # sqrt(r² + 1e-12)); the formula written out in numpy is the 1e-12 reference.
    np.testing.assert_allclose(ours(kernel, params, X), reference(X[:, None]).eval(), rtol=0, atol=1e-7)
    cross = reference(X[:, None], Xs[:, None]).eval()
    np.testing.assert_allclose(ours(kernel, params, X, Xs), cross, rtol=0, atol=1e-7)
    d = np.subtract.outer(X, Xs)
    r = np.abs(d) / 3.0
    written = (
        np.exp(-0.5 * (np.sin(np.pi * np.abs(d) / 2.5) / 0.8) ** 2)
        * (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)
        + 0.3 * np.exp(-0.5 * (d / 0.6) ** 2)
        + 0.07 * np.multiply.outer(X - 0.5, Xs - 0.5)
    )  # fmt: skip
    np.testing.assert_allclose(ours(kernel, params, X, Xs), written, rtol=1e-12, atol=1e-15)


def test_two_dim_products_equal_pymc_products_over_active_dims():
    kernel = xkron.ExpQuad() * xkron.Matern32() + xkron.RatQuad()
    params = {"ls_1": [0.5, 1.5], "ls_2": [2.0, 0.7], "scale": 0.4, "ls_3": [1.1, 0.9], "alpha": 1.3}
    reference = pm.gp.cov.ExpQuad(2, ls=[0.5, 1.5]) * pm.gp.cov.Matern32(2, ls=[2.0, 0.7]) + 0.4 * pm.gp.cov.RatQuad(
        2, ls=[1.1, 0.9], alpha=1.3
    )
    # PyMC's Matern: see test_sums_products_and_weights_equal_pymc
    np.testing.assert_allclose(ours(kernel, params, X2), reference(X2).eval(), rtol=0, atol=1e-7)


def test_spectral_mixture_equals_wilson_and_adams():
    """``k(τ) = Σ_q w_q exp(−2π² τ² v_q) cos(2π τ μ_q)`` with ``ℓ = 1/(2π√v)``, ``period = 1/μ``, ``w_1 = 1``."""
    w, v, mu = np.array([1.0, 0.4, 0.1]), np.array([0.05, 0.2, 0.01]), np.array([0.5, 1.3, 0.05])
    tau = np.subtract.outer(X, X)
    expected = sum(w[q] * np.exp(-2 * np.pi**2 * tau**2 * v[q]) * np.cos(2 * np.pi * tau * mu[q]) for q in range(3))
    ls = 1 / (2 * np.pi * np.sqrt(v))
    params = {f"ls_{q + 1}": [ls[q]] for q in range(3)}
    params |= {f"period_{q + 1}": [1 / mu[q]] for q in range(3)}
    params |= {"scale_1": w[1], "scale_2": w[2]}
    np.testing.assert_allclose(ours(SpectralMixture(3), params, X), expected, rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------- positive semi-definite

LEAVES = [
    lambda: xkron.ExpQuad(), lambda: xkron.Matern12(), lambda: xkron.Matern52(), lambda: xkron.Periodic(),
    lambda: xkron.Cosine(), lambda: xkron.Linear(), lambda: xkron.Polynomial(d=2), lambda: xkron.WhiteNoise(),
    lambda: Wave(), lambda: xkron.RatQuad(),
]  # fmt: skip


@st.composite
def combinations(draw):
    """A random tree of sums, products and weights over random leaves, with random hyperparameter values."""

    def tree(depth):
        if depth == 0 or draw(st.booleans()):
            return LEAVES[draw(st.integers(0, len(LEAVES) - 1))]()
        left, right = tree(depth - 1), tree(depth - 1)
        op = draw(st.sampled_from(["+", "*", "c"]))
        return left + right if op == "+" else (left * right if op == "*" else draw(st.floats(0.01, 10)) * left)

    kernel = tree(3)
    ndim = draw(st.integers(1, 2))
    params = {}
    for key, spec in kernel.param_specs().items():
        if key in kernel.per_dim:
            params[key] = [draw(st.floats(-1.0, 1.0)) if kernel.param_label(key)[0] == "c" else
                           10 ** draw(st.floats(-1.0, 1.0)) for _ in range(ndim)]  # fmt: skip
        else:
            params[key] = spec if isinstance(spec, float) else 10 ** draw(st.floats(-1.0, 1.0))
    unique = np.round(np.array([[draw(st.floats(-2, 2)) for _ in range(ndim)] for _ in range(6)]), 1)
    points = np.concatenate([unique, unique[: draw(st.integers(0, 6))]])
    return kernel, params, points


@settings(max_examples=40, deadline=None)
@given(combinations())
def test_every_combination_is_psd_on_points_with_repeats(case):
    kernel, params, points = case
    K = ours(kernel, params, points)
    np.testing.assert_allclose(K, K.T, rtol=1e-13, atol=1e-13)
    scale = max(1.0, float(np.abs(K).max()))
    assert np.linalg.eigvalsh(K)[0] >= -1e-10 * len(K) * scale, kernel.name


# --------------------------------------------------------------------------- names, text, saved form


def test_parameter_names_number_repeated_kinds_only():
    factor = Factor(("time",), xkron.Periodic() * xkron.Matern52() + xkron.ExpQuad(), (np.arange(5.0),))
    assert factor.param_names() == {
        "ls_1": ["ls_time_1"], "period": "period_time", "ls_2": ["ls_time_2"], "scale": "scale_time",
        "ls_3": ["ls_time_3"],
    }  # fmt: skip
    joint = Factor(("lat", "lon"), SpectralMixture(2), (np.arange(3.0), np.arange(4.0)))
    assert joint.param_names()["period_2"] == ["period_lat_2", "period_lon_2"]
    assert joint.param_names()["scale"] == "scale_lat_lon"


def test_a_periodic_lengthscale_is_relative_to_the_period_and_its_prior_too():
    """Monthly times in days: the default prior of Periodic's ls no longer sits near 200 (a flat cycle)."""
    from xkron.spec.priors import data_priors, resolve_priors

    factor = Factor(("time",), xkron.Periodic() * xkron.Matern52(), (np.arange(48) * 30.4,))
    priors = resolve_priors([factor], "constant", None, data_priors(0.0, 1.0))
    np.testing.assert_allclose(float(priors["ls_time_1"].preliz.median()), 1.0, rtol=1e-12)
    assert float(priors["ls_time_2"].preliz.median()) > 100  # the envelope's, in days
    assert factor.kernel.relative_keys() == {"ls_1"}


def test_a_sum_weighs_every_part_but_its_stationary_reference():
    k = xkron.Linear() + xkron.Matern32() + xkron.WhiteNoise() + 0.5 * xkron.ExpQuad()
    assert [type(p).__name__ for p in k.parts] == ["Scaled", "Matern32", "WhiteNoise", "Scaled"]
    assert k.parts[3].scale == 0.5
    assert (xkron.ExpQuad() + xkron.Matern12()) + xkron.Cosine() == xkron.ExpQuad() + xkron.Matern12() + xkron.Cosine()


@pytest.mark.parametrize(
    "text",
    ["Periodic(period=365.25)*Matern52+ExpQuad", "matern32 + 0.5*linear(c=[2000.0])", "SpectralMixture(q=3)",
     "(ExpQuad + Matern12) * Periodic", "Polynomial(d=2, offset=1.0) + WhiteNoise(sigma=0.1)"],
)  # fmt: skip
def test_expressions_and_the_saved_form_round_trip(text):
    kernel = parse_kernel_expression(text)
    again = kernel_from_dict(json.loads(json.dumps(kernel.to_dict())))
    assert again == kernel and again.param_specs() == kernel.param_specs() and again.name == kernel.name


def test_priors_survive_the_saved_form():
    kernel = xkron.Periodic(period=Prior("Normal", mu=365.25, sigma=1)) * xkron.Matern52() + Prior(
        "HalfNormal", sigma=0.3
    ) * xkron.ExpQuad(ls=2.0)
    again = kernel_from_dict(json.loads(json.dumps(kernel.to_dict())))
    assert repr(again.param_specs()) == repr(kernel.param_specs())


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Matern33*ExpQuad", r"unknown kernel 'Matern33'.*did you mean 'Matern32'"),
        ("ExpQuad(lengthscale=2)", r"ExpQuad has no hyperparameter 'lengthscale'.*its hyperparameters: ls"),
        ("ExpQuad - Matern12", r"is not a kernel: write NAME"),
        ("ExpQuad(2)", r"give ExpQuad's hyperparameters by name"),
        ("Polynomial(d=0)", r"degree d=0 must be a fixed positive integer"),
        ("-1*ExpQuad", r"weight c=-1.0 in c \* ExpQuad must be a finite number > 0"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text, message):
    with pytest.raises((ValueError, TypeError), match=message):
        parse_kernel_expression(text)


def test_a_weight_must_weigh_a_kernel():
    with pytest.raises(TypeError, match="Scaled weighs a kernel"):
        Scaled("ExpQuad", 2.0)
    with pytest.raises(TypeError, match="a sum combines kernels"):
        Sum([xkron.ExpQuad(), 3])


# --------------------------------------------------------------------------- the model's graph


def test_the_model_graph_evaluates_the_same_combined_formula():
    factor = Factor(("x", "y"), (xkron.Periodic() * xkron.Matern52() + xkron.Linear()) * xkron.ExpQuad(),
                    (np.linspace(0, 2, 4), np.linspace(-1, 1, 3)))  # fmt: skip
    params = {"ls_1": [0.6, 1.3], "period": 0.9, "ls_2": [2.0, 1.0], "scale": 0.2, "c": [0.5, -0.2], "ls_3": [1.0, 3.0]}
    symbolic = {k: [pt.as_tensor(x) for x in v] if isinstance(v, list) else pt.as_tensor(v) for k, v in params.items()}
    graph = pt.as_tensor(factor.covariance(symbolic, xp=pt)).eval()
    np.testing.assert_allclose(graph, factor.covariance(params), rtol=1e-12, atol=1e-14)
    test = [np.array([0.1, 5.0]), np.array([0.0, 0.3])]
    np.testing.assert_allclose(
        factor.variance(params, test), [factor.kernel_matrix(params, [t[i : i + 1] for t in test],
                                                             [t[i : i + 1] for t in test])[0, 0] for i in range(2)],
        rtol=1e-13,
    )  # fmt: skip
