"""Side-by-side benchmark: PyMC's ``pm.gp.MarginalKron`` against xkron, in one run.

Usage (from the repository root)::

    .venv/bin/python tests/benchmarks/bench_core.py            # full sizes, ~14 min on a busy 2-core machine
    .venv/bin/python tests/benchmarks/bench_core.py --quick    # small sizes, ~7 min (task 1 is the same)
    .venv/bin/python tests/benchmarks/bench_core.py --tasks 2,3 --repeat 5

Tasks (targets from the issue in brackets):

1. MAP fit of PyMC's "Kronecker Structured Covariances" seed example (50 x 30 grid,
   Matern52(ls1) x eta^2 Cosine(ls2), Gamma(2, 2) lengthscales, HalfNormal(2) eta and sigma),
   end to end including model build and compile: ``pm.find_MAP(method="BFGS")`` on
   ``MarginalKron`` as in the notebook vs ``xkron.fit(..., mean="zero")`` with the same
   priors [xkron >= 10x faster and at the true optimum]. Correctness: the dense log posterior
   (scipy ``multivariate_normal`` + prior log densities, no Jacobian: what ``find_MAP``
   maximises) at each result and at the dense optimum.
2. logp + gradient on an n x n grid (ExpQuad x Matern52, random data): compile time, then
   time per evaluation of one compiled function returning logp and dlogp together
   [xkron >= 2x faster per evaluation]. Correctness: logp agreement and each gradient
   against central finite differences.
3. Posterior mean and sd at random points from an n x n training grid, fixed hyperparameters:
   ``gp.predict(Xnew, point=..., diag=True)`` vs ``KronFit.predict(points)``
   [>= 100x faster; xkron peak memory <= 500 MB].
4. An n x n output grid predicted from an n x n training grid with xkron [< 10 s]. PyMC would
   need dense N x M matrices and is not run (``--run-pymc-oom`` tries it in a child under an
   address-space limit); instead PyMC predicts a sample of the output cells as a check.

How it measures:

* Every measurement runs in a fresh child process (``multiprocessing`` "spawn"), so the peak
  memory is the child's own peak RSS (``getrusage(RUSAGE_SELF).ru_maxrss``); the RSS just
  before the timed call is reported too (the import of PyMC/PyTensor alone is ~300 MB).
* BLAS runs single-threaded: ``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS`` and
  ``MKL_NUM_THREADS`` are set to 1 in this process's environment before any child starts,
  so each child has them before it imports numpy (checked with threadpoolctl).
* PyTensor caches compiled code on disk (C modules and Numba functions under
  ``base_compiledir``). Each side of each task gets its own fresh ``base_compiledir`` in a
  temporary folder: the first child compiles cold; later children of that side reuse it
  (warm). Task 1 reports both; the user's ``~/.pytensor`` is never touched.
* Wall time and process CPU time are both reported; on a busy machine the CPU time is the
  steadier one. The load average is printed with each task.

This file is a script, not a test: pytest only collects ``test_*.py`` (and, with
``--doctest-modules``, imports this module, which does nothing at import time).
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import math
import multiprocessing
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import traceback

BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

SIZES = {
    "full": {"t2_n": 1000, "t3_n": 200, "t3_m": 10_000, "t4_n": 1000, "t4_cells": 100},
    "quick": {"t2_n": 300, "t3_n": 100, "t3_m": 2_000, "t4_n": 300, "t4_cells": 100},
}

# Hyperparameters of tasks 2-4 (ExpQuad along x1 on [0, 1], eta^2 Matern52 along x2 on [0, 2]).
T2_POINT = {"ls1": 0.1, "ls2": 0.2, "eta": 1.0, "sigma": 0.5}
T34_PARAMS = {"ls1": 0.1, "ls2": 0.2, "eta": 1.0, "sigma": 0.1}
XKRON_NAMES = {"ls1": "ls_x1", "ls2": "ls_x2", "eta": "amplitude", "sigma": "noise"}
ORDER = ("ls1", "ls2", "eta", "sigma")


# --------------------------------------------------------------------------------------------
# Child-process machinery
# --------------------------------------------------------------------------------------------


def _rss_now_mb() -> float:
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class _Timer:
    """Wall and CPU time of a block, and the RSS just before it."""

    def __enter__(self):
        self.rss_before = _rss_now_mb()
        self.cpu0, self.wall0 = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall0
        self.cpu = time.process_time() - self.cpu0
        return False


def _child_main(conn, job_name, kwargs, env, mem_limit_gb):
    os.environ.update(env)
    if mem_limit_gb:
        limit = int(mem_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import logging
    import warnings

    warnings.simplefilter("ignore")
    for name in ("pymc", "pytensor", "numba"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        # ``module:name`` for a job defined in another module (e.g. bench_latent.py), else a job here.
        module_name, _, name = job_name.rpartition(":")
        namespace = vars(importlib.import_module(module_name)) if module_name else globals()
        out = namespace[name](**kwargs)
        out["ok"] = True
    except BaseException as exc:  # report every failure (MemoryError included) to the parent
        out = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:400], "traceback": traceback.format_exc()}
    out.setdefault("peak_mb", _peak_rss_mb())
    try:
        conn.send(out)
    finally:
        conn.close()


def run_child(job, *, compiledir=None, mem_limit_gb=None, timeout=3600, **kwargs) -> dict:
    """Run ``job(**kwargs)`` in a fresh spawned process and return its result dict.

    ``job`` is a module-level function of this module or of another importable one (the child
    imports that module; a script run as ``__main__`` is re-imported by the spawn start method).
    """
    job_ref = job.__name__ if job.__module__ == __name__ else f"{job.__module__}:{job.__name__}"
    env = {}
    if compiledir is not None:
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        env["PYTENSOR_FLAGS"] = ",".join(f for f in (flags, f"base_compiledir={compiledir}") if f)
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child_main, args=(send, job_ref, kwargs, env, mem_limit_gb))
    start = time.perf_counter()
    proc.start()
    send.close()
    result = None
    try:
        if recv.poll(timeout):
            result = recv.recv()
    except EOFError:
        pass
    proc.join(timeout=60)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if result is None:
        code = proc.exitcode
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        if time.perf_counter() - start >= timeout:
            why = f"timed out after {timeout} s"
        result = {"ok": False, "error": f"child died without a result ({why})", "peak_mb": float("nan")}
    return result


# --------------------------------------------------------------------------------------------
# Jobs (each runs in its own child; heavy imports happen inside)
# --------------------------------------------------------------------------------------------


def job_env() -> dict:
    import numpy
    import pymc
    import pytensor
    import scipy
    import xarray
    from pytensor.compile.mode import get_default_mode
    from threadpoolctl import threadpool_info

    import xkron
    from xkron.inference.optimize import COMPILE_MODE

    blas = [f"{i.get('internal_api')} {i.get('version')} threads={i.get('num_threads')}" for i in threadpool_info()]
    return {
        "versions": {
            "python": platform.python_version(),
            "pymc": pymc.__version__,
            "pytensor": pytensor.__version__,
            "numpy": numpy.__version__,
            "scipy": scipy.__version__,
            "xarray": xarray.__version__,
            "xkron": xkron.__version__,
        },
        "blas": "; ".join(blas),
        "pytensor_linker": type(get_default_mode().linker).__name__,
        "xkron_mode": f"linker={COMPILE_MODE.provided_linker!r}, "
        f"rewrites={sorted(COMPILE_MODE.provided_optimizer.include)}",
        "env": {k: os.environ.get(k) for k in BLAS_THREAD_VARS},
    }


def job_seed_data() -> dict:
    from xkron.datasets import seed_example

    ds = seed_example()
    return {"y": ds["y"].values, "x1": ds["x1"].values, "x2": ds["x2"].values}


# ---- Task 1 ------------------------------------------------------------------------------


def job_t1_pymc(y, x1, x2) -> dict:
    import pymc as pm

    y_flat = y.ravel()
    with _Timer() as t:
        with pm.Model():
            ls1 = pm.Gamma("ls1", alpha=2, beta=2)
            ls2 = pm.Gamma("ls2", alpha=2, beta=2)
            eta = pm.HalfNormal("eta", sigma=2)
            cov_x1 = pm.gp.cov.Matern52(1, ls=ls1)
            cov_x2 = eta**2 * pm.gp.cov.Cosine(1, ls=ls2)
            gp = pm.gp.MarginalKron(cov_funcs=[cov_x1, cov_x2])
            sigma = pm.HalfNormal("sigma", sigma=2)
            gp.marginal_likelihood("y", Xs=[x1[:, None], x2[:, None]], y=y_flat, sigma=sigma)
            point, raw = pm.find_MAP(method="BFGS", progressbar=False, return_raw=True)
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "rss_before": t.rss_before,
        "params": {k: float(point[k]) for k in ORDER},
        "reported_logp": -float(raw.fun),
        "success": bool(raw.success),
        "message": str(raw.message),
        "nit": int(raw.nit),
        "nfev": int(raw.nfev),
    }


def job_t1_xkron(y, x1, x2, restarts) -> dict:
    import xarray as xr
    from pymc_extras.prior import Prior

    import xkron

    da = xr.DataArray(y, coords={"x1": x1, "x2": x2}, dims=("x1", "x2"))
    with _Timer() as t:
        gamma = Prior("Gamma", alpha=2, beta=2)
        fit = xkron.fit(
            da,
            {"x1": xkron.Matern52(ls=gamma), "x2": xkron.Cosine(ls=gamma)},
            amplitude=Prior("HalfNormal", sigma=2),
            noise=Prior("HalfNormal", sigma=2),
            mean="zero",
            restarts=restarts,
            progressbar=False,
        )
    opt = dict(fit.optimizer)
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "rss_before": t.rss_before,
        "params": {k: float(fit.params[XKRON_NAMES[k]]) for k in ORDER},
        "reported_logp": float(opt["logp"]),
        "success": bool(opt["success"]),
        "message": str(opt["message"]),
        "nit": int(opt.get("nit", -1)),
        "n_starts": int(opt.get("n_starts", 0)),
        "n_starts_at_best": int(opt.get("n_starts_at_best", 0)),
    }


def _seed_dense_logpost(theta, x1, x2, y):
    """Dense log posterior of the seed model (no Jacobian: the density ``find_MAP`` maximises)."""
    import numpy as np
    import scipy.linalg
    from scipy import stats

    ls1, ls2, eta, sigma = theta
    r1 = np.abs(np.subtract.outer(x1, x1)) / ls1
    k1 = (1.0 + math.sqrt(5.0) * r1 + 5.0 / 3.0 * r1**2) * np.exp(-math.sqrt(5.0) * r1)
    k2 = np.cos(2.0 * np.pi * np.abs(np.subtract.outer(x2, x2)) / ls2)
    cov = eta**2 * np.kron(k1, k2)
    cov[np.diag_indices_from(cov)] += sigma**2
    try:
        chol = scipy.linalg.cholesky(cov, lower=True)
    except np.linalg.LinAlgError:
        return -np.inf
    z = scipy.linalg.solve_triangular(chol, y, lower=True)
    loglik = -0.5 * z @ z - np.log(np.diag(chol)).sum() - 0.5 * y.size * np.log(2 * np.pi)
    logprior = (
        stats.gamma.logpdf(ls1, 2, scale=0.5)
        + stats.gamma.logpdf(ls2, 2, scale=0.5)
        + stats.halfnorm.logpdf(eta, scale=2)
        + stats.halfnorm.logpdf(sigma, scale=2)
    )
    return float(loglik + logprior)


def job_t1_reference(y, x1, x2, candidates, optimize) -> dict:
    """Dense log posterior (and its gradient in log-parameters) at each candidate, and the dense MAP."""
    import numpy as np
    import scipy.optimize
    from scipy.stats import multivariate_normal

    y_flat = y.ravel()

    def f(u):
        return _seed_dense_logpost(np.exp(u), x1, x2, y_flat)

    def grad(u, h=1e-5):
        g = np.zeros_like(u)
        for i in range(u.size):
            e = np.zeros_like(u)
            e[i] = h
            g[i] = (f(u + e) - f(u - e)) / (2 * h)
        return g

    out = {"at": {}}
    for name, params in candidates.items():
        u = np.log([params[k] for k in ORDER])
        out["at"][name] = {"logpost": f(u), "grad_norm": float(np.linalg.norm(grad(u)))}
    # Cross-check the Cholesky log-likelihood once against scipy's multivariate_normal.
    first = next(iter(candidates.values()))
    ls1, ls2, eta, sigma = (first[k] for k in ORDER)
    r1 = np.abs(np.subtract.outer(x1, x1)) / ls1
    k1 = (1.0 + math.sqrt(5.0) * r1 + 5.0 / 3.0 * r1**2) * np.exp(-math.sqrt(5.0) * r1)
    k2 = np.cos(2.0 * np.pi * np.abs(np.subtract.outer(x2, x2)) / ls2)
    cov = eta**2 * np.kron(k1, k2) + sigma**2 * np.eye(y_flat.size)
    mvn = multivariate_normal(np.zeros(y_flat.size), cov).logpdf(y_flat)
    chol = _seed_dense_logpost((ls1, ls2, eta, sigma), x1, x2, y_flat)
    from scipy import stats

    prior = (
        stats.gamma.logpdf(ls1, 2, scale=0.5)
        + stats.gamma.logpdf(ls2, 2, scale=0.5)
        + stats.halfnorm.logpdf(eta, scale=2)
        + stats.halfnorm.logpdf(sigma, scale=2)
    )
    out["mvn_check"] = abs(mvn + prior - chol)
    if optimize:
        best = None
        for params in candidates.values():
            u0 = np.log([params[k] for k in ORDER])
            res = scipy.optimize.minimize(
                lambda u: -f(u), u0, jac=lambda u: -grad(u), method="L-BFGS-B", options={"gtol": 1e-7, "ftol": 1e-14}
            )
            if best is None or res.fun < best.fun:
                best = res
        u = best.x
        out["dense_map"] = {
            "params": dict(zip(ORDER, np.exp(u).tolist(), strict=True)),
            "logpost": -float(best.fun),
            "grad_norm": float(np.linalg.norm(grad(u))),
        }
    return out


# ---- Task 2 ------------------------------------------------------------------------------


def _t2_data(n):
    import numpy as np

    x1 = np.linspace(0.0, 1.0, n)
    x2 = np.linspace(0.0, 2.0, n)
    y = np.random.default_rng(20240601).standard_normal((n, n))
    return x1, x2, y


def _t2_points(k):
    """``k`` distinct points (each op evaluation must see new inputs; xkron's Op memoises)."""
    return [{name: value * math.exp(0.01 * i) for name, value in T2_POINT.items()} for i in range(k)]


def _value_inputs(model, names):
    """Map each value variable (log-transformed) to its hyperparameter name in ORDER."""
    by_value = {}
    for rv in model.free_RVs:
        value = model.rvs_to_values[rv]
        if not value.name.endswith("_log__"):
            raise RuntimeError(f"unexpected transform for {rv.name}: {value.name}")
        by_value[rv.name] = value
    return [by_value[names[k]] for k in ORDER]


def _t2_run(build, names, n_points, mode, fd):
    import numpy as np
    import pytensor

    points = _t2_points(n_points + 1)
    with _Timer() as t_compile:
        model = build()
        values = _value_inputs(model, names)
        logp = model.logp()
        grads = pytensor.grad(logp, values)
        fn = pytensor.function(values, [logp, *grads], mode=mode)
        first = fn(*[np.log(points[0][k]) for k in ORDER])
    rss_before = _rss_now_mb()
    walls, cpus, logps, dlogps = [], [], [float(first[0])], [[float(g) for g in first[1:]]]
    for p in points[1:]:
        args = [np.log(p[k]) for k in ORDER]
        with _Timer() as t:
            out = fn(*args)
        walls.append(t.wall)
        cpus.append(t.cpu)
        logps.append(float(out[0]))
        dlogps.append([float(g) for g in out[1:]])
    result = {
        "compile_wall": t_compile.wall,
        "compile_cpu": t_compile.cpu,
        "eval_wall": walls,
        "eval_cpu": cpus,
        "rss_before": rss_before,
        "logp": logps,
        "dlogp": dlogps,
        "points": points,
    }
    if fd:
        logp_fn = pytensor.function(values, logp, mode=mode)
        u = np.log([points[0][k] for k in ORDER])
        h = 1e-4
        grad = []
        for i in range(u.size):
            e = np.zeros_like(u)
            e[i] = h
            grad.append(float((logp_fn(*(u + e)) - logp_fn(*(u - e))) / (2 * h)))
        result["fd_dlogp"] = grad
    return result


def job_t2_pymc(n, n_points) -> dict:

    x1, x2, y = _t2_data(n)

    def build():
        return _pymc_kron_model(x1, x2, y)[0]

    return _t2_run(build, {k: k for k in ORDER}, n_points, mode=None, fd=False)


def job_t2_xkron(n, n_points, fd) -> dict:
    from pymc_extras.prior import Prior

    from xkron.inference.optimize import COMPILE_MODE
    from xkron.models.build import build_marginal_model
    from xkron.spec.grid import Factor
    from xkron.spec.kernels import ExpQuad, Matern52
    from xkron.spec.modelspec import ModelSpec

    x1, x2, y = _t2_data(n)

    def build():
        spec = ModelSpec(
            (Factor(("x1",), ExpQuad(), (x1,)), Factor(("x2",), Matern52(), (x2,))),
            {
                "ls_x1": Prior("Gamma", alpha=2, beta=10),
                "ls_x2": Prior("Gamma", alpha=2, beta=10),
                "amplitude": Prior("HalfNormal", sigma=2),
                "noise": Prior("HalfNormal", sigma=2),
                "mean": 0.0,
            },
        )
        return build_marginal_model(y, spec)

    out = _t2_run(build, XKRON_NAMES, n_points, mode=COMPILE_MODE, fd=fd)
    out["mode"] = "xkron.inference.optimize.COMPILE_MODE"
    return out


# ---- Task 3 ------------------------------------------------------------------------------


def _t3_data(n, m):
    import numpy as np

    rng = np.random.default_rng(314)
    x1 = np.linspace(0.0, 1.0, n)
    x2 = np.linspace(0.0, 2.0, n)
    f = np.sin(2 * np.pi * x1)[:, None] * np.cos(np.pi * x2)[None, :]
    y = f + T34_PARAMS["sigma"] * rng.standard_normal((n, n))
    p1 = rng.uniform(0.0, 1.0, m)
    p2 = rng.uniform(0.0, 2.0, m)
    return x1, x2, y, p1, p2


def _pymc_kron_model(x1, x2, y):
    import pymc as pm

    with pm.Model() as model:
        ls1 = pm.Gamma("ls1", alpha=2, beta=10)
        ls2 = pm.Gamma("ls2", alpha=2, beta=10)
        eta = pm.HalfNormal("eta", sigma=2)
        sigma = pm.HalfNormal("sigma", sigma=2)
        cov_x1 = pm.gp.cov.ExpQuad(1, ls=ls1)
        cov_x2 = eta**2 * pm.gp.cov.Matern52(1, ls=ls2)
        gp = pm.gp.MarginalKron(cov_funcs=[cov_x1, cov_x2])
        gp.marginal_likelihood("y", Xs=[x1[:, None], x2[:, None]], y=y.ravel(), sigma=sigma)
    return model, gp


def _xkron_fixed_fit(x1, x2, y):
    import xarray as xr

    import xkron

    da = xr.DataArray(y, coords={"x1": x1, "x2": x2}, dims=("x1", "x2"))
    p = T34_PARAMS
    return xkron.fit(
        da,
        {"x1": xkron.ExpQuad(ls=p["ls1"]), "x2": xkron.Matern52(ls=p["ls2"])},
        amplitude=p["eta"],
        noise=p["sigma"],
        mean="zero",
        progressbar=False,
    )


def job_t3_pymc(n, m) -> dict:
    import numpy as np
    import pymc  # noqa: F401  (imported before the timer)

    x1, x2, y, p1, p2 = _t3_data(n, m)
    with _Timer() as t:
        model, gp = _pymc_kron_model(x1, x2, y)
        mu, var = gp.predict(np.column_stack([p1, p2]), point=dict(T34_PARAMS), diag=True, model=model)
    return {"wall": t.wall, "cpu": t.cpu, "rss_before": t.rss_before, "mean": np.asarray(mu), "var": np.asarray(var)}


def job_t3_xkron(n, m) -> dict:
    import numpy as np

    # Before the timer: xkron imports PyMC and its priors with its first fit, not with the package
    # (the PyMC side imports pymc before its timer too).
    import pymc_extras.prior  # noqa: F401
    import xarray as xr

    import xkron.api  # noqa: F401

    x1, x2, y, p1, p2 = _t3_data(n, m)
    with _Timer() as t:
        with _Timer() as t_fit:
            fit = _xkron_fixed_fit(x1, x2, y)
        pred = fit.predict(x1=xr.DataArray(p1, dims="point"), x2=xr.DataArray(p2, dims="point"))
        mean, sd = np.asarray(pred["mean"].values), np.asarray(pred["sd"].values)
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "fit_wall": t_fit.wall,
        "rss_before": t.rss_before,
        "mean": mean,
        "sd": sd,
    }


