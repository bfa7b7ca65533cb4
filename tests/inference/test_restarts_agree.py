"""Issue 13, item 3: MAP restarts stop once two starts agree, and the report says so.

``restarts=k`` is at most ``k`` extra starts: after each start from the second on, if two starts
reached optima within ``MAP_AT_BEST_NATS`` whose hyperparameters agree to ``MAP_AGREE_RTOL``, the
rest are skipped (``n_starts_run``, ``stopped_early``). Starts that disagree never stop the loop,
and the optimum on the seed example is the one the old starts (the lengthscale ladder) reach.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import xarray as xr
from pymc_extras.prior import Prior

import xkron
import xkron.datasets
import xkron.inference.optimize as optimize
import xkron.inference.run as run
import xkron.inference.stopping as stopping
from xkron.errors import ConvergenceWarning
from xkron.settings import (
    MAP_AGREE_SE,
    MAP_AT_BEST_NATS,
    MAP_STOP_EVALUATIONS,
    MAP_STOP_SE,
    MAP_STOP_STEP,
    MAP_STOP_STILL,
)
from xkron.spec.priors import grid_scales, period_candidates, start_ladder

KERNELS = {"a": xkron.Matern52(), "b": xkron.ExpQuad()}


def grid(seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0, 5, 14), np.linspace(0, 3, 10)
    y = np.sin(a)[:, None] * np.cos(2 * b)[None, :] + 0.1 * rng.normal(size=(14, 10))
    return xr.DataArray(y, coords={"a": a, "b": b}, dims=("a", "b"))


def counting_minimize(monkeypatch) -> list[int]:
    """Record the evaluations of each start's ``scipy.optimize.minimize``."""
    calls: list[int] = []
    real = scipy.optimize.minimize

    def counted(fun, x0, *args, **kwargs):
        calls.append(0)

        def f(x, *a):
            calls[-1] += 1
            return fun(x, *a)

        return real(f, x0, *args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", counted)
    return calls


def test_restarts_stop_once_two_agree(monkeypatch):
    calls = counting_minimize(monkeypatch)
    fit = xkron.fit(grid(), KERNELS, restarts=4, progressbar=False)
    report = fit.optimizer
    assert (report["n_starts"], report["n_starts_run"], report["stopped_early"]) == (5, 2, True)
    assert len(calls) == 2 and len(report["logp_starts"]) == 2
    assert abs(report["logp_starts"][0] - report["logp_starts"][1]) <= MAP_AT_BEST_NATS
    assert report["n_starts_at_best"] == 2 and report["logp"] == max(report["logp_starts"])

    monkeypatch.setattr(stopping, "MAP_AGREE_RTOL", -1.0)  # no two starts can agree: all five run
    calls.clear()
    every = xkron.fit(grid(), KERNELS, restarts=4, progressbar=False).optimizer
    assert (every["n_starts_run"], every["stopped_early"], len(calls)) == (5, False, 5)
    assert every["logp"] == pytest.approx(report["logp"], abs=MAP_AT_BEST_NATS)
    assert sum(calls[:2]) < sum(calls)


def fake_runs(monkeypatch, results):
    """Replace each start's optimisation by the next of ``results``: ``(logp, shift of the unconstrained point)``,
    or ``(logp, shift, logp_se)`` for a Monte Carlo log posterior."""
    queue = list(results)

    def fake(objective, z0, progress, kwargs, *earlier):
        logp, shift, *se = queue.pop(0)
        x = np.full_like(z0, shift)
        _, _, values, _ = objective.evaluate(x)
        return {"x": x, "logp": logp, "logp_se": se[0] if se else 0.0, "values": values, "success": True,
                "message": "fake", "nit": 1, "n_eval": 1, "n_retreats": 0}  # fmt: skip

    monkeypatch.setattr(optimize, "_run_start", fake)


@pytest.mark.parametrize(
    ("results", "n_run"),
    [
        ([(-10.0, 0.0), (-12.0, 0.0), (-11.0, 0.0)], 3),  # same point, log posteriors apart: no stop
        ([(-10.0, 0.0), (-10.0, 0.5), (-10.0, 1.0)], 3),  # same log posterior, points apart: no stop
        ([(-10.0, 0.0), (-12.0, 0.5), (-10.0, 1e-6)], 3),  # the third agrees with the first: stop there
        ([(-10.0, 0.0), (-10.0 + 1e-4, 1e-5), (-9.0, 2.0)], 2),  # the second agrees with the first
    ],
    ids=["logp-apart", "points-apart", "third-agrees", "second-agrees"],
)
def test_starts_that_disagree_never_stop_the_loop(monkeypatch, results, n_run):
    fake_runs(monkeypatch, results)
    report = xkron.fit(grid(), KERNELS, restarts=2, progressbar=False).optimizer
    assert report["n_starts_run"] == n_run == len(report["logp_starts"])
    assert report["logp_starts"] == [lp for lp, _ in results[:n_run]]
    assert report["stopped_early"] == (n_run < 3)
    assert report["logp"] == max(lp for lp, _ in results[:n_run])


def seed_fit(**kwargs):
    ds = xkron.datasets.seed_example()
    gamma = Prior("Gamma", alpha=2, beta=2)
    return xkron.fit(
        ds["y"],
        {"x1": xkron.Matern52(ls=gamma), "x2": xkron.Cosine(ls=gamma)},
        amplitude=Prior("HalfNormal", sigma=2), noise=Prior("HalfNormal", sigma=2), mean="zero",
        progressbar=False, tol=1e-12, **kwargs,
    )  # fmt: skip


def test_the_seed_optimum_is_the_one_the_old_ladder_reaches(monkeypatch):
    """The data-driven starts reach the optimum that the old starts (lengthscales on the ladder, amplitude
    ``sd(y)``, noise ``sd(y)/10``, the same periods) reach, both run to a tight tolerance (tol=1e-12: the
    two optima then agree to about 2e-6 relative, the optimiser's resolution)."""
    new = seed_fit(restarts=2)
    y = xkron.datasets.seed_example()["y"].values

    def old_starts(factors, priors, data, n):
        x1, x2 = factors[0].coords[0], factors[1].coords[0]
        ladder, periods = start_ladder(*grid_scales(x1), n), period_candidates(data, 1, x2, n)
        return [
            {"ls_x1": ls, "ls_x2": p, "amplitude": np.std(y), "noise": 0.1 * np.std(y)}
            for ls, p in zip(ladder, periods, strict=True)
        ]

    monkeypatch.setattr(run, "map_starts", old_starts)
    monkeypatch.setattr(stopping, "MAP_AGREE_RTOL", -1.0)
    old = seed_fit(restarts=2)
    assert old.optimizer["n_starts_run"] == 3
    assert new.optimizer["logp"] >= old.optimizer["logp"] - 1e-9
    for name in ("ls_x1", "ls_x2", "amplitude", "noise"):
        assert float(new.params[name]) == pytest.approx(float(old.params[name]), rel=1e-5), name


@pytest.mark.parametrize(
    ("results", "n_run", "at_best"),
    [
        # se 1 each: combined √2, tolerance 2√2 ≈ 2.83 nats
        ([(-10.0, 0.0, 1.0), (-12.7, 1e-6, 1.0), (-9.0, 2.0, 1.0)], 2, 2),  # 2.7 apart: one optimum
        ([(-10.0, 0.0, 1.0), (-13.0, 1e-6, 1.0), (-20.0, 2.0, 1.0)], 3, 1),  # 3.0 apart: two optima
        ([(-10.0, 0.0, 1.0), (-10.5, 0.5, 1.0), (-30.0, 2.0, 1.0)], 3, 2),  # within 2 se, points apart: no stop
        ([(-10.0, 0.0, 0.1), (-10.2, 1e-6, 0.0), (-9.0, 2.0, 0.0)], 2, 2),  # tolerance 2·0.1: 0.2 apart agree
        ([(-10.0, 0.0, 0.0), (-10.01, 1e-6, 0.0), (-20.0, 2.0, 0.0)], 3, 1),  # exact: MAP_AT_BEST_NATS
        ([(-10.0, 0.0, 1.0), (-10.1, 0.015, 1.0), (-30.0, 2.0, 1.0)], 2, 2),  # Monte Carlo: points 1.5% apart agree
        ([(-10.0, 0.0, 0.0), (-10.0, 0.015, 0.0), (-30.0, 2.0, 0.0)], 3, 2),  # exact: 1.5% apart do not
    ],
    ids=["within-2se", "beyond-2se", "points-apart", "one-se-given", "exact", "noisy-rtol", "exact-rtol"],
)
def test_monte_carlo_optima_agree_within_two_standard_errors(monkeypatch, results, n_run, at_best):
    """With the iterative solver's stated error, two optima count as one when their log posteriors differ by at
    most ``MAP_AGREE_SE`` combined standard errors and their points agree to ``MAP_AGREE_RTOL_NOISY`` (exact
    log posteriors: ``MAP_AT_BEST_NATS`` and ``MAP_AGREE_RTOL``)."""
    assert MAP_AGREE_SE == 2.0
    fake_runs(monkeypatch, results)
    report = xkron.fit(grid(), KERNELS, restarts=2, progressbar=False).optimizer
    assert report["n_starts_run"] == n_run
    assert report["n_starts_at_best"] == at_best


def test_the_stall_watch_counts_evaluations_within_the_error():
    watch = stopping.StallWatch()
    se = 2.0  # a stall: no better than the anchor, worse by at most se = 2, within MAP_STOP_STEP of its point
    n = MAP_STOP_EVALUATIONS
    assert MAP_STOP_SE == 0.0 and n >= 3 and MAP_STOP_STEP == 1e-3 and MAP_AT_BEST_NATS == 1e-3
    here, near, far = np.zeros(2), np.full(2, 5e-4), np.full(2, 0.5)
    seen = [
        (0.0, here, False),  # the first anchor
        (-50.0, here, False),  # better: the anchor
        (1000.0, near, False),  # far worse: neither counts nor resets
        (-49.9, far, False),  # worse, but the line search is still moving: no stall
        *[(-49.9, near, False)] * (n - 2),  # stalls 1 to n - 2
        (-50.0005, near, False),  # a gain of at most MAP_AT_BEST_NATS, close: stall n - 1, no reset
        (-50.01, near, False),  # a gain above it: the anchor, the count resets
        *[(-49.5, near, False)] * (n - 1),  # stalls 1 to n - 1
        (-50.01, near, True),  # as good as the anchor, close: stall n ends the start
    ]
    assert [watch.see(f, se, z) for f, z, _ in seen] == [end for *_, end in seen]
    assert watch.stalled == n and f"(se 2 nats): {n} evaluations in a row" in watch.message
    still = stopping.StallWatch()  # better by less than se at a point that has not moved: a stall
    assert MAP_STOP_STILL == 1e-6
    jitter = [(-50.0, here), *[(-50.1, here + 1e-9 * k) for k in range(1, n)], (-50.2, here + 1e-7)]
    assert [still.see(f, se, z) for f, z in jitter] == [False] * n + [True]
    moved = stopping.StallWatch()  # the same gains a little farther away (1e-5) are progress: the count resets
    assert not any(moved.see(f, se, here + 1e-5 * k) for k, (f, _) in enumerate(jitter))
    assert moved.stalled == 0
    exact = stopping.StallWatch()
    assert not any(exact.see(f, 0.0, here) for f in [0.0, -1e-12, -2e-12, -3e-12, -3e-12, 0.0, 0.0, 0.0])
    assert exact.message is None


def gappy(seed: int = 1) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0, 6, 30), np.linspace(0, 4, 24)
    y = np.sin(a)[:, None] * np.cos(1.5 * b)[None, :] + 0.1 * rng.normal(size=(30, 24))
    y[rng.random(y.shape) < 0.3] = np.nan
    return xr.DataArray(y, coords={"a": a, "b": b}, dims=("a", "b"))


