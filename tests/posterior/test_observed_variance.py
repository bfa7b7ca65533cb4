"""ObservedPosterior with the iterative solver's Lanczos variance against the dense (Cholesky) posterior."""

from __future__ import annotations

import numpy as np
import pytest

from xkron.posterior.conditional import TestInputs as Inputs
from xkron.posterior.observed import ObservedPosterior
from xkron.spec.grid import Factor
from xkron.spec.kernels import ExpQuad, Matern52
from xkron.spec.solver import Solver

T, X = np.linspace(0, 5, 8), np.linspace(0, 1, 12)
FACTORS = (Factor(("t",), Matern52(), (T,)), Factor(("x",), ExpQuad(), (X,)))
VALUES = {"ls_t": 2.0, "ls_x": 0.25, "amplitude": 1.4, "noise": 0.3, "mean": 0.2}


def _data(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(8, 12))
    y[rng.random((8, 12)) < 0.35] = np.nan
    y[2:5, 3:8] = np.nan  # a cloud
    known = 0.02 + 0.2 * rng.random((8, 12))  # unequal noise
    return y, known


def _posteriors(solver):
    y, known = _data()
    dense = ObservedPosterior.condition(y, FACTORS, VALUES, known, Solver("dense"))
    return dense, ObservedPosterior.condition(y, FACTORS, VALUES, known, solver)


def test_lanczos_variance_on_a_test_grid_equals_the_dense_one():
    solver = Solver("iterative", variance="lanczos", variance_tol=1e-4)
    dense, lanczos = _posteriors(solver)
    tests = [Inputs("a", (np.linspace(-1, 6, 11),)), Inputs("b", (np.linspace(-0.2, 1.3, 9),))]
    mean_d, var_d = dense.moments(tests, "ba", noise=True)
    mean_l, var_l = lanczos.moments(tests, "ba", noise=True)
    np.testing.assert_allclose(mean_l, mean_d, atol=1e-6)
    np.testing.assert_allclose(np.sqrt(var_l), np.sqrt(var_d), rtol=1e-4)
    (report,) = lanczos.variance_reports
    assert report["method"] == "lanczos" and report["converged"] and report["sd_bound"] <= 1e-4


def test_lanczos_variance_at_scattered_points_equals_the_dense_one():
    dense, lanczos = _posteriors(Solver("iterative", variance="lanczos"))
    rng = np.random.default_rng(3)
    pts = [Inputs("p", (rng.uniform(0, 5, 20),)), Inputs("p", (rng.uniform(0, 1, 20),))]
    _, var_d = dense.moments(pts, "p")
    _, var_l = lanczos.moments(pts, "p")
    assert var_l.shape == (20,)
    np.testing.assert_allclose(np.sqrt(var_l), np.sqrt(var_d), rtol=Solver().variance_tol)


def test_step_budget_warns_and_still_returns_a_bracketed_variance():
    dense, lanczos = _posteriors(Solver("iterative", variance="lanczos", variance_tol=1e-6, variance_steps=3))
    tests = [Inputs("a", (T,)), Inputs("b", (X,))]
    with pytest.warns(RuntimeWarning, match="budget of 3 steps"):
        _, var_l = lanczos.moments(tests, "ab")
    _, var_d = dense.moments(tests, "ab")
    (report,) = lanczos.variance_reports
    assert not report["converged"] and report["steps"] == 3
    sd_error = np.abs(np.sqrt(var_l / var_d) - 1)
    assert sd_error.max() <= report["sd_bound"] + 1e-9  # the reported bound holds


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"variance_tol": 0.0}, "variance_tol=0.0 must be a positive number"),
        ({"variance_tol": "1%"}, "variance_tol='1%' must be a positive number"),
        ({"variance_steps": 0}, "variance_steps=0 must be a positive integer or None"),
        ({"variance_steps": 2.5}, "variance_steps=2.5 must be a positive integer or None"),
    ],
)
def test_bad_lanczos_options_are_refused(options, message):
    with pytest.raises(ValueError, match=message):
        Solver("iterative", **options)


def test_auto_picks_lanczos_on_small_grids_and_monte_carlo_above(monkeypatch):
    """``variance="auto"`` (the default) runs Lanczos up to ``LANCZOS_AUTO_CELLS`` observed cells: its sd is then
    the rigorous one (equal to the dense sd within the bracket); above, the Monte Carlo one (no Lanczos report)."""
    import xkron.spec.solver as solver_module

    assert Solver("iterative").variance == "auto"
    tests = [Inputs("a", (T,)), Inputs("b", (X,))]
    dense, auto = _posteriors(Solver("iterative"))
    var_d = dense.moments(tests, "ab")[1]
    var_a = auto.moments(tests, "ab")[1]
    assert [r["method"] for r in auto.variance_reports] == ["lanczos"] and auto.variance_reports[0]["converged"]
    np.testing.assert_allclose(np.sqrt(var_a), np.sqrt(var_d), rtol=0.01)
    monkeypatch.setattr(solver_module, "LANCZOS_AUTO_CELLS", 10)
    sampled = _posteriors(Solver("iterative"))[1]
    var_s = sampled.moments(tests, "ab")[1]
    assert sampled.variance_reports == []
    assert not np.allclose(var_s, var_a, rtol=1e-3)  # the Monte Carlo estimate, not the Lanczos one


def test_lanczos_options_round_trip():
    solver = Solver.from_options("iterative", {"variance": "lanczos", "variance_tol": 0.02, "variance_steps": 400})
    assert Solver.from_options("iterative", solver.options()) == solver
    assert solver.options() == {"variance": "lanczos", "variance_tol": 0.02, "variance_steps": 400}
    assert Solver("iterative", variance="lanczos").options() == {"variance": "lanczos"}