# ---- Task 4 ------------------------------------------------------------------------------


def _t4_data(n):
    import numpy as np

    rng = np.random.default_rng(2718)
    x1 = np.linspace(0.0, 1.0, n)
    x2 = np.linspace(0.0, 2.0, n)
    f = np.sin(2 * np.pi * x1)[:, None] * np.cos(np.pi * x2)[None, :]
    y = f + T34_PARAMS["sigma"] * rng.standard_normal((n, n))
    # New grid: offset by a third of a spacing, 5% beyond each end (inter- and extrapolation).
    new1 = np.linspace(-0.05, 1.05, n) + (x1[1] - x1[0]) / 3
    new2 = np.linspace(-0.10, 2.10, n) + (x2[1] - x2[0]) / 3
    return x1, x2, y, new1, new2


def _t4_cells(n, k):
    import numpy as np

    rng = np.random.default_rng(161)
    return rng.integers(0, n, k), rng.integers(0, n, k)


def job_t4_xkron(n, k_cells) -> dict:
    import numpy as np

    # Before the timer: xkron imports PyMC and its priors with its first fit, not with the package
    # (the PyMC side imports pymc before its timer too).
    import pymc_extras.prior  # noqa: F401

    import xkron.api  # noqa: F401

    x1, x2, y, new1, new2 = _t4_data(n)
    with _Timer() as t:
        with _Timer() as t_fit:
            fit = _xkron_fixed_fit(x1, x2, y)
        pred = fit.predict(x1=new1, x2=new2)
        mean, sd = np.asarray(pred["mean"].values), np.asarray(pred["sd"].values)
    i, j = _t4_cells(n, k_cells)
    return {
        "wall": t.wall,
        "cpu": t.cpu,
        "fit_wall": t_fit.wall,
        "rss_before": t.rss_before,
        "shape": list(mean.shape),
        "finite": bool(np.isfinite(mean).all() and np.isfinite(sd).all()),
        "cell_mean": mean[i, j],
        "cell_sd": sd[i, j],
    }


