"""DenseSystem: exact algebra on the observed cells, against np.kron + scipy, finite differences
and the eigendecomposition-based marginal_loglik."""

from functools import reduce

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from xkron.linalg.dense import DenseSystem
from xkron.linalg.kronecker import marginal_loglik

ETA2 = 1.3
MEAN = 0.4


def _expquad(x, z):
    return np.exp(-0.5 * np.subtract.outer(x, z) ** 2 / 0.6**2)


def _matern32(x, z):
    r = np.sqrt(3.0) * np.abs(np.subtract.outer(x, z)) / 0.8
    return (1.0 + r) * np.exp(-r)


def _cosine(x, z):
    """Rank 2: ``cos(a − b) = cos a cos b + sin a sin b``."""
    return np.cos(2 * np.pi * np.subtract.outer(x, z) / 1.7)


GRIDS = {
    "expquad_matern": [(_expquad, 5), (_matern32, 4)],
    "cosine_expquad": [(_cosine, 5), (_expquad, 4)],
    "matern_expquad_cosine": [(_matern32, 4), (_expquad, 3), (_cosine, 3)],
}
MASKS = ["random", "block", "static"]
NOISES = ["homoscedastic", "per_cell"]


def _mask(kind: str, shape: tuple[int, ...], rng) -> np.ndarray:
    if kind == "random":
        return rng.random(shape) > 0.3
    if kind == "block":
        observed = np.ones(shape, dtype=bool)
        observed[1:3, 1:3] = False
        return observed
    keep = np.ones(shape[1:], dtype=bool)  # static: the same cells missing at every index of axis 0
    keep[1] = keep.flat[-1] = False
    return np.broadcast_to(keep, shape).copy()


def _case(grid: str, mask: str = "random", noise: str = "per_cell", seed: int = 0):
    """Kernels, coordinates, factors, observed mask, noise and data (NaN at unobserved cells)."""
    rng = np.random.default_rng(seed)
    kernels = [k for k, _ in GRIDS[grid]]
    coords = [np.sort(rng.uniform(0.0, 2.0, n)) for _, n in GRIDS[grid]]
    factors = [k(x, x) for k, x in zip(kernels, coords, strict=True)]
    shape = tuple(len(x) for x in coords)
    observed = _mask(mask, shape, rng)
    if noise == "homoscedastic":
        noise_var = 0.2
    else:
        noise_var = np.where(observed, rng.uniform(0.05, 0.5, shape), np.nan)
    y = np.where(observed, rng.normal(size=shape), np.nan)
    return kernels, coords, factors, observed, noise_var, y


def _dense(factors, eta2, noise_var, observed) -> np.ndarray:
    """``A`` built independently from the full N × N np.kron."""
    o = observed.ravel()
    noise = np.broadcast_to(noise_var, observed.shape).ravel()
    return eta2 * reduce(np.kron, factors)[o][:, o] + np.diag(noise[o])


def _fd(f, h: float) -> float:
    """Five-point central difference of ``f(t)`` at ``t = 0`` (error ``O(h⁴)``)."""
    return (8 * (f(h) - f(-h)) - (f(2 * h) - f(-2 * h))) / (12 * h)


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_logp_and_alpha_match_scipy(grid, mask, noise):
    _, _, factors, observed, noise_var, y = _case(grid, mask, noise)
    system = DenseSystem(factors, ETA2, noise_var, observed)
    A = _dense(factors, ETA2, noise_var, observed)
    ll = system.loglik(y, MEAN)
    assert system.shape == observed.shape and system.n_observed == observed.sum() < observed.size
    assert ll.logp == pytest.approx(multivariate_normal(np.full(len(A), MEAN), A).logpdf(y[observed]), rel=1e-10)
    assert system.logdet() == pytest.approx(np.linalg.slogdet(A)[1], rel=1e-10)
    np.testing.assert_allclose(ll.alpha[observed], np.linalg.solve(A, y[observed] - MEAN), rtol=1e-10)
    assert np.all(ll.alpha[~observed] == 0) and ll.d_factors is None


@pytest.mark.parametrize("noise", NOISES)
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_gradient_matches_finite_differences(grid, mask, noise):
    _, _, factors, observed, noise_var, y = _case(grid, mask, noise)
    ll = DenseSystem(factors, ETA2, noise_var, observed).loglik(y, MEAN, gradient=True)
    noise_var = np.broadcast_to(noise_var, observed.shape)
    rng = np.random.default_rng(1)

    def logp(factors=factors, eta2=ETA2, noise_var=noise_var, mean=MEAN):
        return DenseSystem(factors, eta2, noise_var, observed).loglik(y, mean).logp

    def close(analytic, f, h=1e-4):
        assert analytic == pytest.approx(_fd(f, h), rel=1e-6, abs=1e-8)

    for i, dK in enumerate(ll.d_factors):
        # Every entry of K_i is free: check the directional derivative along a symmetric E.
        E = rng.normal(size=dK.shape)
        E = E + E.T
        close(np.sum(dK * E), lambda t, i=i, E=E: logp([K + t * E if k == i else K for k, K in enumerate(factors)]))
    close(ll.d_eta2, lambda t: logp(eta2=ETA2 + t))
    close(ll.d_mean, lambda t: logp(mean=MEAN + t))
    for flat in rng.choice(np.flatnonzero(observed), size=3, replace=False):
        bump = np.zeros(observed.size)
        bump[flat] = 1.0
        bump = bump.reshape(observed.shape)
        close(ll.d_noise.flat[flat], lambda t, b=bump: logp(noise_var=noise_var + t * b), h=1e-5)
    assert np.all(ll.d_noise[~observed] == 0)


