"""The MAP optimiser resumes from its best point when L-BFGS-B's line search accepts a far worse one.

scipy's L-BFGS-B (Moré-Thuente line search) takes a trial point once the Wolfe conditions hold
relative to where the search began, even when an earlier trial of the same search was better. In
the objective below the first trial lands in a deep, narrow well; the search extrapolates past it
onto the slope of a broad, shallow basin, accepts that point, and ends in the basin, 36 nats worse
than a point it had evaluated. (Tutorial 6's Laplace fit did the same into a collapsed year
lengthscale, 340 nats below its best point.) ``fit_map`` resumes from the best point instead.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import scipy.optimize

from xkron.inference.optimize import fit_map
from xkron.settings import MAP_RETREAT_NATS

DEPTH, WIDTH, BASIN, SPREAD = 100.0, 0.6, 50.0, 6.0  # the well at 1.5, the basin's floor at 6


def _f(z):
    """The function minimised (minus the log density), and its derivative, in numpy."""
    well = -DEPTH * np.exp(-((z - 1.5) ** 2) / (2 * WIDTH**2))
    value = well + BASIN * ((z - 6.0) ** 2 / SPREAD**2 - 1.0)
    return value, well * -(z - 1.5) / WIDTH**2 + 2 * BASIN * (z - 6.0) / SPREAD**2


def _model():
    with pm.Model() as model:
        x = pm.Flat("x")
        well = -DEPTH * pt.exp(-((x - 1.5) ** 2) / (2 * WIDTH**2))
        pm.Potential("f", -(well + BASIN * ((x - 6.0) ** 2 / SPREAD**2 - 1.0)))
    return model


def test_plain_lbfgsb_ends_far_worse_than_a_point_it_evaluated():
    seen = []

    def fun(z):
        value, grad = _f(float(z[0]))
        seen.append(value)
        return value, np.array([grad])

    res = scipy.optimize.minimize(fun, np.array([0.0]), jac=True, method="L-BFGS-B")
    assert res.success and res.x[0] == pytest.approx(6.0, abs=0.1)
    assert res.fun - min(seen) > MAP_RETREAT_NATS  # the trap this module guards against


def test_fit_map_resumes_from_the_best_point_and_finds_the_well():
    values, report = fit_map(_model(), [{"x": 0.0}], progressbar=False)
    inside = scipy.optimize.minimize(lambda z: _f(float(z[0]))[0], np.array([1.5]), method="Nelder-Mead",
                                     options={"xatol": 1e-10, "fatol": 1e-12})  # fmt: skip
    assert float(values["x"]) == pytest.approx(float(inside.x[0]), abs=1e-5)
    assert report["logp"] == pytest.approx(-inside.fun, abs=1e-8)
    assert report["n_retreats"] >= 1 and report["success"]


def test_no_retreat_where_the_optimiser_never_falls_behind():
    with pm.Model() as model:
        pm.Normal("x", 2.0, 1.0)
    values, report = fit_map(model, [{"x": 0.0}], progressbar=False)
    assert float(values["x"]) == pytest.approx(2.0, abs=1e-5)
    assert report["n_retreats"] == 0