def job_t4_pymc_cells(n, k_cells) -> dict:
    """PyMC at a sample of the output cells (dense N x k: feasible), as a correctness check."""
    import numpy as np
    import pymc  # noqa: F401  (imported before the timer)

    x1, x2, y, new1, new2 = _t4_data(n)
    i, j = _t4_cells(n, k_cells)
    with _Timer() as t:
        model, gp = _pymc_kron_model(x1, x2, y)
        mu, var = gp.predict(np.column_stack([new1[i], new2[j]]), point=dict(T34_PARAMS), diag=True, model=model)
    return {"wall": t.wall, "cpu": t.cpu, "rss_before": t.rss_before, "mean": np.asarray(mu), "var": np.asarray(var)}


def job_t4_pymc_full(n) -> dict:
    """PyMC on the full output grid (dense N x M); expected to fail under the memory limit."""
    import pymc as pm

    x1, x2, y, new1, new2 = _t4_data(n)
    start = time.perf_counter()
    try:
        model, gp = _pymc_kron_model(x1, x2, y)
        xnew = pm.math.cartesian(new1[:, None], new2[:, None])
        gp.predict(xnew, point=dict(T34_PARAMS), diag=True, model=model)
    except BaseException as exc:
        return {"failed": True, "error": f"{type(exc).__name__}: {exc}"[:300], "wall": time.perf_counter() - start}
    return {"failed": False, "wall": time.perf_counter() - start}


