"""fit.posterior as ArviZ expects it: labelled observed_data, pointwise log_likelihood (exact LOO for Gaussian
marginal fits), prior draws, az.loo / az.summary, and the NetCDF round trip of the groups."""

from __future__ import annotations

import arviz as az
import numpy as np
import pytest
import scipy.linalg
import xarray as xr
from loo_reference import KERNELS, brute_force, data
from scipy.stats import poisson

import xkron
from xkron.results.fit import KronFit

NUTS = {"method": "nuts", "draws": 50, "tune": 50, "chains": 2, "progressbar": False, "random_seed": 7}
DRAWS = [(0, 0), (0, 31), (1, 12), (1, 49)]
# PSIS on 100 draws warns about its Pareto k; these tests check numbers, not diagnostics.
pytestmark = pytest.mark.filterwarnings("ignore:Estimated shape parameter of Pareto:UserWarning")


@pytest.fixture(scope="module")
def nuts_fit():
    return data().kron.fit(KERNELS, **NUTS)


@pytest.fixture(scope="module")
def gappy_nuts_fit(nuts_fit):
    """The NUTS draws of ``nuts_fit`` on a gappy grid (the dense solver), labelled as a fit's: NUTS itself on the
    dense solver takes a minute here, and the labelling only reads the draws."""
    da = data(1)
    da[1, 2] = da[4, 0] = np.nan
    spec = da.kron.fit(KERNELS, progressbar=False).spec
    assert spec.solver.name == "dense"
    draws = nuts_fit.params[spec.free_names()]
    tree = xr.DataTree.from_dict({g: nuts_fit.posterior[g].to_dataset() for g in ("posterior", "sample_stats")})
    return KronFit.from_parts(da, spec, nuts_fit.encodings, draws, "nuts", posterior=tree)


def _draw(fit, chain, draw) -> dict:
    return {k: float(v.isel(chain=chain, draw=draw)) if "chain" in v.dims else float(v) for k, v in fit.params.items()}


@pytest.mark.slow
def test_nuts_log_likelihood_is_the_exact_loo_density_at_each_draw(nuts_fit):
    tree, da = nuts_fit.posterior, nuts_fit.data
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood"} <= set(tree.children)
    observed = tree["observed_data"]["temp"]
    assert observed.dims == ("x", "time")
    xr.testing.assert_identical(observed.reset_coords(drop=True).drop_attrs(), da.drop_attrs().reset_coords(drop=True))
    assert observed.attrs["units"] == "K"
    ll = tree["log_likelihood"]["temp"]
    assert ll.dims == ("chain", "draw", "x", "time")
    np.testing.assert_array_equal(ll["x"], da["x"])
    for chain, draw in DRAWS:
        p = _draw(nuts_fit, chain, draw)
        expected = brute_force(da.values, p, p["noise"] ** 2)[2]
        assert np.allclose(ll.isel(chain=chain, draw=draw).values, expected, rtol=1e-8, atol=1e-10)
    # fit.loo() of a NUTS fit is per draw, and the same numbers
    loo = nuts_fit.loo()
    assert loo["log_density"].dims == ("chain", "draw", "x", "time") and loo["elpd_loo"].dims == ("chain", "draw")
    np.testing.assert_allclose(loo["log_density"].values, ll.values, rtol=1e-12)
    assert "leave-one-out" in tree.attrs["xkron_log_likelihood"]


@pytest.mark.slow
def test_az_loo_and_summary_run_on_a_nuts_fit(nuts_fit):
    result = az.loo(nuts_fit.posterior)
    assert np.isfinite(result.elpd) and result.n_data_points == 20
    # PSIS-LOO averages the per-draw densities: it lies within the range of the draws' sums
    per_draw = nuts_fit.loo()["elpd_loo"]
    assert float(per_draw.min()) - 1 < result.elpd < float(per_draw.max()) + 1
    summary = az.summary(nuts_fit.posterior)
    assert set(nuts_fit.spec.free_names()) <= set(summary.index)


@pytest.mark.slow
def test_gappy_grid_log_likelihood_on_observed_cells(gappy_nuts_fit):
    tree, da = gappy_nuts_fit.posterior, gappy_nuts_fit.data
    observed = tree["observed_data"]["temp"]
    assert observed.dims == ("x", "time") and int(observed.isnull().sum()) == 2
    ll = tree["log_likelihood"]["temp"]
    assert ll.dims == ("chain", "draw", "cell") and ll.sizes["cell"] == 18
    grid = ll.set_index(cell=["x", "time"]).unstack("cell").reindex_like(da)
    for chain, draw in DRAWS:
        p = _draw(gappy_nuts_fit, chain, draw)
        expected = brute_force(da.values, p, p["noise"] ** 2)[2]
        got = grid.isel(chain=chain, draw=draw).transpose("x", "time").values
        assert np.allclose(got, expected, rtol=1e-8, atol=1e-10, equal_nan=True)
    assert np.isfinite(az.loo(tree).elpd)


@pytest.mark.slow
def test_groups_round_trip_through_netcdf(nuts_fit, gappy_nuts_fit, tmp_path):
    nuts_fit.sample_prior(30, random_seed=1)
    for k, fit in enumerate((nuts_fit, gappy_nuts_fit)):
        path = tmp_path / f"fit{k}.nc"
        fit.to_netcdf(path)
        again = xkron.open_fit(path)
        for group in ("posterior", "observed_data", "log_likelihood", *(("prior",) if k == 0 else ())):
            xr.testing.assert_allclose(again.posterior[group].to_dataset(), fit.posterior[group].to_dataset())
        assert again.posterior.attrs["xkron_log_likelihood"] == fit.posterior.attrs["xkron_log_likelihood"]
        assert az.loo(again.posterior).elpd == pytest.approx(az.loo(fit.posterior).elpd, rel=1e-12)


