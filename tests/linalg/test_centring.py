"""The partially centred field of xkron.linalg.centring against dense matrix functions and central differences."""

import numpy as np
import pytest

from xkron.linalg.centring import centred_field, centred_field_vjp, centred_from_field


def _factors(sizes, rng):
    """Symmetric positive definite factors; the second is rank 2 plus a nugget (many equal eigenvalues), like Cosine.

    The nugget (0.05) keeps the factor positive definite under the central differences' perturbations."""
    out = []
    for k, n in enumerate(sizes):
        x = np.linspace(0, 3, n)
        if k == 1:
            K = np.cos(x[:, None] - x[None]) + 0.05 * np.eye(n)
        else:
            K = np.exp(-0.5 * (x[:, None] - x[None]) ** 2 / (0.5 + k) ** 2) + 1e-6 * np.eye(n)
        out.append(K)
    return out


def _dense(factors, u, s, shift=0.0):
    M = factors[0]
    for K in factors[1:]:
        M = np.kron(M, K)
    lam, Q = np.linalg.eigh(M)
    S = Q @ np.diag(np.sqrt(lam / (1 + s * lam))) @ Q.T
    R = Q @ np.diag(1 / (1 + s * lam)) @ Q.T
    sheared = u.ravel() - shift * S @ np.ones(len(M))
    q = 0.5 * sheared @ R @ sheared + 0.5 * np.sum(np.log1p(s * lam))
    return (S @ sheared).reshape(u.shape), q


SIZES = [(7,), (6, 5), (4, 5, 3), (9, 8), (5, 11, 2)]
"""Factors from 8 points on (regular grids, so centrosymmetric) take the split eigendecomposition, odd and even."""


@pytest.mark.parametrize("shift", [0.0, 0.6])
@pytest.mark.parametrize("sizes", SIZES)
def test_value_equals_dense_matrix_functions(sizes, shift):
    rng = np.random.default_rng(len(sizes))
    factors = _factors(sizes, rng)
    u = rng.standard_normal(sizes)
    out = centred_field(factors, u, 1.7, shift)
    g, q = _dense(factors, u, 1.7, shift)
    np.testing.assert_allclose(out.g, g, rtol=1e-9, atol=1e-10)
    assert out.q == pytest.approx(q, rel=1e-11)


@pytest.mark.parametrize("shift", [0.0, 0.6])
@pytest.mark.parametrize("sizes", SIZES)
def test_vjp_equals_central_differences(sizes, shift):
    """Directional derivatives along random symmetric K perturbations, u, s and the shift; factor 2 has
    repeated eigenvalues."""
    rng = np.random.default_rng(10 + len(sizes))
    factors = _factors(sizes, rng)
    u, w, c, s = rng.standard_normal(sizes), rng.standard_normal(sizes), 0.7, 1.3

    def objective(fs, uu, ss, cc=shift):
        g, q = _dense(fs, uu, ss, cc)
        return float(np.sum(w * g) + c * q)

    out = centred_field(factors, u, s, shift)
    k_bars, u_bar, s_bar, shift_bar = centred_field_vjp(u, s, out.eigenvalues, out.vectors, w, c, shift)
    h = 1e-5

    def central(shift):  # five-point stencil: an O(h⁴) error, small next to the 1e-6 tolerance near small eigenvalues
        f = [objective(*shift(k * h)) for k in (-2, -1, 1, 2)]
        return (f[0] - 8 * f[1] + 8 * f[2] - f[3]) / (12 * h)

    for d, K in enumerate(factors):
        E = rng.standard_normal(K.shape)
        E = E + E.T
        expected = central(lambda t, d=d, E=E: ([F + t * E if k == d else F for k, F in enumerate(factors)], u, s))
        assert np.sum(k_bars[d] * E) == pytest.approx(expected, rel=1e-6, abs=1e-8)
        np.testing.assert_allclose(k_bars[d], k_bars[d].T)
    du = rng.standard_normal(sizes)
    assert np.sum(u_bar * du) == pytest.approx(central(lambda t: (factors, u + t * du, s)), rel=1e-7)
    assert s_bar == pytest.approx(central(lambda t: (factors, u, s + t)), rel=1e-7)
    assert shift_bar == pytest.approx(central(lambda t: (factors, u, s, shift + t)), rel=1e-7, abs=1e-9)


def test_start_maps_to_the_gaussian_smoother_of_the_field():
    """``η S u₀`` is the posterior mean of a GP observing the field with noise variance ``1/w``."""
    rng = np.random.default_rng(3)
    factors = _factors((6, 5), rng)
    field, eta, w = rng.standard_normal((6, 5)), 0.8, 2.5
    u0 = centred_from_field(field, factors, eta, eta**2 * w, w)
    M = np.kron(*factors)
    smooth = eta**2 * M @ np.linalg.solve(eta**2 * M + np.eye(30) / w, field.ravel())
    g = centred_field(factors, u0, eta**2 * w).g
    np.testing.assert_allclose(eta * g.ravel(), smooth, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("n", [8, 9, 30, 31])
@pytest.mark.parametrize("kind", ["smooth", "cosine", "general"])
def test_eigenpairs_of_centrosymmetric_and_general_factors(n, kind):
    """The factors' eigenpairs (split in two where centrosymmetric) diagonalise them, with LAPACK's eigenvalues."""
    x = np.linspace(-1.0, 2.0, n)
    if kind == "smooth":
        K = np.exp(-0.5 * (x[:, None] - x[None]) ** 2 / 0.7**2) + 1e-6 * np.eye(n)
    elif kind == "cosine":  # rank 2 plus jitter: n - 2 equal eigenvalues
        K = np.cos(2 * np.pi * (x[:, None] - x[None]) / 1.3) + 1e-6 * np.eye(n)
    else:
        B = np.random.default_rng(n).standard_normal((n, n))
        K = B @ B.T + np.eye(n)
    out = centred_field([K], np.zeros(n), 0.5)
    lam, Q = out.eigenvalues[0], out.vectors[0]
    np.testing.assert_allclose(np.sort(lam), np.linalg.eigvalsh(K), rtol=1e-10, atol=1e-13 * np.abs(K).max())
    np.testing.assert_allclose(Q.T @ Q, np.eye(n), atol=1e-12)
    np.testing.assert_allclose(K @ Q, Q * lam, atol=1e-12 * np.abs(K).max())