# --------------------------------------------------------------------------------------------
# Parent: orchestration and reporting
# --------------------------------------------------------------------------------------------


def _median(xs):
    xs = [x for x in xs if x is not None and not math.isnan(x)]
    return statistics.median(xs) if xs else float("nan")


def _fmt_s(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.3g} s" if x < 100 else f"{x:.0f} s"


def _fmt_mb(x):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.0f}"


def _ratio(a, b):
    if not a or not b or any(isinstance(v, float) and math.isnan(v) for v in (a, b)):
        return float("nan")
    return a / b


def _fmt_ratio(r):
    return "n/a" if r is None or math.isnan(r) else f"{r:.3g}x"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _mem_total_gb() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return float("nan")


def _load():
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class Report:
    def __init__(self):
        self.rows = []
        self.details = []
        self.raw = {}

    def row(self, task, pymc_t, xk_t, ratio, pymc_mb, xk_mb, target, check):
        self.rows.append([task, pymc_t, xk_t, ratio, pymc_mb, xk_mb, target, check])

    def note(self, text):
        print(text, flush=True)
        self.details.append(text)

    def table(self) -> str:
        head = ["task", "PyMC time", "xkron time", "speed-up", "PyMC peak MB", "xkron peak MB", "target", "check"]
        rows = [head] + [[str(c) for c in r] for r in self.rows]
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        line = "| " + " | ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + " |"
        sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        body = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows[1:]]
        return "\n".join([line, sep, *body])