@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_solve_matches_numpy(grid, mask):
    _, _, factors, observed, noise_var, _ = _case(grid, mask)
    system = DenseSystem(factors, ETA2, noise_var, observed)
    A = _dense(factors, ETA2, noise_var, observed)
    b = np.where(observed, np.random.default_rng(2).normal(size=(3, *observed.shape)), np.nan)
    x = system.solve(b)
    assert x.shape == b.shape and np.all(x[:, ~observed] == 0)
    np.testing.assert_allclose(x[:, observed], np.linalg.solve(A, b[:, observed].T).T, rtol=1e-10)
    np.testing.assert_allclose(system.solve(b[1]), x[1], rtol=1e-14)


@pytest.mark.parametrize("chunk_size", [None, 2])
@pytest.mark.parametrize("mask", MASKS)
@pytest.mark.parametrize("grid", list(GRIDS))
def test_explained_variance_matches_dense_conditioning(grid, mask, chunk_size):
    kernels, coords, factors, observed, noise_var, _ = _case(grid, mask)
    system = DenseSystem(factors, ETA2, noise_var, observed)
    A = _dense(factors, ETA2, noise_var, observed)
    rng = np.random.default_rng(3)
    m = 5
    test = [rng.uniform(-0.3, 2.3, m) for _ in coords]
    rows = [k(xs, x) for k, xs, x in zip(kernels, test, coords, strict=True)]
    explained = system.explained_variance(rows, chunk_size=chunk_size)

    k_star = np.stack([reduce(np.kron, [R[j] for R in rows]) for j in range(m)])[:, observed.ravel()]
    np.testing.assert_allclose(explained, ETA2**2 * np.diag(k_star @ np.linalg.solve(A, k_star.T)), rtol=1e-10)

    # Posterior covariance by block inversion of the joint covariance of (f*, y_o).
    prior = ETA2 * reduce(np.multiply, [k(xs, xs) for k, xs in zip(kernels, test, strict=True)])
    joint = np.block([[prior, ETA2 * k_star], [ETA2 * k_star.T, A]])
    posterior = np.linalg.inv(np.linalg.inv(joint)[:m, :m])
    np.testing.assert_allclose(np.diag(prior) - explained, np.diag(posterior), rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("grid", list(GRIDS))
def test_full_grid_matches_marginal_loglik(grid):
    _, _, factors, observed, _, y = _case(grid, "block")
    y = np.where(observed, y, 0.3)
    full = np.ones(observed.shape, dtype=bool)
    ll = DenseSystem(factors, ETA2, 0.2, full).loglik(y, MEAN, gradient=True)
    ref = marginal_loglik(y, factors, ETA2, 0.2, MEAN, gradient=True)
    assert ll.logp == pytest.approx(ref.logp, rel=1e-9)
    np.testing.assert_allclose(ll.alpha, ref.eigen.from_eigenbasis(ref.alpha_tilde), rtol=1e-9, atol=1e-12)
    for d, d_ref in zip(ll.d_factors, ref.d_factors, strict=True):
        np.testing.assert_allclose(d, d_ref, rtol=1e-9, atol=1e-9 * np.abs(d_ref).max())
    assert ll.d_eta2 == pytest.approx(ref.d_eta2, rel=1e-9)
    assert ll.d_noise.sum() == pytest.approx(ref.d_sigma2, rel=1e-9)
    assert ll.d_mean == pytest.approx(ref.d_mean, rel=1e-9)


def test_noise_at_unobserved_cells_is_ignored():
    _, _, factors, observed, noise_var, y = _case("expquad_matern")
    other = np.where(observed, noise_var, -np.inf)
    a = DenseSystem(factors, ETA2, noise_var, observed).loglik(y, MEAN, gradient=True)
    b = DenseSystem(factors, ETA2, other, observed).loglik(y, MEAN, gradient=True)
    assert a.logp == b.logp and np.array_equal(a.d_noise, b.d_noise)


@pytest.mark.parametrize("bad", [0.0, -0.1, np.nan, np.inf])
def test_bad_noise_at_observed_cells_names_count_and_first_index(bad):
    _, _, factors, observed, noise_var, _ = _case("matern_expquad_cosine", "block")
    noise_var[0, 2, 1] = noise_var[3, 0, 2] = bad
    with pytest.raises(ValueError, match=r"2 observed cell\(s\), the first at index \(0, 2, 1\)"):
        DenseSystem(factors, ETA2, noise_var, observed)
    first = tuple(int(i) for i in np.argwhere(observed)[0])
    with pytest.raises(ValueError, match=rf"{observed.sum()} observed cell\(s\), the first at index \({first[0]}, "):
        DenseSystem(factors, ETA2, 0.0, observed)


def test_bad_shapes_and_empty_mask_raise():
    _, _, factors, observed, noise_var, y = _case("expquad_matern")
    with pytest.raises(ValueError, match="no True"):
        DenseSystem(factors, ETA2, noise_var, np.zeros_like(observed))
    with pytest.raises(ValueError, match="observed has shape"):
        DenseSystem(factors, ETA2, noise_var, observed.T)
    with pytest.raises(ValueError, match="does not broadcast"):
        DenseSystem(factors, ETA2, np.ones(3), observed)
    with pytest.raises(ValueError, match="square"):
        DenseSystem([factors[0][:, :3], factors[1]], ETA2, noise_var, observed)
    system = DenseSystem(factors, ETA2, noise_var, observed)
    with pytest.raises(ValueError, match="y has shape"):
        system.loglik(y.T)
    with pytest.raises(ValueError, match="finite at observed"):
        system.loglik(np.where(observed, np.nan, 0.0))
    with pytest.raises(ValueError, match="trailing axes"):
        system.solve(np.ones((2, 5, 3)))
    with pytest.raises(ValueError, match="shapes"):
        system.explained_variance([np.ones((3, 5)), np.ones((2, 4))])
