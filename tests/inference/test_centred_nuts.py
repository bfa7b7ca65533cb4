"""Issue 14: NUTS on the partially centred field samples the whitened model's posterior.

The default sampler of a latent model (:mod:`xkron.inference.centred_nuts`) and ``init="whitened"``
(NUTS on ``v`` itself, as PyMC's ``LatentKron``) give the same posterior: the fitted field's mean
per cell and the hyperparameters' means agree within their Monte Carlo error. The centred run
reports its curvature and returns draws of ``v`` only.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pymc_extras.prior import Prior

import xkron

KERNELS = {"a": xkron.Matern52(ls=Prior("Gamma", alpha=8, beta=20)), "b": xkron.Cosine(ls=2.5)}


def _counts():
    rng = np.random.default_rng(41)
    a, b = np.linspace(0, 2, 10), np.linspace(0, 3, 7)
    f = 0.6 + np.sin(3 * a)[:, None] * np.cos(1.5 * b)[None, :]
    y = rng.poisson(np.exp(f)).astype(float)
    y[rng.random(y.shape) < 0.15] = np.nan
    return xr.DataArray(y, coords={"a": a, "b": b}, dims=("a", "b"), name="counts")


@pytest.fixture(scope="module")
def fits():
    da = _counts()
    run = {"likelihood": "poisson", "mean": 0.6, "method": "nuts", "chains": 2, "tune": 300, "draws": 400,
           "progressbar": False}  # fmt: skip
    centred = xkron.fit(da, KERNELS, random_seed=1, **run)
    whitened = xkron.fit(da, KERNELS, random_seed=2, init="whitened", **run)
    return centred, whitened


def test_centred_run_reports_its_curvature_and_returns_v(fits):
    centred, whitened = fits
    report = centred.optimizer["nuts_field"]
    assert report["parameterization"] == "partially centred"
    y = _counts().values
    # Poisson: W = exp(f) at the crude field log(y + ½) is y + ½ at observed cells, 0 elsewhere.
    assert report["curvature"] == pytest.approx(np.nansum(y + 0.5) / y.size, rel=1e-12)
    posterior = centred.posterior["posterior"]
    assert "u" not in posterior.data_vars and posterior["v"].shape == (2, 400, 10, 7)
    assert whitened.optimizer is None or "nuts_field" not in whitened.optimizer


def test_both_samplers_reach_the_same_posterior(fits):
    """Means of f per cell and of the hyperparameters within 4.5 Monte Carlo se of each other (ESS-based)."""
    import arviz as az

    means, errors = [], []
    for fit in fits:
        p = fit.predict()
        draws = fit.predict(per_draw=True)["mean"]
        ess = np.asarray(az.ess(draws.transpose("chain", "draw", ...).values, method="mean"))
        means.append(p["mean"].values)
        errors.append(p["sd"].values / np.sqrt(ess))
    z = np.abs(means[0] - means[1]) / np.hypot(*errors)
    assert np.max(z) < 4.5 and np.mean(z) < 1.2
    for name in ("ls_a", "amplitude"):
        values = [fit.params[name] for fit in fits]
        se = [float(v.std()) / np.sqrt(float(az.ess(v.values, method="mean"))) for v in values]
        assert abs(float(values[0].mean()) - float(values[1].mean())) < 4.5 * np.hypot(*se), name


def test_whitened_init_applies_only_to_latent_nuts():
    da = _counts().fillna(1.0)
    with pytest.raises(ValueError, match="init='whitened'"):
        xkron.fit(da, KERNELS, method="nuts", init="whitened", progressbar=False)


def test_a_free_mean_is_sheared_out_and_mixes():
    """With a free mean the field is sheared (``centred_shift``): the same posterior as the whitened field's,
    and the mean mixes (without the shear its bulk ESS was 35 of 800 draws on a 24 × 16 grid)."""
    import arviz as az

    run = {"likelihood": "poisson", "method": "nuts", "chains": 2, "tune": 300, "draws": 400, "progressbar": False}
    centred = xkron.fit(_counts(), KERNELS, random_seed=3, **run)
    whitened = xkron.fit(_counts(), KERNELS, random_seed=4, init="whitened", **run)
    assert centred.optimizer["nuts_field"]["parameterization"] == "partially centred"
    for name in ("mean", "amplitude"):
        values = [fit.params[name] for fit in (centred, whitened)]
        ess = [float(az.ess(v.values, method="bulk")) for v in values]
        se = [float(v.std()) / np.sqrt(e) for v, e in zip(values, ess, strict=True)]
        assert abs(float(values[0].mean()) - float(values[1].mean())) < 4.5 * np.hypot(*se), name
        assert ess[0] > 200, (name, ess)