def _time_cell(res, key="wall", cpu_key="cpu"):
    if not res.get("ok"):
        return "FAILED"
    return f"{_fmt_s(res[key])} [cpu {_fmt_s(res[cpu_key])}]"


def _fail_note(report, label, res):
    if not res.get("ok"):
        report.note(f"  !! {label} failed: {res.get('error')}")
        tb = res.get("traceback")
        if tb:
            report.note("     " + tb.strip().splitlines()[-1])


def _params_str(params):
    return ", ".join(f"{k}={params[k]:.4g}" for k in ORDER)


def task1(report, args, tmp):
    report.note(f"\n== Task 1: seed-example MAP fit (50x30, Matern52 x Cosine), load {_load()}")
    seed = run_child(job_seed_data, compiledir=os.path.join(tmp, "seed-data"))
    if not seed.get("ok"):
        _fail_note(report, "seed data", seed)
        return
    data = {"y": seed["y"], "x1": seed["x1"], "x2": seed["x2"]}
    runs = {}
    for side, job, extra in (("pymc", job_t1_pymc, {}), ("xkron", job_t1_xkron, {"restarts": 2})):
        cdir = os.path.join(tmp, f"t1-{side}")
        cold = run_child(job, compiledir=cdir, **data, **extra)
        warm = [run_child(job, compiledir=cdir, **data, **extra) for _ in range(args.repeat)]
        runs[side] = (cold, warm)
        _fail_note(report, f"task 1 {side} (cold)", cold)
        for w in warm:
            _fail_note(report, f"task 1 {side} (warm)", w)
    xk1 = run_child(job_t1_xkron, compiledir=os.path.join(tmp, "t1-xkron"), restarts=0, **data)

    pm_cold, pm_warm = runs["pymc"]
    xk_cold, xk_warm = runs["xkron"]
    candidates = {}
    for name, res in (("PyMC", pm_cold), ("PyMC warm", (pm_warm or [{}])[0]), ("xkron", xk_cold)):
        if res.get("ok"):
            candidates[name] = res["params"]
    if xk1.get("ok"):
        candidates["xkron restarts=0"] = xk1["params"]
    candidates["truth"] = {"ls1": 0.8, "ls2": 1.0, "eta": 1.0, "sigma": 0.5}
    ref = run_child(job_t1_reference, **data, candidates=candidates, optimize=True)
    _fail_note(report, "task 1 dense reference", ref)
    report.raw["task1"] = {"pymc": runs["pymc"], "xkron": runs["xkron"], "xkron_restarts0": xk1, "reference": ref}

    best = ref.get("dense_map", {}).get("logpost", float("nan")) if ref.get("ok") else float("nan")

    def gap(name):
        if not ref.get("ok") or name not in ref["at"]:
            return float("nan")
        return ref["at"][name]["logpost"] - best

    ok_pm = [w for w in pm_warm if w.get("ok")]
    ok_xk = [w for w in xk_warm if w.get("ok")]
    cold_pm = [pm_cold] if pm_cold.get("ok") else []
    cold_xk = [xk_cold] if xk_cold.get("ok") else []
    for label, pm_res, xk_res, pm_name in (
        ("1 seed MAP fit, cold compile cache", cold_pm, cold_xk, "PyMC"),
        (f"1 seed MAP fit, warm cache (median of {args.repeat})", ok_pm, ok_xk, "PyMC warm"),
    ):
        check = f"dense logpost: PyMC {best + gap(pm_name):.2f}, xkron {best + gap('xkron'):.2f}, dense max {best:.2f}"
        pm_wall = _median([r["wall"] for r in pm_res])
        xk_wall = _median([r["wall"] for r in xk_res])
        pm_cpu = _median([r["cpu"] for r in pm_res])
        xk_cpu = _median([r["cpu"] for r in xk_res])
        ratio = _ratio(pm_wall, xk_wall)
        at_opt = abs(gap("xkron")) < 1e-3
        target = f">=10x & at optimum: {'yes' if ratio >= 10 and at_opt else 'NO'}"
        report.row(
            label,
            f"{_fmt_s(pm_wall)} [cpu {_fmt_s(pm_cpu)}]",
            f"{_fmt_s(xk_wall)} [cpu {_fmt_s(xk_cpu)}]",
            f"{_fmt_ratio(ratio)} [cpu {_fmt_ratio(_ratio(pm_cpu, xk_cpu))}]",
            _fmt_mb(max([r["peak_mb"] for r in pm_res], default=float("nan"))),
            _fmt_mb(max([r["peak_mb"] for r in xk_res], default=float("nan"))),
            target,
            check,
        )
    report.note("  Parameters and the dense log posterior (log p(y|theta) + log priors, no Jacobian) at each:")
    for name, params in candidates.items():
        at = ref["at"].get(name, {}) if ref.get("ok") else {}
        report.note(
            f"    {name:<17} {_params_str(params)}  logpost={at.get('logpost', float('nan')):.4f}"
            f"  |grad_log|={at.get('grad_norm', float('nan')):.3g}"
        )
    if ref.get("ok"):
        dm = ref["dense_map"]
        report.note(
            f"    {'dense MAP (scipy)':<17} {_params_str(dm['params'])}  logpost={dm['logpost']:.4f}"
            f"  |grad_log|={dm['grad_norm']:.3g}"
        )
        report.note(
            f"    (Cholesky log posterior vs scipy multivariate_normal + priors: |diff| = {ref['mvn_check']:.2e})"
        )
    for side, res in (("PyMC", pm_cold), ("xkron", xk_cold)):
        if res.get("ok"):
            extra = f", {res['n_starts']} starts ({res['n_starts_at_best']} at best)" if "n_starts" in res else ""
            report.note(
                f"  {side} optimiser: success={res['success']} ({res['message']}), nit={res['nit']}{extra}; "
                f"its own logp={res['reported_logp']:.4f}"
            )
    for label, res_list in (("PyMC", [pm_cold, *pm_warm]), ("xkron", [xk_cold, *xk_warm])):
        walls = ", ".join(_fmt_s(r["wall"]) if r.get("ok") else "fail" for r in res_list)
        report.note(f"  {label} wall times, cold then warm: {walls}")
    pm_params = {tuple(round(r["params"][k], 6) for k in ORDER) for r in [pm_cold, *pm_warm] if r.get("ok")}
    if len(pm_params) > 1:
        report.note(f"  NOTE: PyMC's MAP differs between runs of the same model and data: {sorted(pm_params)}")
    if xk1.get("ok"):
        report.note(
            f"  xkron with restarts=0 (one start): {_fmt_s(xk1['wall'])} [cpu {_fmt_s(xk1['cpu'])}], "
            f"logp={xk1['reported_logp']:.4f}"
        )


