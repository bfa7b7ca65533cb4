"""Issue 14: ``fit(method="inla")``, its design and its weighted mixtures.

- The CCD rule integrates 1 and every second moment of the standard normal exactly, for full and
  fractional factorial corners.
- On a problem with two free hyperparameters, INLA's weighted posterior means and sds of the
  hyperparameters, and its mixture's mean and sd of ``f``, match a brute-force quadrature of the same
  Laplace posterior on a fine grid (the reference knows nothing of the design or its weights).
- Weighted mixture quantiles solve the weighted mixture CDF (``scipy.optimize.brentq``).
- Sample fields come from design points drawn by weight.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.stats as st
import xarray as xr
from pymc_extras.prior import Prior

import xkron
from xkron.linalg.quadrature import ccd
from xkron.posterior.conditional import TestInputs
from xkron.posterior.laplace import laplace_posterior
from xkron.posterior.mixture import mixture_quantiles


@pytest.mark.parametrize("d", [1, 2, 4, 5, 6])
def test_ccd_integrates_second_moments_exactly(d):
    design = ccd(d)
    t, a = design.points, design.weights
    assert np.all(a > 0)
    np.testing.assert_allclose(a.sum(), 1.0, atol=1e-14)
    np.testing.assert_allclose(a @ t, np.zeros(d), atol=1e-14)
    np.testing.assert_allclose(np.einsum("k,ki,kj->ij", a, t, t), np.eye(d), atol=1e-13)


def test_weighted_mixture_quantiles_solve_the_mixture_cdf():
    means, sds, w = np.array([[-1.0], [0.5], [2.0]]), np.array([[0.4], [1.0], [0.3]]), np.array([0.2, 0.5, 0.3])
    for p in (0.05, 0.5, 0.9):

        def cdf(x, p=p):
            return np.sum(w * st.norm.cdf(x, means[:, 0], sds[:, 0])) - p

        ref = scipy.optimize.brentq(cdf, -10, 10, xtol=1e-14)
        q = mixture_quantiles(means, sds, [p], weights=w)
        np.testing.assert_allclose(q[0, 0], ref, atol=1e-10)


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(5)
    t, x = np.linspace(0, 7, 8), np.linspace(0, 5, 6)
    K = np.kron(
        np.exp(-0.5 * np.subtract.outer(t, t) ** 2 / 2.0**2), np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 1.5**2)
    )
    f = 0.8 + 0.8 * np.linalg.cholesky(K + 1e-8 * np.eye(48)) @ rng.normal(size=48)
    y = rng.poisson(np.exp(f)).astype(float).reshape(8, 6)
    y[rng.random(y.shape) < 0.2] = np.nan
    da = xr.DataArray(y, coords={"time": t, "x": x}, dims=("time", "x"))
    kernels = {"time": xkron.ExpQuad(ls=Prior("InverseGamma", alpha=5.0, beta=8.0)), "x": xkron.ExpQuad(ls=1.5)}
    fit = xkron.fit(da, kernels, likelihood="poisson", method="inla", mean=0.8,
                    amplitude=Prior("HalfNormal", sigma=1.0), progressbar=False)  # fmt: skip
    return da, fit


def _grid_reference(fit):
    """Brute-force quadrature of the Laplace posterior in the unconstrained (log) coordinates, 31 × 31 points."""
    model = fit.model
    logp = model.compile_logp(jacobian=True)
    w, draws = fit.draw_weights, fit.params.stack(s=("chain", "draw"))
    centre = {n: float(np.sum(w * np.log(draws[n].values))) for n in ("ls_time", "amplitude")}
    spread = {n: 5 * float(np.sqrt(np.sum(w * (np.log(draws[n].values) - centre[n]) ** 2))) for n in centre}
    axes = {n: np.linspace(centre[n] - spread[n], centre[n] + spread[n], 31) for n in centre}
    grid = np.array(
        [[logp({"ls_time_log__": a, "amplitude_log__": b}) for b in axes["amplitude"]] for a in axes["ls_time"]]
    )
    p = np.exp(grid - grid.max())
    p /= p.sum()
    return axes, p


def test_inla_matches_brute_force_quadrature_of_the_laplace_posterior(small):
    da, fit = small
    axes, p = _grid_reference(fit)
    w, draws = fit.draw_weights, fit.params.stack(s=("chain", "draw"))
    A, B = np.meshgrid(np.exp(axes["ls_time"]), np.exp(axes["amplitude"]), indexing="ij")
    for name, values in (("ls_time", A), ("amplitude", B)):
        ref_mean = np.sum(p * values)
        ref_sd = np.sqrt(np.sum(p * (values - ref_mean) ** 2))
        mean = np.sum(w * draws[name].values)
        sd = np.sqrt(np.sum(w * (draws[name].values - mean) ** 2))
        assert abs(mean - ref_mean) < 0.1 * ref_sd, name
        assert abs(sd / ref_sd - 1) < 0.2, name
    # The mixture of f at two new cells, against the grid's mixture of the same Laplace posteriors
    # (every 2nd grid point: each is a mode search).
    new = [TestInputs("a", (np.array([1.3, 6.1]),)), TestInputs("b", (np.array([2.2]),))]
    out = fit.predict({"time": [1.3, 6.1], "x": [2.2]})
    total, second, mass = 0.0, 0.0, 0.0
    fixed = {"ls_x": 1.5, "mean": 0.8}
    for i in range(0, 31, 2):
        for j in range(0, 31, 2):
            values = {
                **fixed,
                "ls_time": float(np.exp(axes["ls_time"][i])),
                "amplitude": float(np.exp(axes["amplitude"][j])),
            }
            m, v = laplace_posterior(da.values, fit.spec, values).moments(new, "ab")
            total, second, mass = total + p[i, j] * m, second + p[i, j] * (v + m * m), mass + p[i, j]
    ref_mean = total / mass
    ref_sd = np.sqrt(second / mass - ref_mean**2)
    assert np.all(np.abs(out["mean"].values - ref_mean) < 0.05 * ref_sd)
    np.testing.assert_allclose(out["sd"].values, ref_sd, rtol=0.05)


def test_inla_samples_draw_design_points_by_weight(small):
    _, fit = small
    draws = fit.sample(400, random_seed=1, progressbar=False)
    counts = np.bincount(draws["design_point"].values, minlength=len(fit.draw_weights))
    expected = 400 * fit.draw_weights
    assert np.sum((counts - expected) ** 2 / expected) < len(expected) + 5 * np.sqrt(2 * len(expected))
    assert fit.optimizer["inla"]["n_points"] == 9  # two free hyperparameters: 1 + 4 axial + 4 corners


def test_inla_round_trip_keeps_the_weights(small, tmp_path):
    _, fit = small
    fit.to_netcdf(tmp_path / "fit.nc")
    again = xkron.open_fit(tmp_path / "fit.nc")
    np.testing.assert_allclose(again.draw_weights, fit.draw_weights)
    xr.testing.assert_allclose(again.predict(), fit.predict(), rtol=1e-10)


def test_design_points_outside_the_support_are_dropped():
    """A field with no spatial signal has its amplitude's MAP near 0: design points whose weight
    underflows or whose values leave the support (amplitude inf) are dropped, and the fit predicts."""
    rng = np.random.default_rng(1)
    da = xr.DataArray(
        rng.poisson(3.0, (6, 5)).astype(float), coords={"a": np.arange(6.0), "b": np.arange(5.0)}, dims=("a", "b")
    )
    fit = da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, likelihood="poisson", method="inla",
                      progressbar=False, random_seed=0)  # fmt: skip
    inla = fit.optimizer["inla"]
    assert inla["n_dropped"] > 0
    assert inla["n_points"] == fit.params.sizes["draw"]
    assert all(np.isfinite(fit.params[name]).all() for name in fit.params)
    assert np.isclose(float(fit.posterior["sample_stats"]["weight"].sum()), 1.0)
    assert np.isfinite(fit.predict()["mean"]).all()


@pytest.mark.parametrize("flat", ["ls_time", "amplitude"])
def test_a_non_concave_map_is_refused_naming_the_direction(small, monkeypatch, flat):
    """Where the Hessian at the MAP is not positive definite INLA refuses to build its design, naming
    the direction and its value; along a lengthscale it also names the usual cause and its fix (a
    smooth part plus an independent one), measured on tutorial 6's annual events (ls 0.06 years)."""
    import xkron.inference.inla as inla

    _, fit = small
    names = [rv.name for rv in fit.model.free_RVs]
    curvature = np.where(np.array(names) == flat, -3.0, 5.0)
    monkeypatch.setattr(inla, "_hessian", lambda evaluate, z, step: np.diag(curvature))
    values = {n: float(fit.params[n].values.ravel()[0]) for n in names}
    with pytest.raises(ValueError, match=f"not concave at the MAP.*along {flat} \\(\\+1.00, at ") as err:
        inla.explore(fit.model, values)
    assert ("Matern52() + WhiteNoise()" in str(err.value)) == (flat == "ls_time")


