"""The Lanczos (LOVE) variance and its bracket against the dense posterior variance (numpy solves)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from xkron.linalg.iterative import IterativeSystem
from xkron.linalg.love import lanczos_variance, step_budget
from xkron.settings import LANCZOS_MAX_BYTES, LANCZOS_MAX_STEPS, VARIANCE_TOL


def _matern52(a, b, ls):
    r = np.sqrt(5) * np.abs(np.subtract.outer(a, b)) / ls
    return (1 + r + r * r / 3) * np.exp(-r)


def _problem(seed, shape, lengthscales, cloud=0.5, unequal=True, pad=True):
    """Factors, cross matrices to a test grid (shifted and larger with ``pad``), noise and an observed mask."""
    rng = np.random.default_rng(seed)
    grids = [np.arange(n, dtype=float) for n in shape]
    tests = [np.linspace(-1.5, n + 0.5, n + 3) + 0.37 for n in shape] if pad else grids
    Ks = [_matern52(g, g, ls) for g, ls in zip(grids, lengthscales, strict=True)]
    cross = [_matern52(t, g, ls) for t, g, ls in zip(tests, grids, lengthscales, strict=True)]
    observed = rng.random(shape) > cloud
    observed[(slice(0, shape[0] // 2), *(slice(0, n // 3) for n in shape[1:]))] = False  # a block gap
    noise = 0.05 + (0.3 * rng.random(shape) if unequal else 0.0)
    return Ks, cross, noise, observed


def _dense_variance(Ks, cross, eta2, noise, observed):
    o = observed.ravel()
    K = Ks[0]
    X = cross[0]
    for M, C in zip(Ks[1:], cross[1:], strict=True):
        K, X = np.kron(K, M), np.kron(X, C)
    A = eta2 * K[np.ix_(o, o)] + np.diag(np.broadcast_to(noise, observed.shape).ravel()[o])
    Xo = eta2 * X[:, o]
    explained = np.einsum("ij,ji->i", Xo, np.linalg.solve(A, Xo.T))
    return (eta2 - explained).reshape([C.shape[0] for C in cross])


def _run(Ks, cross, eta2, noise, observed, **kwargs):
    system = IterativeSystem(Ks, eta2, noise, observed)
    labels = [chr(ord("a") + i) for i in range(len(Ks))]
    prior = np.full([C.shape[0] for C in cross], eta2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return lanczos_variance(system, cross, labels, "".join(labels), prior, **kwargs)


CASES = [
    (0, (9, 11), (2.0, 3.0), True),
    (1, (5, 6, 7), (1.5, 2.0, 2.5), True),
    (2, (8, 12), (4.0, 1.0), False),
    (3, (4, 7, 9), (3.0, 3.0, 1.0), True),
]


@pytest.mark.parametrize(("seed", "shape", "ls", "unequal"), CASES)
@pytest.mark.parametrize("steps", [1, 3, 10, 40])
def test_bracket_contains_the_dense_variance(seed, shape, ls, unequal, steps):
    Ks, cross, noise, observed = _problem(seed, shape, ls, unequal=unequal)
    eta2 = 1.7
    exact = _dense_variance(Ks, cross, eta2, noise, observed)
    for start, block in [("cross", 1), ("random", 1), ("random", 2)]:
        out = _run(Ks, cross, eta2, noise, observed, tol=0.0, max_steps=steps, start=start, block=block)
        slack = 1e-10 * eta2
        assert np.all(out.lower <= exact + slack), (start, block, np.max(out.lower - exact))
        assert np.all(exact <= out.upper + slack), (start, block, np.max(exact - out.upper))
        assert np.all(out.lower <= out.variance) and np.all(out.variance <= out.upper)


def test_blocks_bracket_the_dense_variance_on_a_larger_grid():
    """Block size 8 (the default) needs more than 32·8 observed cells: a 3-D grid of ~1500."""
    Ks, cross, noise, observed = _problem(4, (6, 16, 20), (2.0, 4.0, 5.0))
    exact = _dense_variance(Ks, cross, 1.0, noise, observed)
    for steps in (16, 64, 200):
        out = _run(Ks, cross, 1.0, noise, observed, tol=0.0, max_steps=steps, block=8)
        assert out.steps == steps
        assert np.all(out.lower <= exact + 1e-10) and np.all(exact <= out.upper + 1e-10)


def test_enough_steps_give_the_dense_sd():
    Ks, cross, noise, observed = _problem(5, (7, 9, 8), (2.0, 3.0, 3.0))
    exact = _dense_variance(Ks, cross, 1.3, noise, observed)
    out = _run(Ks, cross, 1.3, noise, observed, tol=1e-9, max_steps=int(observed.sum()))
    assert out.converged
    np.testing.assert_allclose(np.sqrt(out.variance), np.sqrt(exact), rtol=0, atol=1e-6)


def test_default_tolerance_holds_on_a_window_of_thousands_of_cells():
    """About 2600 observed cells of a 6 × 24 × 28 grid with clouds, a block gap and unequal noise."""
    Ks, cross, noise, observed = _problem(6, (6, 24, 28), (3.0, 6.0, 8.0), cloud=0.3, pad=False)
    assert 2000 < observed.sum() < 4000
    exact = _dense_variance(Ks, cross, 1.0, noise, observed)
    system = IterativeSystem(Ks, 1.0, noise, observed)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # converges within the default budget
        out = lanczos_variance(system, cross, ["a", "b", "c"], "abc", np.ones(exact.shape), tol=VARIANCE_TOL)
    assert out.converged and out.bound <= VARIANCE_TOL
    assert out.steps < observed.sum() / 2  # far fewer vectors than cells
    error = np.abs(np.sqrt(out.variance) / np.sqrt(exact) - 1)
    assert error.max() <= VARIANCE_TOL


def test_scattered_points_equal_the_dense_variance():
    Ks, cross, noise, observed = _problem(7, (8, 10), (2.0, 3.0))
    rng = np.random.default_rng(0)
    rows = [rng.integers(0, C.shape[0], 15) for C in cross]
    points = [C[r] for C, r in zip(cross, rows, strict=True)]  # 15 scattered test points
    exact = _dense_variance(Ks, cross, 1.0, noise, observed)[rows[0], rows[1]]
    system = IterativeSystem(Ks, 1.0, noise, observed)
    out = lanczos_variance(system, points, ["p", "p"], "p", np.ones(15), tol=1e-8, max_steps=int(observed.sum()))
    np.testing.assert_allclose(out.variance, exact, rtol=1e-6, atol=1e-9)


def test_budget_warns_with_the_achieved_bound():
    Ks, cross, noise, observed = _problem(8, (6, 16, 20), (2.0, 4.0, 5.0))
    system = IterativeSystem(Ks, 1.0, noise, observed)
    message = r"budget of 8 steps with the predicted sd (within [0-9.e+-]+ of the exact|not yet bounded).*'sampled'"
    with pytest.warns(RuntimeWarning, match=message):
        out = lanczos_variance(system, cross, ["a", "b", "c"], "abc", np.ones((9, 19, 23)), tol=1e-3, max_steps=8)
    assert not out.converged and out.bound > 1e-3 and out.steps == 8
    exact = _dense_variance(Ks, cross, 1.0, noise, observed)
    assert np.all(out.lower <= exact + 1e-10) and np.all(exact <= out.upper + 1e-10)


def test_bad_start_is_refused():
    Ks, cross, noise, observed = _problem(0, (5, 5), (2.0, 2.0))
    system = IterativeSystem(Ks, 1.0, noise, observed)
    with pytest.raises(ValueError, match="start='ones' is not one of"):
        lanczos_variance(system, cross, ["a", "b"], "ab", np.ones((8, 8)), tol=0.01, start="ones")


def test_step_budget_follows_memory():
    assert step_budget(1000) == LANCZOS_MAX_STEPS
    n = 150_000
    assert step_budget(n) == LANCZOS_MAX_BYTES // (8 * n) - 1
    assert (step_budget(n) + 1) * 8 * n <= LANCZOS_MAX_BYTES