def task2(report, args, tmp, sizes):
    import numpy as np

    n = sizes["t2_n"]
    report.note(f"\n== Task 2: logp + dlogp on a {n}x{n} grid (ExpQuad x Matern52, random data), load {_load()}")
    res = {}
    for side in ("pymc", "xkron"):
        cdir = os.path.join(tmp, f"t2-{side}")
        runs = []
        for attempt in ("cold", "warm"):
            if side == "pymc":
                r = run_child(job_t2_pymc, compiledir=cdir, n=n, n_points=args.repeat)
            else:
                r = run_child(job_t2_xkron, compiledir=cdir, n=n, n_points=args.repeat, fd=(attempt == "cold"))
            _fail_note(report, f"task 2 {side} ({attempt})", r)
            runs.append(r)
        res[side] = runs
    report.raw["task2"] = res
    pm_runs = [r for r in res["pymc"] if r.get("ok")]
    xk_runs = [r for r in res["xkron"] if r.get("ok")]
    labels = ("cold", "warm")
    for idx, label in enumerate(labels):
        pm_r, xk_r = res["pymc"][idx], res["xkron"][idx]
        report.row(
            f"2 compile+first logp/dlogp {n}x{n}, {label} cache",
            _time_cell(pm_r, "compile_wall", "compile_cpu"),
            _time_cell(xk_r, "compile_wall", "compile_cpu"),
            _fmt_ratio(_ratio(pm_r.get("compile_wall"), xk_r.get("compile_wall"))),
            _fmt_mb(pm_r.get("peak_mb")),
            _fmt_mb(xk_r.get("peak_mb")),
            "",
            "",
        )
    pm_wall = _median([w for r in pm_runs for w in r["eval_wall"]])
    xk_wall = _median([w for r in xk_runs for w in r["eval_wall"]])
    pm_cpu = _median([w for r in pm_runs for w in r["eval_cpu"]])
    xk_cpu = _median([w for r in xk_runs for w in r["eval_cpu"]])
    ratio = _ratio(pm_wall, xk_wall)
    check = "n/a"
    if pm_runs and xk_runs:
        lp_pm = np.array([lp for r in pm_runs for lp in r["logp"]])
        lp_xk = np.array([lp for r in xk_runs for lp in r["logp"]])
        rel_lp = float(np.max(np.abs(lp_pm - lp_xk) / np.abs(lp_xk)))
        g_pm = np.array(pm_runs[0]["dlogp"][0])
        g_xk = np.array(xk_runs[0]["dlogp"][0])
        fd = np.array(xk_runs[0].get("fd_dlogp", [np.nan] * 4))
        err_pm = float(np.max(np.abs(g_pm - fd) / np.maximum(np.abs(fd), 1.0)))
        err_xk = float(np.max(np.abs(g_xk - fd) / np.maximum(np.abs(fd), 1.0)))
        check = f"max rel diff logp {rel_lp:.1e}; dlogp vs FD max rel err: PyMC {err_pm:.1e}, xkron {err_xk:.1e}"
        report.note("  Gradient at the first point (d logp / d log theta; value space, Jacobian included):")
        report.note(f"    point: {_params_str(pm_runs[0]['points'][0])}")
        for name, g in (("PyMC", g_pm), ("xkron", g_xk), ("central FD", fd)):
            report.note(f"    {name:<11} " + ", ".join(f"{k}={v:.6g}" for k, v in zip(ORDER, g, strict=True)))
    n_evals = sum(len(r["eval_wall"]) for r in xk_runs)
    report.row(
        f"2 logp+dlogp per evaluation {n}x{n} (median of {n_evals})",
        f"{_fmt_s(pm_wall)} [cpu {_fmt_s(pm_cpu)}]",
        f"{_fmt_s(xk_wall)} [cpu {_fmt_s(xk_cpu)}]",
        f"{_fmt_ratio(ratio)} [cpu {_fmt_ratio(_ratio(pm_cpu, xk_cpu))}]",
        _fmt_mb(max([r["peak_mb"] for r in pm_runs], default=float("nan"))),
        _fmt_mb(max([r["peak_mb"] for r in xk_runs], default=float("nan"))),
        f">=2x: {'yes' if ratio >= 2 else 'NO'}",
        check,
    )
    for label, runs in (("PyMC", pm_runs), ("xkron", xk_runs)):
        evals = ", ".join(f"{w:.3f}" for r in runs for w in r["eval_wall"])
        report.note(f"  {label} per-evaluation wall times (s): {evals}")
    if xk_runs:
        report.note(
            f"  xkron compiled in PyTensor mode {xk_runs[0]['mode']} (what xkron.fit uses); PyMC in its default"
        )


