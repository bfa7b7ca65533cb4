"""Block CG (:func:`xkron.linalg.cg.block_pcg`) against dense solves and against one CG run per right-hand side."""

from __future__ import annotations

import numpy as np
import pytest

from xkron.linalg.cg import block_pcg, pcg
from xkron.linalg.iterative import IterativeSystem
from xkron.linalg.observed_cg import ObservedSystem


def _matern(n: int, ls: float) -> np.ndarray:
    r = np.abs(np.subtract.outer(np.arange(n), np.arange(n))) * np.sqrt(5.0) / ls
    return (1 + r + r**2 / 3) * np.exp(-r)


def _operator(seed: int = 0):
    """``A = (K₁ ⊗ K₂)_oo + 0.01 I`` on a 40 × 30 grid with 45% of the cells missing: condition number ~1e4."""
    rng = np.random.default_rng(seed)
    K = np.kron(_matern(40, 6.0), _matern(30, 5.0))
    observed = rng.random(K.shape[0]) > 0.45
    A = K[np.ix_(observed, observed)] + 0.01 * np.eye(observed.sum())
    return A, rng


def test_block_cg_solves_every_row_to_its_tolerance():
    """Each row's residual is within ``tol``, and the solutions equal dense ones within ``κ · tol``; a repeated
    row and a zero row (a block that loses rank at once) are solved too."""
    A, rng = _operator()
    b = rng.standard_normal((6, len(A)))
    b = np.vstack([b, b[:1], np.zeros((1, len(A)))])
    diag = np.diag(A).copy()
    x, report = block_pcg(lambda v: v @ A, b, lambda r: r / diag, tol=1e-10)
    exact = np.linalg.solve(A, b.T).T
    assert report.converged and report.residual <= 1e-10
    assert np.all(np.linalg.norm(x @ A - b, axis=1) <= 1e-10 * np.maximum(np.linalg.norm(b, axis=1), 1e-300))
    kappa = np.linalg.cond(A)
    assert np.max(np.abs(x - exact)) <= kappa * 1e-10 * np.max(np.abs(exact))
    assert np.array_equal(x[-1], np.zeros(len(A)))


def test_block_cg_takes_fewer_iterations_than_one_run_per_row():
    """The rows share one Krylov space: 16 right-hand sides converge in well under the iterations of single CG."""
    A, rng = _operator(1)
    b = rng.standard_normal((16, len(A))) @ A
    _, single = pcg(lambda v: v @ A, b, tol=1e-8, max_iter=5000)
    x, block = block_pcg(lambda v: v @ A, b, tol=1e-8, max_iter=5000)
    assert single.converged and block.converged
    assert block.iterations < 0.6 * single.iterations
    assert np.allclose(x @ A, b, rtol=0, atol=1e-6 * np.abs(b).max())


def test_block_cg_reports_a_run_out_of_iterations():
    A, rng = _operator()
    _, report = block_pcg(lambda v: v @ A, rng.standard_normal((3, len(A))), tol=1e-12, max_iter=2)
    assert not report.converged and report.iterations == 2 and report.residual > 1e-12


@pytest.mark.parametrize("noise", ["equal", "per-cell"])
@pytest.mark.parametrize("kind", ["observed", "missing"])
@pytest.mark.parametrize("rows", [1, 5, 20])
def test_systems_solve_batches_by_block_cg_to_the_same_answer(rows, kind, noise):
    """:meth:`ObservedSystem.solve` and the Schur complement's :meth:`IterativeSystem.solve` with several
    right-hand sides (block CG, 16 rows a block) equal the dense solve on the observed cells, as with one."""
    rng = np.random.default_rng(3)
    factors = [_matern(8, 2.0), _matern(9, 3.0), _matern(7, 2.5)]
    observed = rng.random((8, 9, 7)) > (0.6 if kind == "observed" else 0.2)
    var = 0.05 if noise == "equal" else 0.03 + 0.04 * rng.random((8, 9, 7))
    cls = ObservedSystem if kind == "observed" else IterativeSystem
    system = cls(factors, 1.3, var, observed, tol=1e-10)
    if kind == "observed":
        assert system.solve_slices is None  # the restricted-inverse preconditioner: batches run block CG
    b = rng.standard_normal((rows, 8, 9, 7))
    K = np.kron(np.kron(factors[0], factors[1]), factors[2]) * 1.3
    o = observed.ravel()
    A = K[np.ix_(o, o)] + np.diag(np.broadcast_to(var, observed.shape).ravel()[o])
    got = system.solve(b).reshape(rows, -1)
    exact = np.linalg.solve(A, b.reshape(rows, -1)[:, o].T).T
    assert np.allclose(got[:, o], exact, rtol=0, atol=1e-7 * np.abs(exact).max())
    assert np.all(got[:, ~o] == 0)