def test_az_loo_equals_the_map_elpd_when_every_draw_is_the_map():
    """PSIS-LOO of draws that all sit at the MAP is exactly the sum of the exact LOO densities."""
    da = data(2)
    fit = da.kron.fit(KERNELS, progressbar=False)
    free = fit.spec.free_names()
    coords = {"chain": [0, 1], "draw": np.arange(100)}
    draws = xr.Dataset({k: (("chain", "draw"), np.full((2, 100), float(fit.params[k]))) for k in free}, coords=coords)
    posterior = xr.DataTree.from_dict({"posterior": draws})
    at_map = KronFit.from_parts(da, fit.spec, fit.encodings, draws, "nuts", posterior=posterior)
    ll = at_map.posterior["log_likelihood"]["temp"]
    # Identical draws have uniform importance weights, 1/S each; PSIS cannot fit a Pareto tail to constant
    # ratios ("All tail values are the same"), so its weights are given as they are.
    uniform = xr.full_like(ll, -np.log(200.0))
    elpd = az.loo(at_map.posterior, log_weights=uniform, pareto_k=xr.zeros_like(ll.isel(chain=0, draw=0))).elpd
    assert elpd == pytest.approx(float(fit.loo()["elpd_loo"]), abs=1e-8)


def test_sample_prior_on_a_map_fit():
    fit = data(3).kron.fit(KERNELS, progressbar=False)
    assert fit.posterior is None
    prior = fit.sample_prior(40, random_seed=0)
    assert set(prior.data_vars) == set(fit.spec.free_names())
    assert prior.sizes == {"chain": 1, "draw": 40}
    assert prior["ls_x"].attrs["units"] == fit.params["ls_x"].attrs["units"]
    assert float(prior["amplitude"].min()) > 0 and float(prior["amplitude"].std()) > 0
    assert {"prior", "observed_data"} == set(fit.posterior.children)
    again = fit.sample_prior(40, random_seed=0)
    xr.testing.assert_equal(again, prior)
    with pytest.raises(ValueError, match="draws must be a whole number"):
        fit.sample_prior(0)


def test_laplace_and_map_fits_keep_no_posterior():
    counts = xr.DataArray(np.arange(20).reshape(5, 4) % 4, coords=data().coords, dims=("x", "time"))
    fit = counts.kron.fit(KERNELS, likelihood="poisson", method="laplace", progressbar=False)
    assert fit.posterior is None


@pytest.mark.slow
def test_latent_nuts_log_likelihood_from_each_draws_field():
    da = data()
    counts = xr.DataArray(np.arange(20).reshape(5, 4) % 5, coords=da.coords, dims=da.dims, name="n").astype(float)
    counts[2, 2] = np.nan
    fit = counts.kron.fit(KERNELS, likelihood="poisson", **{**NUTS, "draws": 20, "tune": 30})
    tree = fit.posterior
    assert tree["observed_data"]["n"].dims == ("x", "time")
    ll = tree["log_likelihood"]["n"]
    assert ll.dims == ("chain", "draw", "cell") and ll.sizes["cell"] == 19
    grid = ll.set_index(cell=["x", "time"]).unstack("cell").reindex_like(counts).transpose("chain", "draw", "x", "time")
    for chain, draw in [(0, 0), (0, 7), (1, 19)]:
        p = _draw(fit, chain, draw)
        v = tree["posterior"]["v"].isel(chain=chain, draw=draw).values
        kx = np.exp(-0.5 * (np.subtract.outer(da.x.values, da.x.values) / p["ls_x"]) ** 2)
        r = np.sqrt(3) * np.abs(np.subtract.outer(da.time.values, da.time.values)) / p["ls_time"]
        kt = (1 + r) * np.exp(-r)
        L = np.kron(*(scipy.linalg.cholesky(K + 1e-6 * np.eye(len(K)), lower=True) for K in (kx, kt)))
        f = (p["mean"] + p["amplitude"] * L @ v.ravel()).reshape(5, 4)
        expected = np.where(counts.notnull(), poisson(np.exp(f)).logpmf(counts.fillna(0).values), np.nan)
        assert np.allclose(grid.isel(chain=chain, draw=draw).values, expected, rtol=1e-8, equal_nan=True)
    assert "latent field" in tree.attrs["xkron_log_likelihood"]
    assert np.isfinite(az.loo(tree).elpd)


def test_inla_fit_gets_labelled_observed_data_and_no_log_likelihood():
    counts = xr.DataArray((np.arange(20).reshape(5, 4) % 5).astype(float), coords=data().coords, dims=("x", "time"))
    fit = counts.rename("n").kron.fit(KERNELS, likelihood="poisson", method="inla", progressbar=False)
    tree = fit.posterior
    assert {"posterior", "sample_stats", "observed_data"} == set(tree.children)
    xr.testing.assert_equal(tree["observed_data"]["n"].reset_coords(drop=True), counts.rename("n"))
    assert "INLA" in tree.attrs["xkron_log_likelihood"] and "absent" in tree.attrs["xkron_log_likelihood"]