def task3(report, args, tmp, sizes):
    import numpy as np

    n, m = sizes["t3_n"], sizes["t3_m"]
    report.note(f"\n== Task 3: mean + sd at {m} random points from a {n}x{n} training grid, load {_load()}")
    pm_r = run_child(job_t3_pymc, compiledir=os.path.join(tmp, "t3-pymc"), n=n, m=m)
    _fail_note(report, "task 3 PyMC", pm_r)
    xk_rs = [run_child(job_t3_xkron, compiledir=os.path.join(tmp, "t3-xkron"), n=n, m=m) for _ in range(args.repeat)]
    for r in xk_rs:
        _fail_note(report, "task 3 xkron", r)
    report.raw["task3"] = {"pymc": pm_r, "xkron": xk_rs}
    xk_ok = [r for r in xk_rs if r.get("ok")]
    xk_wall = _median([r["wall"] for r in xk_ok])
    xk_cpu = _median([r["cpu"] for r in xk_ok])
    xk_peak = max([r["peak_mb"] for r in xk_ok], default=float("nan"))
    check = "n/a"
    if pm_r.get("ok") and xk_ok:
        x = xk_ok[0]
        var_pm = np.asarray(pm_r["var"])
        sd_pm = np.sqrt(np.clip(var_pm, 0.0, None))
        d_mean = float(np.max(np.abs(pm_r["mean"] - x["mean"])))
        d_sd = float(np.max(np.abs(sd_pm - x["sd"])))
        check = f"max|dmean| {d_mean:.1e}, max|dsd| {d_sd:.1e} (mean range +-{np.max(np.abs(x['mean'])):.2f})"
        n_neg = int(np.sum(var_pm < 0))
        report.note(
            f"  agreement: max|mean_PyMC - mean_xkron| = {d_mean:.2e}, max|sd_PyMC - sd_xkron| = {d_sd:.2e}; "
            f"sd range [{x['sd'].min():.3g}, {x['sd'].max():.3g}]; PyMC variances < 0: {n_neg}"
        )
    ratio = _ratio(pm_r.get("wall"), xk_wall)
    met = ratio >= 100 and xk_peak <= 500
    report.row(
        f"3 mean+sd at {m} points, {n}x{n} train",
        _time_cell(pm_r),
        f"{_fmt_s(xk_wall)} [cpu {_fmt_s(xk_cpu)}]",
        f"{_fmt_ratio(ratio)} [cpu {_fmt_ratio(_ratio(pm_r.get('cpu'), xk_cpu))}]",
        _fmt_mb(pm_r.get("peak_mb")),
        _fmt_mb(xk_peak),
        f">=100x & <=500 MB: {'yes' if met else 'NO'}",
        check,
    )
    if pm_r.get("ok"):
        report.note(
            f"  PyMC: model build + gp.predict (compiles, cold cache), one run: {_fmt_s(pm_r['wall'])}; "
            f"RSS before {pm_r['rss_before']:.0f} MB, peak {pm_r['peak_mb']:.0f} MB"
        )
    for r in xk_ok:
        report.note(
            f"  xkron: fit (fixed) {_fmt_s(r['fit_wall'])} + predict {_fmt_s(r['wall'] - r['fit_wall'])}; "
            f"RSS before {r['rss_before']:.0f} MB, peak {r['peak_mb']:.0f} MB (+{r['peak_mb'] - r['rss_before']:.0f})"
        )


