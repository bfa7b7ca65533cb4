"""Fits with combined kernels in a factor: likelihood, gradient and predictions against a dense GP.

The dense references build the whole covariance point by point from formulas written out in
numpy (``dense_kernel``), never through xkron's factors or Kronecker products; gradients are
checked against central finite differences of the compiled log density. The time factor holds a
rank-deficient ``Linear`` part and a quasi-periodic product, so the exact gradient must hold where
the factor has repeated (zero) eigenvalues.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from click.testing import CliRunner
from pymc_extras.prior import Prior
from scipy.stats import multivariate_normal

import xkron
from xkron.cli.app import main
from xkron.models.ops import track_logp_error

T = np.arange(0.0, 16.0, 1.0)
X = np.array([0.0, 0.6, 1.1, 1.9, 2.5])
VALUES = {"ls_t_1": 0.9, "period_t": 5.0, "ls_t_2": 12.0, "scale_t_1": 0.4, "ls_t_3": 1.5, "scale_t_2": 0.01,
          "c_t": 7.0, "ls_x": 0.8, "amplitude": 1.3, "noise": 0.25, "mean": 0.2}  # fmt: skip


def time_kernel():
    """``Periodic*Matern52 + c*ExpQuad + c*Linear`` on time, default priors (the pivot fixed at 7)."""
    return xkron.Periodic() * xkron.Matern52() + xkron.ExpQuad() + xkron.Linear(c=7.0)


def dense_kernel(p, t1, x1, t2, x2):
    """``η² k_t k_x`` between two point lists, from the formulas written out."""
    d = np.subtract.outer(t1, t2)
    r = np.abs(d) / p["ls_t_2"]
    k_t = (
        np.exp(-0.5 * (np.sin(np.pi * np.abs(d) / p["period_t"]) / p["ls_t_1"]) ** 2)
        * (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)
        + p["scale_t_1"] * np.exp(-0.5 * (d / p["ls_t_3"]) ** 2)
        + p["scale_t_2"] * np.multiply.outer(t1 - p["c_t"], t2 - p["c_t"])
    )  # fmt: skip
    k_x = np.exp(-0.5 * (np.subtract.outer(x1, x2) / p["ls_x"]) ** 2)
    return p["amplitude"] ** 2 * k_t * k_x


def data(missing: float = 0.0, seed: int = 0) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    tt, xx = (m.ravel() for m in np.meshgrid(T, X, indexing="ij"))
    K = dense_kernel(VALUES, tt, xx, tt, xx) + VALUES["noise"] ** 2 * np.eye(tt.size)
    y = VALUES["mean"] + np.linalg.cholesky(K) @ rng.standard_normal(tt.size)
    y[rng.random(y.size) < missing] = np.nan
    return xr.DataArray(y.reshape(T.size, X.size), coords={"t": T, "x": X}, dims=("t", "x"), name="v")


def fixed_time_kernel():
    """The time kernel with every hyperparameter fixed at :data:`VALUES`."""
    cycle = xkron.Periodic(ls=VALUES["ls_t_1"], period=VALUES["period_t"]) * xkron.Matern52(ls=VALUES["ls_t_2"])
    return cycle + VALUES["scale_t_1"] * xkron.ExpQuad(ls=VALUES["ls_t_3"]) + VALUES["scale_t_2"] * xkron.Linear(c=7.0)


def _fit_fixed(da, solver):
    """A fit with every hyperparameter fixed at :data:`VALUES` (kernel parameters given in the kernels)."""
    k = fixed_time_kernel()
    return xkron.fit(da, {"t": k, "x": xkron.ExpQuad(ls=VALUES["ls_x"])}, amplitude=VALUES["amplitude"],
                     noise=VALUES["noise"], mean=VALUES["mean"], solver=solver, progressbar=False)  # fmt: skip


@pytest.mark.parametrize(("missing", "solver"), [(0.0, "kronecker"), (0.3, "dense"), (0.3, "iterative")])
def test_log_likelihood_equals_the_dense_gp(missing, solver):
    da = data(missing)
    fit = _fit_fixed(da, solver)
    seen = np.isfinite(da.values.ravel())
    tt, xx = (m.ravel()[seen] for m in np.meshgrid(T, X, indexing="ij"))
    K = dense_kernel(VALUES, tt, xx, tt, xx) + VALUES["noise"] ** 2 * np.eye(tt.size)
    expected = multivariate_normal(np.full(tt.size, VALUES["mean"]), K).logpdf(da.values.ravel()[seen])
    with track_logp_error() as error:
        logp = fit.model.compile_logp()({})
    tol = 1e-10 * abs(expected) + 4 * error.se  # a stochastic estimate's stated error (0 where it is exact)
    np.testing.assert_allclose(logp, expected, rtol=0, atol=tol)


@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_gradient_equals_finite_differences(missing, assert_gradient_matches_fd):
    """Every hyperparameter of every part free: the compiled gradient against central differences."""
    da = data(missing, seed=1)
    free = Prior("LogNormal", mu=0, sigma=1)
    k = (xkron.Periodic(ls=free, period=Prior("LogNormal", mu=np.log(5), sigma=0.1)) * xkron.Matern52(ls=free)
         + free * xkron.ExpQuad(ls=free) + free * xkron.Linear(c=Prior("Normal", mu=7, sigma=2)))  # fmt: skip
    fit = xkron.fit(da, {"t": k, "x": xkron.ExpQuad()}, solver="dense" if missing else "auto", restarts=0,
                    progressbar=False)  # fmt: skip
    assert_gradient_matches_fd(fit.model, seed=2)


@pytest.mark.parametrize(("missing", "solver"), [(0.0, "kronecker"), (0.3, "dense")])
def test_predictions_equal_the_dense_gp_beyond_the_data(missing, solver):
    """Mean and sd at new times, past the data (the Linear part's prior variance grows there)."""
    da = data(missing, seed=3)
    fit = _fit_fixed(da, solver)
    new_t, new_x = np.array([3.5, 15.0, 22.0]), np.array([0.3, 2.5, 4.0])
    result = fit.predict(t=new_t, x=new_x)
    seen = np.isfinite(da.values.ravel())
    tt, xx = (m.ravel()[seen] for m in np.meshgrid(T, X, indexing="ij"))
    ts, xs = (m.ravel() for m in np.meshgrid(new_t, new_x, indexing="ij"))
    K = dense_kernel(VALUES, tt, xx, tt, xx) + VALUES["noise"] ** 2 * np.eye(tt.size)
    Ks = dense_kernel(VALUES, ts, xs, tt, xx)
    mean = VALUES["mean"] + Ks @ np.linalg.solve(K, da.values.ravel()[seen] - VALUES["mean"])
    var = np.diag(dense_kernel(VALUES, ts, xs, ts, xs)) - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-8)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(var), rtol=1e-8)