def test_the_design_is_evaluated_without_the_gradient(small, monkeypatch):
    """Only the Hessian needs gradients (the MAP and two per hyperparameter); the skewness probes and the
    design points take the Laplace Op's value-only twin. Its values equal the full evaluation's."""
    import xkron.inference.inla as inla
    import xkron.models.laplace_op as laplace_op

    _, fit = small
    calls = []
    gradient = laplace_op.laplace_gradient
    monkeypatch.setattr(laplace_op, "laplace_gradient", lambda *a, **k: calls.append(1) or gradient(*a, **k))
    names = [rv.name for rv in fit.model.free_RVs]
    centre = {n: float(fit.params[n].isel(chain=0, draw=0)) for n in names}
    explored = inla.explore(fit.model, centre)
    assert len(calls) == 1 + 2 * len(names)
    evaluate, to_unconstrained, _ = inla.compile_density(fit.model)
    value = inla.compile_value(fit.model)
    full = [evaluate(to_unconstrained(v))[0] for v in explored.values]
    np.testing.assert_allclose(explored.log_posterior, full, rtol=0, atol=1e-8)
    z = to_unconstrained(centre)
    for shift in (0.0, 0.3, -0.4):
        full, cheap = evaluate(z + shift), value(z + shift)
        assert np.isclose(cheap[0], full[0], rtol=0, atol=1e-8), shift
        assert cheap[1] == pytest.approx(full[2], rel=1e-12)