def test_an_iterative_fit_stops_within_its_error_and_succeeds():
    """The iterative solver's log posterior carries a Monte Carlo error (``logp_se``): the optimiser stops, with
    success, once its evaluations stop improving, in fewer evaluations than to a user's tight ``tol`` (which
    wins: the rule is off, and the line search may then fail on the estimate's inconsistent gradient); the
    optimum it reports is within a tenth of that error of the one reached at the tight ``tol``."""
    kernels = {"a": xkron.Matern52(), "b": xkron.Matern52()}
    quick = xkron.fit(gappy(), kernels, solver="iterative", restarts=0, progressbar=False).optimizer
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        tight = xkron.fit(gappy(), kernels, solver="iterative", restarts=0, progressbar=False, tol=1e-10).optimizer
    se = quick["solver"]["logp_se"]
    assert se > 0
    assert quick["success"] and "Monte Carlo error" in quick["message"]
    assert "Monte Carlo" not in tight["message"]
    assert quick["n_eval"] < tight["n_eval"]
    assert 0 <= tight["logp"] - quick["logp"] <= 0.1 * se


def holey() -> xr.DataArray:
    """:func:`grid` with a fifth of its cells missing: small enough for the dense solver to be quick."""
    data = grid()
    return data.where(np.random.default_rng(0).random(data.shape) >= 0.2)