def test_the_saved_fit_keeps_the_combined_kernel(tmp_path):
    da = data(0.2, seed=4)
    fit = xkron.fit(da, {"t": time_kernel(), "x": "ExpQuad"}, restarts=0, progressbar=False)
    assert {"ls_t_1", "period_t", "ls_t_2", "scale_t_1", "ls_t_3", "scale_t_2", "c_t"} <= set(fit.params.data_vars)
    assert fit.params["scale_t_1"].attrs["long_name"].startswith("scale of the weight of ExpQuad in Periodic*Matern52")
    assert fit.params["c_t"].attrs["units"] == "" and fit.params["period_t"].attrs["prior"] != "fixed"
    fit.to_netcdf(tmp_path / "fit.nc")
    back = xkron.open_fit(tmp_path / "fit.nc")
    assert back.spec.factors[0].kernel == fit.spec.factors[0].kernel
    a, b = fit.predict(t=[2.5, 30.0]), back.predict(t=[2.5, 30.0])
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-12)
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=1e-12)


def test_the_cli_takes_kernel_expressions(tmp_path):
    data(0.1, seed=5).to_netcdf(tmp_path / "data.nc")
    kernel = "t=Periodic(period=5.0)*Matern52+ExpQuad"
    args = ["fit", tmp_path / "data.nc", "--var", "v", "--kernel", kernel, "--kernel", "x=ExpQuad",
            "--restarts", "0", "--out", tmp_path / "fit.nc"]  # fmt: skip
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    fit = xkron.open_fit(tmp_path / "fit.nc")
    assert fit.spec.factors[0].kernel.name == "Periodic*Matern52 + c*ExpQuad"
    assert {"ls_t_1", "ls_t_2", "ls_t_3", "scale_t"} <= set(fit.params.data_vars)
    bad_args = [str(a) for a in args[:5]] + ["t=Periodic*Matern25", "--out", str(tmp_path / "x.nc")]
    bad = CliRunner().invoke(main, bad_args)
    assert bad.exit_code != 0 and "did you mean 'Matern52'" in bad.output


def test_the_laplace_marginal_with_a_gaussian_likelihood_is_the_exact_one():
    da = data(0.2, seed=6)
    k = fixed_time_kernel()
    kernels = {"t": k, "x": xkron.ExpQuad(ls=VALUES["ls_x"])}
    fixed = {"amplitude": VALUES["amplitude"], "mean": VALUES["mean"]}
    exact = xkron.fit(da, kernels, noise=VALUES["noise"], **fixed, progressbar=False)
    laplace = xkron.fit(da, kernels, likelihood=xkron.Gaussian(noise=VALUES["noise"]), latent=True, method="laplace",
                        **fixed, progressbar=False)  # fmt: skip
    np.testing.assert_allclose(laplace.optimizer["logp"], exact.optimizer["logp"], rtol=0, atol=1e-8)
