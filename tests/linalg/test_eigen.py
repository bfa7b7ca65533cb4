"""The centrosymmetric split of ``eigh`` and the half-cost rotations it allows."""

import numpy as np
import pytest

from xkron.linalg.kronecker import KronEigen, is_centrosymmetric, marginal_loglik, rotate, symmetric_eigh


def _kernels(x):
    d = np.subtract.outer(x, x)
    return {
        "expquad": np.exp(-0.5 * d**2 / 0.3**2),
        "expquad_long": np.exp(-0.5 * d**2 / 30.0**2),  # numerically rank 2-3: clustered zeros
        "cosine": np.cos(2 * np.pi * d),  # rank 2: n − 2 repeated zero eigenvalues
        "matern12": np.exp(-np.abs(d) / 0.2),
    }


@pytest.mark.parametrize("n", [4, 5, 30, 31, 200, 201])
@pytest.mark.parametrize("kernel", ["expquad", "expquad_long", "cosine", "matern12"])
def test_split_eigh_reconstructs_and_matches_lapack(n, kernel):
    K = _kernels(np.linspace(-1.0, 2.0, n))[kernel]
    lam, Q, split = symmetric_eigh(K, split_min=4)
    assert split
    scale = np.abs(K).max()
    assert np.abs((Q * lam) @ Q.T - K).max() <= 1e-13 * n * scale
    assert np.abs(Q.T @ Q - np.eye(n)).max() <= 1e-13 * n
    reference = np.linalg.eigvalsh(K)
    assert np.abs(np.sort(lam) - reference).max() <= 1e-13 * n * scale


def test_irregular_coordinates_use_the_plain_eigh():
    x = np.sort(np.random.default_rng(0).uniform(0, 1, 40))
    K = _kernels(x)["expquad"]
    assert not is_centrosymmetric(K)
    lam, Q, split = symmetric_eigh(K)
    assert not split
    assert np.allclose((Q * lam) @ Q.T, K, atol=1e-12)


def test_rounding_level_asymmetry_still_splits_but_real_asymmetry_does_not():
    x = np.linspace(0, 1, 50)
    K = _kernels(x)["expquad"]
    assert is_centrosymmetric(K * (1 + 1e-16 * np.random.default_rng(1).normal(size=K.shape)))
    bumped = K.copy()
    bumped[0, 1] = bumped[1, 0] = K[0, 1] + 1e-9
    assert not is_centrosymmetric(bumped)


@pytest.mark.parametrize("n", [6, 7])
@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_split_rotation_equals_the_dense_mode_product(n, axis, transpose, layout):
    rng = np.random.default_rng(2)
    _, Q, _ = symmetric_eigh(_kernels(np.linspace(0, 1, n))["matern12"], split_min=4)
    shape = [3, 4, 5]
    shape[axis] = n
    T = rng.normal(size=[2 * s for s in shape] if layout == "strided" else shape)
    T = {"C": T, "F": np.asfortranarray(T), "strided": T[::2, ::2, ::2]}[layout]
    M = Q.T if transpose else Q
    expected = np.moveaxis(np.tensordot(M, T, axes=([1], [axis])), 0, axis)
    np.testing.assert_allclose(rotate(T, Q, axis, transpose, split=True), expected, rtol=0, atol=1e-13)


def test_loglik_and_gradient_same_with_and_without_the_split():
    rng = np.random.default_rng(3)
    Ks = [_kernels(np.linspace(0, 1, n))[k] for n, k in [(9, "cosine"), (8, "expquad")]]
    y = rng.normal(size=(9, 8))
    halves = [symmetric_eigh(K, split_min=4) for K in Ks]
    forced = KronEigen(tuple(np.clip(v, 0, None) for v, _, _ in halves), tuple(Q for _, Q, _ in halves), (True, True))
    split = marginal_loglik(y, forced, 1.3, 0.2, 0.1, gradient=True)
    dense_eigen = [np.linalg.eigh(K) for K in Ks]
    plain = KronEigen(tuple(np.clip(v, 0, None) for v, _ in dense_eigen), tuple(Q for _, Q in dense_eigen))
    reference = marginal_loglik(y, plain, 1.3, 0.2, 0.1, gradient=True)
    assert split.eigen.split == (True, True) and reference.eigen.split == ()
    assert split.logp == pytest.approx(reference.logp, rel=1e-12)
    for a, b in zip(split.d_factors, reference.d_factors, strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-10 * np.abs(b).max())
    for name in ("d_eta2", "d_sigma2", "d_mean"):
        assert getattr(split, name) == pytest.approx(getattr(reference, name), rel=1e-10)


def test_small_factors_are_not_split():
    K = _kernels(np.linspace(0, 1, 50))["expquad"]
    assert is_centrosymmetric(K) and not symmetric_eigh(K)[2]
    assert symmetric_eigh(_kernels(np.linspace(0, 1, 100))["expquad"])[2]


def _flip_every_other_column(monkeypatch):
    """Make LAPACK's ``eigh`` return every other eigenvector with the opposite sign (as a change of the
    matrix in its last digits can)."""
    import scipy.linalg

    plain = scipy.linalg.eigh

    def flipped(*args, **kwargs):
        lam, Q = plain(*args, **kwargs)
        return lam, Q * np.where(np.arange(Q.shape[1]) % 2 == 0, 1.0, -1.0)

    monkeypatch.setattr(scipy.linalg, "eigh", flipped)


@pytest.mark.parametrize("n", [7, 40])  # plain and centrosymmetric (split) eigh
def test_eigenvector_signs_do_not_depend_on_lapack(monkeypatch, n):
    x = np.linspace(0.0, 3.0, n) if n == 40 else np.sort(np.random.default_rng(1).uniform(0, 3, n))
    K = _kernels(x)["matern12"]
    lam, Q, _ = symmetric_eigh(K)
    _flip_every_other_column(monkeypatch)
    lam_f, Q_f, _ = symmetric_eigh(K)
    np.testing.assert_array_equal(lam_f, lam)
    np.testing.assert_array_equal(Q_f, Q)


def test_the_stochastic_laplace_marginal_is_the_same_whatever_signs_lapack_picks(monkeypatch):
    """The SLQ log-determinant draws its probes in the eigenbasis: with signs left to LAPACK, a sign that
    flips between two nearby hyperparameters is a new probe, and the estimate jumps (tutorial 6: 2 nats
    between lengthscales 1e-4 apart, which stalled the MAP)."""
    from xkron.linalg.laplace import laplace_loglik, newton_mode
    from xkron.spec.pointwise import pointwise

    rng = np.random.default_rng(3)
    factors = [_kernels(np.linspace(0, 3, n))["expquad"] + 1e-6 * np.eye(n) for n in (9, 8, 7)]
    y = (rng.random((9, 8, 7)) < 0.4).astype(float)
    observed = rng.random(y.shape) < 0.8

    def estimate():
        eigen = KronEigen.from_factors(factors)
        mode = newton_mode(lambda f: pointwise("bernoulli", f, y, {}, {}), eigen, 2.0, 0.0, observed)
        return laplace_loglik(mode, eigen, 2.0, "slq", probes=8)

    before = estimate()
    _flip_every_other_column(monkeypatch)
    after = estimate()
    assert after.logp == pytest.approx(before.logp, abs=1e-9 * before.logp_se)
    assert before.logp_se > 0  # a Monte Carlo estimate, whose noise would otherwise move