@pytest.mark.parametrize("solver", ["kronecker", "dense"])
def test_exact_solvers_never_stop_on_the_error_rule(monkeypatch, solver):
    """An exact log posterior has no Monte Carlo error: the fit is the one without the rule, evaluation for
    evaluation."""
    data = grid() if solver == "kronecker" else holey()
    fit = xkron.fit(data, KERNELS, solver=solver, restarts=0, progressbar=False)
    monkeypatch.setattr(optimize, "_stops_within_error", lambda kwargs: False)
    without = xkron.fit(data, KERNELS, solver=solver, restarts=0, progressbar=False)
    assert "Monte Carlo" not in fit.optimizer["message"]
    assert fit.optimizer == without.optimizer
    assert {k: float(v) for k, v in fit.params.items()} == {k: float(v) for k, v in without.params.items()}


def test_the_optimiser_reads_the_solvers_stated_error(monkeypatch):
    """The standard error each start's optimum carries is the one the iterative solver states at that point, as
    the fit's report re-reads it there (:func:`xkron.inference.diagnose.solver_report`); exact solvers state 0."""
    runs: list[dict] = []
    real = optimize._run_start

    def recorded(*args):
        runs.append(real(*args))
        return runs[-1]

    monkeypatch.setattr(optimize, "_run_start", recorded)
    kernels = {"a": xkron.Matern52(), "b": xkron.Matern52()}
    fit = xkron.fit(gappy(), kernels, solver="iterative", restarts=0, progressbar=False)
    assert len(runs) == 1 and runs[0]["logp_se"] > 0
    assert runs[0]["logp_se"] == pytest.approx(fit.optimizer["solver"]["logp_se"], rel=1e-9)
    runs.clear()
    xkron.fit(holey(), KERNELS, solver="dense", restarts=0, progressbar=False)
    assert [r["logp_se"] for r in runs] == [0.0]
