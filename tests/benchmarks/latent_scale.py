"""Task 4 of ``bench_latent.py`` (issue 14): non-Gaussian fields at scale, Laplace against the samplers.

    .venv/bin/python tests/benchmarks/bench_latent.py --tasks 4 [--scale-sizes 1e4,1e5] \\
        [--likelihoods poisson,bernoulli] [--peers latentkron,nuts,advi] [--peer-budget 30] [--scale-thin 2]

``--scale-thin k`` fits the hyperparameters on every k-th cell along each dim and the field on the
whole grid (``fit(subsample=...)``), the route for grids where the Laplace MAP itself is too slow.

Simulated fields on three-factor grids (Matern52 in every dim, lengthscale a fifth of the dim,
amplitude 0.8; mean 0.5 for Poisson counts, 0 for Bernoulli events), 20% of the cells unobserved:
those are the held-out cells, whose simulated values the fits never see. Grids: 10⁴ = 20×25×20,
10⁵ = 40×50×50, 10⁶ = 100×100×100. Every fit gets Matern52 kernels with xkron's default priors.

Per grid and likelihood, each in its own child process (peak RSS = the child's):

- xkron ``fit(method="laplace")`` then ``predict()`` of the mean and sd on the whole grid (timed
  separately); the held-out log loss of the posterior predictive (Poisson: Gauss–Hermite over the
  latent normal, 40 nodes; Bernoulli: the response-scale mean, exact) against the generating model's
  (``log p(y | f_true)``); the 90% interval coverage of ``f_true`` at every cell;
- the peers, each stopped after ``--peer-budget`` minutes (the issue's 30 by default): PyMC's
  ``pm.gp.LatentKron`` with ``pm.sample`` (2 chains, 500 + 500, one core), xkron's own NUTS on
  ``(θ, v)`` with the same settings, and xkron's ADVI (its defaults); each scored as the Laplace fit
  (log loss from the mean and sd of the linear predictor over the draws), and the samplers' largest
  R-hat and smallest bulk ESS over the hyperparameters.

Targets (issue 14): 10⁵ cells fitted and predicted with sd in under 2 minutes, 10⁶ in under 20, peak
memory under 4 GB, held-out log loss within 1% of the generating model's.
"""

from __future__ import annotations

import os
import time

import bench_core as core

SHAPES = {"1e4": (20, 25, 20), "1e5": (40, 50, 50), "1e6": (100, 100, 100)}
MEANS = {"poisson": 0.5, "bernoulli": 0.0}
AMPLITUDE = 0.8
MISSING = 0.2
NUTS = {"chains": 2, "tune": 500, "draws": 500, "cores": 1}


def matern_field(shape, rng):
    """Integer coordinates per dim and a unit-variance field with Matern52 per dim, lengthscale a fifth of the dim."""
    import numpy as np

    coords = [np.arange(n, dtype=float) for n in shape]
    f = rng.standard_normal(shape)
    for axis, x in enumerate(coords):
        r = np.abs(x[:, None] - x[None, :]) / (len(x) / 5)
        K = (1 + np.sqrt(5) * r + 5 * r**2 / 3) * np.exp(-np.sqrt(5) * r)
        L = np.linalg.cholesky(K + 1e-8 * np.eye(len(x)))
        f = np.moveaxis(np.tensordot(L, f, axes=([1], [axis])), 0, axis)
    return coords, f


def simulate(shape, likelihood, seed=0):
    """Coordinates, the latent field, the full simulated data and the observed mask (numpy)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    coords, f = matern_field(shape, rng)
    f = MEANS[likelihood] + AMPLITUDE * f
    if likelihood == "poisson":
        y = rng.poisson(np.exp(f)).astype(float)
    else:
        y = (rng.random(shape) < 1 / (1 + np.exp(-f))).astype(float)
    return coords, f, y, rng.random(shape) >= MISSING


def _data_array(coords, y, observed):
    import numpy as np
    import xarray as xr

    dims = ("d0", "d1", "d2")
    return xr.DataArray(np.where(observed, y, np.nan), coords=dict(zip(dims, coords, strict=True)), dims=dims)


def _log_loss(likelihood, y, mean, sd, f_true):
    """Held-out mean negative log predictive density, and the generating model's on the same cells."""
    import numpy as np
    import scipy.special as sc
    import scipy.stats as st

    if likelihood == "poisson":
        nodes, weights = np.polynomial.hermite_e.hermegauss(40)
        f = mean[:, None] + sd[:, None] * nodes[None, :]
        logp = st.poisson.logpmf(y[:, None], np.exp(f))
        model = sc.logsumexp(logp, b=weights[None, :] / weights.sum(), axis=1)
        truth = st.poisson.logpmf(y, np.exp(f_true))
    else:
        p = np.clip(mean, 1e-300, 1 - 1e-16)  # the response-scale mean is the predictive probability
        model = np.where(y > 0, np.log(p), np.log1p(-p))
        truth = np.where(y > 0, -np.logaddexp(0, -f_true), -np.logaddexp(0, f_true))
    return float(-np.mean(model)), float(-np.mean(truth))


