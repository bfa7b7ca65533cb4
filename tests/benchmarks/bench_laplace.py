"""The Laplace approximation on Kronecker grids (issue 14): what one evaluation costs, how noisy its
stochastic gradient is, and a MAP of the hyperparameters through the PyTensor Op.

    .venv/bin/python tests/benchmarks/bench_laplace.py [--shapes 20x25x20,20x50x100] [--skip-map]

Simulated Poisson fields (Matern52 in every dim with lengthscale a fifth of the dim, amplitude 0.8,
mean 0.5; 20% of the cells unobserved), one BLAS thread. For each grid:

- one value and gradient at the truth, by parts: the Newton mode from 0 (steps, CG iterations),
  the stochastic log-determinant (32 probes), the gradient;
- on grids of at most 2,000 cells, the gradient's spread over 10 probe seeds against the exact one,
  with the trace estimated from the log-determinant's probes or by its own (``trace_probes``);
- a MAP of (lengthscales, amplitude, mean) through :class:`xkron.models.laplace_op.KronLaplaceLogp`
  in a PyMC model, by xkron's optimiser from one start (a quarter of each dim, amplitude 1).

No peer runs here yet: ``bench_latent.py`` runs PyMC's ``LatentKron`` and xkron's NUTS and ADVI.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np


def matern52(x, ls, xp=np):
    r = xp.abs(x[:, None] - x[None, :]) / ls
    return (1 + np.sqrt(5) * r + 5 * r**2 / 3) * xp.exp(-np.sqrt(5) * r)


def d_matern52(x, ls):
    r = np.abs(x[:, None] - x[None, :]) / ls
    return (5 / 3) * r * (1 + np.sqrt(5) * r) * np.exp(-np.sqrt(5) * r) * r / ls


def simulate(shape, seed=0):
    from xkron.linalg.kronecker import KronEigen
    from xkron.linalg.laplace import Whitened

    rng = np.random.default_rng(seed)
    xs = [np.arange(n, dtype=float) for n in shape]
    ls = [n / 5 for n in shape]
    factors = [matern52(x, s) for x, s in zip(xs, ls, strict=True)]
    eigen = KronEigen.from_factors(factors)
    f = 0.5 + 0.8 * Whitened(eigen).root(rng.normal(size=shape))
    return xs, ls, factors, eigen, rng.poisson(np.exp(f)).astype(float), rng.random(shape) > 0.2


def one_evaluation(shape):
    from xkron.linalg.laplace import laplace_loglik, newton_mode
    from xkron.linalg.laplace_grad import laplace_gradient
    from xkron.spec.pointwise import pointwise

    xs, ls, factors, eigen, y, observed = simulate(shape)
    t0 = time.perf_counter()
    mode = newton_mode(lambda f: pointwise("poisson", f, y, {}, {}), eigen, 0.64, 0.5, observed)
    t1 = time.perf_counter()
    result = laplace_loglik(mode, eigen, 0.64, "slq", probes=32)
    t2 = time.perf_counter()
    laplace_gradient(mode, factors, eigen, 0.64, pairs=result.pairs, trace_probes=32)
    t3 = time.perf_counter()
    print(f"  one evaluation: mode {t1 - t0:.2f} s ({mode.newton_steps} Newton steps, CG at most {mode.cg.iterations}),"
          f" log-determinant {t2 - t1:.2f} s (se of log q {result.logp_se:.2f}), gradient {t3 - t2:.2f} s")  # fmt: skip
    if y.size > 2000:
        return
    from xkron.linalg.laplace_grad import laplace_gradient as grad_of

    def in_theta(g):
        rows = [float(np.sum(d * d_matern52(x, s))) * s for d, x, s in zip(g.d_factors, xs, ls, strict=True)]
        return np.array([*rows, 2 * 0.64 * g.d_eta2])

    exact = in_theta(grad_of(mode, factors, eigen, 0.64))
    for label, trace in (("probes of the log-determinant", None), ("own trace probes", 32)):
        runs = []
        for s in range(10):
            pairs = laplace_loglik(mode, eigen, 0.64, "slq", probes=32, seed=s).pairs
            runs.append(in_theta(grad_of(mode, factors, eigen, 0.64, pairs=pairs, trace_probes=trace, seed=s)))
        runs = np.array(runs)
        print(f"  gradient in (log ls_i, log amplitude): exact {np.round(exact, 2)}; {label}: "
              f"mean {np.round(runs.mean(0), 2)}, sd {np.round(runs.std(0), 2)}")  # fmt: skip


def map_fit(shape):
    import pymc as pm
    import pytensor.tensor as pt

    from xkron.inference.optimize import fit_map
    from xkron.models.laplace_op import kron_laplace_logp

    xs, ls, _, _, y, observed = simulate(shape)
    with pm.Model() as model:
        scales = [pm.LogNormal(f"ls_{i}", np.log(n / 4), 1.0) for i, n in enumerate(shape)]
        amplitude = pm.HalfNormal("amplitude", 1.5)
        mean = pm.Normal("mean", 0.0, 2.0)
        factors = [matern52(pt.as_tensor_variable(x), scales[i], xp=pt) for i, x in enumerate(xs)]
        logq = kron_laplace_logp("poisson", np.where(observed, y, 0.0), observed.astype(float), factors,
                                 amplitude**2, mean)  # fmt: skip
        pm.Potential("laplace", logq)
    start = {**{f"ls_{i}": n / 4 for i, n in enumerate(shape)}, "amplitude": 1.0, "mean": 0.0}
    t0 = time.perf_counter()
    values, report = fit_map(model, [start], progressbar=False)
    found = {k: round(float(v), 3) for k, v in values.items()}
    print(f"  MAP through the Op: {time.perf_counter() - t0:.1f} s, {report['n_eval']} evaluations, "
          f"{report['message'][:60]}; {found} (truth ls {ls}, amplitude 0.8, mean 0.5)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="10x14x14,20x25x20,20x50x100")
    parser.add_argument("--skip-map", action="store_true")
    args = parser.parse_args()
    print(f"bench_laplace.py  {time.strftime('%Y-%m-%dT%H:%M:%S')}  load {os.getloadavg()}")
    for text in args.shapes.split(","):
        shape = tuple(int(s) for s in text.split("x"))
        print(f"== {text}: {int(np.prod(shape))} cells, Poisson")
        one_evaluation(shape)
        if not args.skip_map:
            map_fit(shape)


if __name__ == "__main__":
    main()