def test_value_only_on_the_stochastic_path_gives_the_same_estimate():
    """Above ``LAPLACE_DENSE_MAX`` cells the value is a stochastic Lanczos estimate with fixed probes: the
    value-only twin gives the same estimate (to the mode's tolerance) and no gradient."""
    import pytensor

    from xkron.models.laplace_op import kron_laplace_logp, value_only

    rng = np.random.default_rng(3)
    axes = [np.linspace(0, 4, n) for n in (12, 14, 15)]
    factors = [np.exp(-0.5 * np.subtract.outer(a, a) ** 2) + 1e-8 * np.eye(len(a)) for a in axes]
    y = rng.poisson(2.0, (12, 14, 15)).astype(float)
    eta2 = pytensor.tensor.dscalar("eta2")
    logq = kron_laplace_logp("poisson", y, np.ones(y.shape), factors, eta2, 0.5)
    full = pytensor.function([eta2], [logq, pytensor.grad(logq, eta2)])
    cheap = pytensor.function([eta2], value_only([logq]))
    for e in (0.5, 0.8):
        (value,) = cheap(e)
        reference, slope = full(e)
        assert np.isclose(value, reference, rtol=1e-9), e
        assert slope != 0.0
    with pytest.raises(NotImplementedError, match="value_only"):
        pytensor.grad(value_only([logq])[0], eta2)