def job_laplace(shape, likelihood, seed=0, thin=None) -> dict:
    import numpy as np

    import xkron

    coords, f_true, y, observed = simulate(shape, likelihood, seed)
    da = _data_array(coords, y, observed)
    kernels = {d: xkron.Matern52() for d in da.dims}
    subsample = {d: thin for d in da.dims} if thin else None
    with core._Timer() as fit_t:
        fit = xkron.fit(da, kernels, likelihood=likelihood, method="laplace", progressbar=False, subsample=subsample)
    with core._Timer() as pred_t:
        latent = fit.predict()
        mean, sd = latent["mean"].values, latent["sd"].values
    response = fit.predict(scale="response")["mean"].values if likelihood == "bernoulli" else None
    return {
        "fit_wall": fit_t.wall, "fit_cpu": fit_t.cpu, "predict_wall": pred_t.wall, "predict_cpu": pred_t.cpu,
        **_scores(likelihood, y, observed, f_true, mean, sd, response),
        "params": {k: float(v) for k, v in fit.params.items()}, "n_eval": fit.optimizer.get("n_eval"),
        "newton": fit.optimizer["laplace"], "n_cells": int(np.prod(shape)),
    }  # fmt: skip


def _scores(likelihood, y, observed, f_true, mean, sd, response=None) -> dict:
    """Held-out log loss (and the generating model's) and the 90% coverage of ``f_true`` at every cell."""
    import numpy as np

    held = ~observed
    m = response[held] if response is not None else mean[held]
    loss, truth = _log_loss(likelihood, y[held], m, sd[held], f_true[held])
    return {"log_loss": loss, "truth_log_loss": truth,
            "coverage90": float(np.mean(np.abs(mean - f_true) <= 1.6448536 * sd))}  # fmt: skip


def _convergence(draws: dict) -> dict:
    """Largest R-hat and smallest bulk ESS over the hyperparameters' ``(chain, draw)`` arrays."""
    import arviz as az

    return {"rhat_max": max(float(az.rhat(v)) for v in draws.values()),
            "ess_min": min(float(az.ess(v, method="bulk")) for v in draws.values())}  # fmt: skip


def job_xkron_sampler(shape, likelihood, method, seed=0) -> dict:
    import xkron

    coords, f_true, y, observed = simulate(shape, likelihood, seed)
    da = _data_array(coords, y, observed)
    kernels = {d: xkron.Matern52() for d in da.dims}
    extra = NUTS if method == "nuts" else {}
    with core._Timer() as fit_t:
        fit = xkron.fit(da, kernels, likelihood=likelihood, method=method, progressbar=False, random_seed=seed,
                        **extra)  # fmt: skip
    latent = fit.predict()
    response = fit.predict(scale="response")["mean"].values if likelihood == "bernoulli" else None
    mean, sd = latent["mean"].values, latent["sd"].values
    out = {"fit_wall": fit_t.wall, "fit_cpu": fit_t.cpu, **_scores(likelihood, y, observed, f_true, mean, sd, response)}
    if method == "nuts":
        out.update(_convergence({k: fit.params[k].transpose("chain", "draw").values for k in fit.params.data_vars}))
    return out


