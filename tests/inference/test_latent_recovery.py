"""Simulation-based checks of latent fits: data drawn from the model itself (Poisson and
Bernoulli on a grid), then fitted with NUTS and default priors. The true hyperparameters must
lie inside the posterior's 94% intervals and the true latent field inside the 90% intervals
at about 90% of the cells (80-98%: the field is correlated, so the fraction varies widely;
1,000 draws after 1,000 tuning steps per chain: with 400 the Poisson amplitude's interval
missed the truth by 0.02 on this seed, with R-hat above 1.01)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special
import xarray as xr
from threadpoolctl import threadpool_limits

import xkron
from xkron.posterior.conditional import LatentPosterior
from xkron.spec.grid import Factor
from xkron.spec.kernels import ExpQuad

TRUTH = {"ls_a": 0.3, "ls_b": 0.7, "amplitude": 0.9}


def _simulate(likelihood: str, mean: float, sizes: tuple[int, int], seed: int) -> tuple[xr.DataArray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0, 1, sizes[0]), np.linspace(0, 2, sizes[1])
    factors = (Factor(("a",), ExpQuad(), (a,)), Factor(("b",), ExpQuad(), (b,)))
    values = {**TRUTH, "mean": mean}
    f = LatentPosterior.condition(rng.normal(size=sizes), factors, values).field()
    y = rng.poisson(np.exp(f)) if likelihood == "poisson" else (rng.random(sizes) < scipy.special.expit(f))
    return xr.DataArray(y.astype(float), coords={"a": a, "b": b}, dims=("a", "b"), name="y"), f


@pytest.mark.slow
@pytest.mark.parametrize(
    ("likelihood", "mean", "sizes", "seed"),
    [("poisson", 1.0, (16, 12), 11), ("bernoulli", 0.0, (24, 16), 12)],
)
def test_simulated_grid_recovers_truth(likelihood, mean, sizes, seed):
    da, f_true = _simulate(likelihood, mean, sizes, seed)
    with threadpool_limits(limits=1, user_api="blas"):
        fit = da.kron.fit(
            {"a": xkron.ExpQuad(), "b": xkron.ExpQuad()},
            likelihood=likelihood,
            draws=1000,
            tune=1000,
            chains=2,
            random_seed=seed,
            progressbar=False,
        )
    truth = {**TRUTH, "mean": mean}
    for name, value in truth.items():
        draws = fit.params[name].values.ravel()
        lo, hi = np.quantile(draws, [0.03, 0.97])
        assert lo <= value <= hi, f"true {name}={value} outside the 94% interval [{lo:.3g}, {hi:.3g}]"
    band = fit.predict(quantiles=[0.05, 0.95])["quantiles"].transpose("quantile", "a", "b").values
    covered = float(np.mean((band[0] <= f_true) & (f_true <= band[1])))
    assert 0.8 <= covered <= 0.98, f"90% intervals cover {covered:.0%} of the true latent field"
