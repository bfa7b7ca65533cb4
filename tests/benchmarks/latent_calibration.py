"""Task 6 of ``bench_latent.py`` (issue 14): calibration of ``fit(method="laplace")`` for every likelihood.

    .venv/bin/python tests/benchmarks/bench_latent.py --tasks 6 [--seeds 1,2,3]

Simulated fields on a 12×15×15 grid (2,700 cells; Matern52 in every dim with lengthscale a fifth
of the dim, amplitude 0.8), 20% of the cells held out (NaN in the fit), one field per seed and
likelihood, each fit in its own child process with xkron's default kernels and priors:

======================  =====================================================  =====
likelihood              data                                                   mean
======================  =====================================================  =====
gaussian                ``f + 0.3 ε``                                           0
student_t               ``f + 0.3 t₄``                                          0
poisson                 ``Poisson(exp f)``                                      0.5
negative_binomial       ``NB(mu=exp f, alpha=5)``                               0.5
bernoulli               ``Bernoulli(expit f)``                                  0
binomial                ``Binomial(10, expit f)``                               0
gamma                   ``Gamma(shape 3, mean exp f)``                          0
======================  =====================================================  =====

Per fit: the share of all 2,700 cells whose true ``f`` lies in the Laplace 90% interval
(``predict()``'s mean ± 1.645 sd), and the probability integral transform of each held-out
value under the posterior predictive, from 400 joint draws of ``fit.sample(observed=True)``:
``PIT = P(Y < y) + U · P(Y = y)`` with ``U`` uniform (randomised for counts, so that it is
uniform for a calibrated predictive; Czado, Gneiting & Held 2009). Pooled over the seeds, the
check is the Kolmogorov-Smirnov distance of the PITs from uniform and the largest relative
deviation of a 10-bin histogram from flat. The PITs of one field share its hyperparameter
estimate and are spatially correlated, so the KS p-value printed is optimistic; the distance is
the number to read (about 1.36/√n at 5% for independent values).

Targets (issue 14): 90% intervals of the latent field cover 87-93% of the truth; PIT roughly uniform.
"""

from __future__ import annotations

import os

import bench_core as core

SHAPE = (12, 15, 15)
AMPLITUDE = 0.8
MISSING = 0.2
DRAWS = 400
SETTINGS = {
    "gaussian": ({"noise": 0.3}, 0.0),
    "student_t": ({"noise": 0.3, "nu": 4.0}, 0.0),
    "poisson": ({}, 0.5),
    "negative_binomial": ({"dispersion": 5.0}, 0.5),
    "bernoulli": ({}, 0.0),
    "binomial": ({}, 0.0),
    "gamma": ({"shape": 3.0}, 0.0),
}
TRIALS = 10


def _likelihood(name):
    import xkron

    classes = {"gaussian": xkron.Gaussian, "student_t": xkron.StudentT, "poisson": xkron.Poisson,
               "negative_binomial": xkron.NegativeBinomial, "bernoulli": xkron.Bernoulli,
               "binomial": xkron.Binomial, "gamma": xkron.Gamma}  # fmt: skip
    return classes[name](trials=TRIALS) if name == "binomial" else classes[name]()


def simulate(name, seed):
    """Coordinates, the true field, the complete data and the observed mask."""
    import numpy as np
    from latent_scale import matern_field

    rng = np.random.default_rng(seed)
    coords, f = matern_field(SHAPE, rng)
    values, mean = SETTINGS[name]
    f = mean + AMPLITUDE * f
    y = _likelihood(name).draw(f, values, {"trials": TRIALS} if name == "binomial" else {}, rng)
    return coords, f, y, rng.random(SHAPE) >= MISSING


def job_calibration(name, seed) -> dict:
    import numpy as np
    import xarray as xr

    import xkron

    coords, f_true, y, observed = simulate(name, seed)
    dims = ("d0", "d1", "d2")
    da = xr.DataArray(np.where(observed, y, np.nan), coords=dict(zip(dims, coords, strict=True)), dims=dims)
    with core._Timer() as t:
        fit = xkron.fit(da, {d: xkron.Matern52() for d in dims}, likelihood=_likelihood(name), latent=True,
                        method="laplace", progressbar=False)  # fmt: skip
    latent = fit.predict()
    mean, sd = latent["mean"].values, latent["sd"].values
    cover = float(np.mean(np.abs(mean - f_true) <= 1.6448536 * sd))
    draws = fit.sample(DRAWS, observed=True, random_seed=seed, progressbar=False)["y"]
    ys = draws.transpose("sample", *dims).values[:, ~observed]
    held = y[~observed]
    u = np.random.default_rng(seed + 1000).random(held.size)
    pit = np.mean(ys < held, axis=0) + u * np.mean(ys == held, axis=0)
    params = {k: float(v) for k, v in fit.params.items()}
    return {"wall": t.wall, "coverage90": cover, "pit": pit, "params": params}


def task6(report, args, tmp):
    import numpy as np
    import scipy.stats as st

    seeds = args.seeds or (1, 2, 3)
    report.note(
        f"\n== Task 6: Laplace calibration per likelihood, {SHAPE} grid, seeds {list(seeds)}, load {core._load()}"
    )
    for name in SETTINGS:
        runs = []
        for seed in seeds:
            r = core.run_child(job_calibration, compiledir=os.path.join(tmp, "t6"), name=name, seed=seed)
            core._fail_note(report, f"task 6 {name} seed {seed}", r)
            if r.get("ok"):
                runs.append(r)
        if not runs:
            continue
        pit = np.concatenate([r["pit"] for r in runs])
        ks = st.kstest(pit, "uniform")
        hist = np.histogram(pit, bins=10, range=(0, 1))[0] / (len(pit) / 10)
        covers = [r["coverage90"] for r in runs]
        report.row(
            f"6 calibration {name}",
            "",
            f"fit {core._fmt_s(np.median([r['wall'] for r in runs]))} (median)",
            "",
            "",
            core._fmt_mb(max(r["peak_mb"] for r in runs)),
            f"cover 87-93%: {'yes' if 0.87 <= np.mean(covers) <= 0.93 else 'NO'}",
            f"f 90% cover {np.mean(covers):.3f} (" + ", ".join(f"{c:.3f}" for c in covers) + f"); PIT of {len(pit)} "
            f"held-out: KS D {ks.statistic:.3f} (p {ks.pvalue:.2g}), "
            f"10-bin histogram / flat {hist.min():.2f}-{hist.max():.2f}",
        )
        report.note(
            f"  {name}: params " + "; ".join(str({k: round(v, 3) for k, v in r["params"].items()}) for r in runs)
        )