def job_latentkron(shape, likelihood, seed=0) -> dict:
    import numpy as np
    import pymc as pm

    coords, f_true, y, observed = simulate(shape, likelihood, seed)
    index = np.flatnonzero(observed.ravel())
    with core._Timer() as fit_t:
        with pm.Model():
            covs = [
                pm.gp.cov.Matern52(1, ls=pm.InverseGamma(f"ls{i}", alpha=5.0, beta=len(x) / 5 * 4))
                for i, x in enumerate(coords)
            ]
            eta = pm.HalfNormal("eta", 1.0)
            gp = pm.gp.LatentKron(cov_funcs=[eta**2 * covs[0], *covs[1:]])
            f = gp.prior("f", Xs=[x[:, None] for x in coords])
            mu = pm.Normal("mu", 0.0, 1.0)
            if likelihood == "poisson":
                pm.Poisson("y", mu=pm.math.exp(mu + f[index]), observed=y.ravel()[index])
            else:
                pm.Bernoulli("y", logit_p=mu + f[index], observed=y.ravel()[index])
            idata = pm.sample(random_seed=seed, progressbar=False, **NUTS)
    post = idata["posterior"]
    g = (post["mu"].values[..., None] + post["f"].values).reshape(-1, *shape)  # the linear predictor's draws
    response = (1 / (1 + np.exp(-g))).mean(axis=0) if likelihood == "bernoulli" else None
    hyper = {k: post[k].transpose("chain", "draw").values for k in ("ls0", "ls1", "ls2", "eta", "mu")}
    return {"fit_wall": fit_t.wall, "fit_cpu": fit_t.cpu, **_convergence(hyper),
            **_scores(likelihood, y, observed, f_true, g.mean(axis=0), g.std(axis=0), response)}  # fmt: skip


def _peer_scores(p: dict) -> str:
    """A peer's held-out log loss against the generating model's, coverage, and convergence if it sampled."""
    text = (f" (log loss {100 * (p['log_loss'] / p['truth_log_loss'] - 1):+.2f}% vs truth, f 90% cover "
            f"{p['coverage90']:.3f}")  # fmt: skip
    if "rhat_max" in p:
        text += f", R-hat max {p['rhat_max']:.3f}, ESS min {p['ess_min']:.0f}"
    return text + ")"


def task4(report, args, tmp):
    sizes = [s.strip() for s in args.scale_sizes.split(",") if s.strip()]
    likelihoods = [s.strip() for s in args.likelihoods.split(",") if s.strip()]
    peers = [s.strip() for s in args.peers.split(",") if s.strip()]
    budget = 60 * args.peer_budget
    report.note(
        f"\n== Task 4: Laplace at scale; peers {peers or 'none'} within {args.peer_budget} min, load {core._load()}"
    )
    for size in sizes:
        shape = SHAPES[size]
        for lik in likelihoods:
            r = core.run_child(job_laplace, compiledir=os.path.join(tmp, f"t4-{size}-{lik}"), shape=shape,
                               likelihood=lik, thin=args.scale_thin)  # fmt: skip
            core._fail_note(report, f"task 4 laplace {size} {lik}", r)
            report.raw[f"task4-{size}-{lik}-laplace"] = r
            peer_cells = []
            for peer in peers:
                job = job_latentkron if peer == "latentkron" else job_xkron_sampler
                kwargs = {} if peer == "latentkron" else {"method": peer}
                start = time.perf_counter()
                p = core.run_child(job, compiledir=os.path.join(tmp, f"t4-{peer}"), timeout=budget, shape=shape,
                                   likelihood=lik, **kwargs)  # fmt: skip
                report.raw[f"task4-{size}-{lik}-{peer}"] = p
                took = p["fit_wall"] if p.get("ok") else time.perf_counter() - start
                peer_cells.append(f"{peer} {core._fmt_s(took)}" + (_peer_scores(p) if p.get("ok") else
                                                                   f" ({p['error'][:60]})"))  # fmt: skip
            if not r.get("ok"):
                continue
            total = r["fit_wall"] + r["predict_wall"]
            target = {"1e5": 120, "1e6": 1200}.get(size)
            report.row(
                f"4 {lik} {size} cells {shape}" + (f", subsample every {args.scale_thin}" if args.scale_thin else ""),
                "; ".join(peer_cells) or "not run",
                f"fit {core._fmt_s(r['fit_wall'])} + predict {core._fmt_s(r['predict_wall'])}",
                "n/a",
                "n/a",
                core._fmt_mb(r["peak_mb"]),
                f"{'<' + str(target) + ' s: ' + ('yes' if total < target else 'NO') if target else ''}"
                f" mem<4GB: {'yes' if r['peak_mb'] < 4096 else 'NO'}",
                f"log loss {r['log_loss']:.4f} vs truth {r['truth_log_loss']:.4f} "
                f"({100 * (r['log_loss'] / r['truth_log_loss'] - 1):+.2f}%), f 90% cover {r['coverage90']:.3f}",
            )
            report.note(f"  laplace {size} {lik}: params {r['params']}, {r['n_eval']} evaluations, mode {r['newton']}")