def task4(report, args, tmp, sizes):
    import numpy as np

    n, k = sizes["t4_n"], sizes["t4_cells"]
    N = M = n * n
    report.note(f"\n== Task 4: {n}x{n} output grid from a {n}x{n} training grid, load {_load()}")
    xk_rs = [
        run_child(job_t4_xkron, compiledir=os.path.join(tmp, "t4-xkron"), n=n, k_cells=k) for _ in range(args.repeat)
    ]
    for r in xk_rs:
        _fail_note(report, "task 4 xkron", r)
    pm_cells = run_child(job_t4_pymc_cells, compiledir=os.path.join(tmp, "t4-pymc"), n=n, k_cells=k)
    _fail_note(report, "task 4 PyMC subset", pm_cells)
    report.raw["task4"] = {"xkron": xk_rs, "pymc_cells": pm_cells}
    xk_ok = [r for r in xk_rs if r.get("ok")]
    xk_wall = _median([r["wall"] for r in xk_ok])
    xk_cpu = _median([r["cpu"] for r in xk_ok])
    dense_gb = N * M * 8 / 1e9
    check = "n/a"
    if pm_cells.get("ok") and xk_ok:
        x = xk_ok[0]
        sd_pm = np.sqrt(np.clip(np.asarray(pm_cells["var"]), 0.0, None))
        d_mean = float(np.max(np.abs(pm_cells["mean"] - x["cell_mean"])))
        d_sd = float(np.max(np.abs(sd_pm - x["cell_sd"])))
        check = f"vs PyMC at {k} sampled cells: max|dmean| {d_mean:.1e}, max|dsd| {d_sd:.1e}; finite: {x['finite']}"
    report.row(
        f"4 {n}x{n} grid -> {n}x{n} grid",
        f"n/a (dense NxM: would need {dense_gb:,.0f} GB)",
        f"{_fmt_s(xk_wall)} [cpu {_fmt_s(xk_cpu)}]",
        "n/a",
        "n/a",
        _fmt_mb(max([r["peak_mb"] for r in xk_ok], default=float("nan"))),
        f"<10 s: {'yes' if xk_wall < 10 else 'NO'}",
        check,
    )
    report.note(
        f"  PyMC's predict forms K(X, Xnew), an N x M = {N:,} x {M:,} float64 matrix ({dense_gb:,.0f} GB), "
        "and a second one of that size (A = kron_dot(Q^T, Knm)); it is not run by default."
    )
    for r in xk_ok:
        report.note(
            f"  xkron: fit (fixed) {_fmt_s(r['fit_wall'])} + predict {_fmt_s(r['wall'] - r['fit_wall'])}; "
            f"RSS before {r['rss_before']:.0f} MB, peak {r['peak_mb']:.0f} MB; output {r['shape']}"
        )
    if pm_cells.get("ok"):
        report.note(
            f"  PyMC check at {k} cells (dense N x {k}): {_fmt_s(pm_cells['wall'])}, peak {pm_cells['peak_mb']:.0f} MB"
        )
    if args.run_pymc_oom:
        limit = args.oom_limit_gb
        report.note(f"  --run-pymc-oom: PyMC on the full grid in a child with RLIMIT_AS = {limit} GB ...")
        full = run_child(job_t4_pymc_full, compiledir=os.path.join(tmp, "t4-pymc"), mem_limit_gb=limit, n=n)
        report.raw["task4"]["pymc_full"] = full
        if not full.get("ok"):
            report.note(f"    PyMC child failed outright: {full.get('error')}")
        elif full["failed"]:
            report.note(f"    PyMC failed after {_fmt_s(full['wall'])}: {full['error']}; peak {full['peak_mb']:.0f} MB")
        else:
            report.note(f"    PyMC finished in {_fmt_s(full['wall'])} (peak {full['peak_mb']:.0f} MB)")


def _to_jsonable(obj):
    try:
        import numpy as np
    except ImportError:  # pragma: no cover
        np = None
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if np is not None and isinstance(obj, np.ndarray):
        return obj.tolist() if obj.size <= 200 else f"<array shape {obj.shape}>"
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    return obj


def print_header(script: str, mode: str, info: dict) -> None:
    """Print the run's header: script, date, mode, versions, machine, BLAS, PyTensor modes."""
    v = info["versions"]
    cpus = os.cpu_count()
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    now = datetime.datetime.now().isoformat(timespec="seconds")
    print(f"{script}  {now}  mode={mode}")
    print(
        f"python {v['python']}, pymc {v['pymc']}, pytensor {v['pytensor']}, numpy {v['numpy']}, scipy {v['scipy']}, "
        f"xarray {v['xarray']}, xkron {v['xkron']}"
    )
    print(f"{_cpu_model()}; CPUs: {cpus} (usable {affinity}); memory {_mem_total_gb():.0f} GB")
    print(f"BLAS in children: {info['blas']}; env {info['env']}")
    print(f"PyTensor default linker: {info['pytensor_linker']}; xkron compile mode: {info['xkron_mode']}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (300x300 / 100x100 + 2000 points / 300x300)")
    parser.add_argument("--tasks", default="1,2,3,4", help="comma-separated task numbers (default 1,2,3,4)")
    parser.add_argument("--repeat", type=int, default=3, help="timed repetitions (see README; default 3)")
    parser.add_argument("--run-pymc-oom", action="store_true", help="task 4: try PyMC on the full grid under RLIMIT_AS")
    parser.add_argument("--oom-limit-gb", type=float, default=8.0, help="RLIMIT_AS for --run-pymc-oom (default 8 GB)")
    parser.add_argument("--json", metavar="PATH", help="also write the raw results as JSON")
    args = parser.parse_args(argv)
    tasks = sorted({int(t) for t in args.tasks.split(",") if t.strip()})
    if not set(tasks) <= {1, 2, 3, 4} or args.repeat < 1:
        parser.error("--tasks takes numbers from 1-4 and --repeat must be >= 1")

    # Single-threaded BLAS everywhere: children inherit this environment and read it before numpy loads.
    for var in BLAS_THREAD_VARS:
        os.environ[var] = "1"
    sizes = SIZES["quick" if args.quick else "full"]

    start = time.perf_counter()
    info = run_child(job_env)
    if not info.get("ok"):
        print("environment probe failed:", info.get("error"))
        return 1
    print_header("bench_core.py", "quick" if args.quick else "full", info)
    print(f"load average (1/5/15 min) at start: {_load()}; repeat={args.repeat}; tasks={tasks}")

    report = Report()
    tmp = tempfile.mkdtemp(prefix="xkron-bench-")
    try:
        if 1 in tasks:
            task1(report, args, tmp)
        if 2 in tasks:
            task2(report, args, tmp, sizes)
        if 3 in tasks:
            task3(report, args, tmp, sizes)
        if 4 in tasks:
            task4(report, args, tmp, sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    finish(report, info, args, start, "speed-up = PyMC / xkron")
    return 0


def show(label: str, result: dict, width: int = 58) -> None:
    """Print one child's result dict on a line (or its error), for the simpler benchmark scripts."""
    if not result.get("ok"):
        print(f"{label:{width}s} FAILED: {result.get('error')}", flush=True)
        return
    keep = {k: v for k, v in result.items() if k not in ("ok", "traceback")}
    print(f"{label:{width}s} {keep}", flush=True)


def finish(report, info, args, start: float, ratio_note: str) -> None:
    """Print the table, the legend and the totals; write the JSON if asked (shared by bench_latent)."""
    print("\n" + report.table())
    print(
        f"\ntimes: wall [process CPU]; {ratio_note}; peak MB = the child's peak RSS "
        "(whole process: interpreter, imports, data and the call)."
    )
    print(f"total benchmark time {time.perf_counter() - start:.0f} s; load average at end: {_load()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(_to_jsonable({"info": info, "rows": report.rows, "raw": report.raw}), f, indent=1, default=str)


if __name__ == "__main__":
    sys.exit(main())
