"""Several variables on one grid with a ``Coregion`` factor, against PyMC's ``Coregion`` and simulated truth.

References: ``pm.gp.cov.Coregion`` (same ``B = W Wᵀ + diag(κ)``, to 1e-12); the dense GP with
``B ⊗ K_x ⊗ K_y`` for predictions; data simulated from a known ``B`` with each variable missing
at different cells, for the fitted correlations and for predicting a variable from the others.
"""

from __future__ import annotations

import json

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import xkron
from xkron.spec.kernel_registry import kernel_from_dict
from xkron.spec.modelspec import factor_params

W = np.array([[1.0], [-0.8], [0.5]])
KAPPA = np.array([0.2, 0.3, 0.4])
B = W @ W.T + np.diag(KAPPA)
LABELS = ["sst", "chl", "wind"]


def test_the_kernel_equals_pymc_coregion():
    k = xkron.Coregion(rank=1).bind(LABELS)
    params = {
        **{f"W_{n}_1": W[i, 0] for i, n in enumerate(LABELS)},
        **{f"kappa_{n}": KAPPA[i] for i, n in enumerate(LABELS)},
    }
    X = np.array([0.0, 2.0, 1.0, 2.0])
    expected = pm.gp.cov.Coregion(1, W=W, kappa=KAPPA)(X[:, None]).eval()
    np.testing.assert_allclose(k.matrix([X], [X], params), expected, rtol=1e-12, atol=0)
    assert kernel_from_dict(json.loads(json.dumps(k.to_dict()))) == k


def grid(seed=1, n=14, missing=0.3):
    rng = np.random.default_rng(seed)
    x = np.arange(float(n))
    k = np.exp(-0.5 * (np.subtract.outer(x, x) / 2.0) ** 2)
    K = np.kron(B, np.kron(k, k))
    f = (np.linalg.cholesky(K + 1e-9 * np.eye(len(K))) @ rng.standard_normal(len(K))).reshape(3, n, n)
    y = f + 0.1 * rng.standard_normal(f.shape)
    gone = rng.random(y.shape) < missing  # each variable its own gaps
    da = xr.DataArray(
        np.where(gone, np.nan, y), coords={"variable": LABELS, "x": x, "y": x}, dims=("variable", "x", "y")
    )
    return da, f, gone


@pytest.fixture(scope="module")
def fitted():
    da, f, gone = grid()
    fit = da.kron.fit({"variable": xkron.Coregion(rank=1), "x": "ExpQuad", "y": "ExpQuad"}, progressbar=False)
    return da, f, gone, fit


def test_fitted_correlations_follow_the_truth(fitted):
    """MAP of ``B`` on 3 × 14 × 14 cells, 30% missing per variable: correlations within 0.15 of the truth.

    The sampling error of a correlation estimated from one field with about 50 independent
    patches is about 0.1 here; the issue's 0.05 needs a larger grid than a unit test fits.
    """
    _, _, _, fit = fitted
    factor = fit.spec.factors[0]
    assert float(fit.params["amplitude"]) == 1.0 and fit.params["amplitude"].attrs["prior"] == "fixed"
    labelled = fit.between("variable")["correlation"]
    assert labelled.dims == ("variable", "variable_2") and list(labelled["variable_2"].values) == LABELS
    B_hat = factor.kernel.between(factor_params(factor, {k: float(v) for k, v in fit.params.items()}))
    sd, sd_true = np.sqrt(np.diag(B_hat)), np.sqrt(np.diag(B))
    np.testing.assert_allclose(B_hat / np.outer(sd, sd), B / np.outer(sd_true, sd_true), atol=0.15)
    np.testing.assert_allclose(labelled, B_hat / np.outer(sd, sd), rtol=1e-12)


def whitened_correlations(f: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The best any estimator can do from one draw: ``B`` estimated from the true field itself, knowing the
    spatial kernel (``F (K⁻¹) Fᵀ / N`` with ``K = k ⊗ k``), as a correlation matrix."""
    L = np.linalg.cholesky(k)
    white = np.stack([np.linalg.solve(L, np.linalg.solve(L, fi.T).T) for fi in f])  # (L⁻¹ ⊗ L⁻¹) f_i
    B_oracle = np.einsum("aij,bij->ab", white, white) / white[0].size
    sd = np.sqrt(np.diag(B_oracle))
    return B_oracle / np.outer(sd, sd)


@pytest.mark.slow
def test_fitted_correlations_are_within_0_05_of_the_truth():
    """3 × 64 × 64 cells, lengthscale 1, 30% missing per variable (MAP, the issue's setting; iterative solver).

    One draw's correlations differ from ``B``'s by its own sampling error: the oracle that knows the
    true field and the spatial kernel is 0.04-0.06 from the truth on 32 × 32 grids, 0.006-0.018 on
    64 × 64 (``tests/benchmarks/bench_coregion.py``, five seeds). There the fit is within 0.005-0.037
    of the truth and 0.003-0.026 of the oracle; this is seed 1, the farthest of the five.
    """
    n, rng = 64, np.random.default_rng(1)
    x = np.arange(float(n))
    k = np.exp(-0.5 * np.subtract.outer(x, x) ** 2) + 1e-8 * np.eye(n)
    chol_b, chol_k = np.linalg.cholesky(B), np.linalg.cholesky(k)
    f = np.einsum("ai,bj,ck,ijk->abc", chol_b, chol_k, chol_k, rng.standard_normal((3, n, n)))
    y = f + 0.1 * rng.standard_normal(f.shape)
    y[rng.random(y.shape) < 0.3] = np.nan
    da = xr.DataArray(y, coords={"variable": LABELS, "x": x, "y": x}, dims=("variable", "x", "y"))
    fit = da.kron.fit({"variable": xkron.Coregion(rank=1), "x": "ExpQuad", "y": "ExpQuad"}, restarts=0,
                      progressbar=False)  # fmt: skip
    fitted = fit.between("variable")["correlation"].values
    oracle = whitened_correlations(f, k)
    sd = np.sqrt(np.diag(B))
    truth = B / np.outer(sd, sd)
    assert fit.spec.solver.name == "iterative"
    assert np.abs(fitted - truth).max() < 0.05
    assert np.abs(fitted - oracle).max() < 0.04


def test_a_rank_2_fit_finds_a_rank_2_covariance():
    """The columns of ``W`` start orthogonal: equal starting columns would stay equal (a rank-1 fit)."""
    W2 = np.array([[1.0, 0.0], [0.6, 0.8], [-0.6, 0.8]])
    B2 = W2 @ W2.T + 0.05 * np.eye(3)
    n, rng = 10, np.random.default_rng(2)
    x = np.arange(float(n))
    k = np.exp(-0.5 * (np.subtract.outer(x, x) / 2.0) ** 2) + 1e-8 * np.eye(n)
    chol_b, chol_k = np.linalg.cholesky(B2), np.linalg.cholesky(k)
    f = np.einsum("ai,bj,ck,ijk->abc", chol_b, chol_k, chol_k, rng.standard_normal((3, n, n)))
    da = xr.DataArray(f + 0.1 * rng.standard_normal(f.shape), coords={"variable": LABELS, "x": x, "z": x},
                      dims=("variable", "x", "z"))  # fmt: skip
    kernels = {"x": xkron.ExpQuad(ls=2.0), "z": xkron.ExpQuad(ls=2.0)}
    fits = [da.kron.fit({"variable": xkron.Coregion(rank=r), **kernels}, restarts=0, progressbar=False) for r in (1, 2)]
    sd = np.sqrt(np.diag(B2))
    errors = [np.abs(fit.between("variable")["correlation"].values - B2 / np.outer(sd, sd)).max() for fit in fits]
    assert errors[1] < 0.1 < errors[0], errors  # rank 1 cannot hold this B
    W = np.array([[float(fits[1].params[f"W_variable_{v}_{j}"]) for j in (1, 2)] for v in LABELS])
    assert np.linalg.cond(W) < 10  # two columns, not one twice


def test_a_variable_in_its_own_gaps_is_predicted_better_from_the_others(fitted):
    da, f, gone, fit = fitted
    joint = fit.predict()["mean"]
    for k, label in enumerate(LABELS):
        alone = da.sel(variable=label).kron.fit({"x": "ExpQuad", "y": "ExpQuad"}, progressbar=False).predict()["mean"]
        hidden = gone[k]
        rmse_joint = np.sqrt(np.mean((joint.values[k][hidden] - f[k][hidden]) ** 2))
        rmse_alone = np.sqrt(np.mean((alone.values[hidden] - f[k][hidden]) ** 2))
        assert rmse_joint < rmse_alone, f"{label}: {rmse_joint:.3f} with the others, {rmse_alone:.3f} alone"


def test_predictions_equal_the_dense_gp():
    da, _, _ = grid(seed=2, n=6)
    params = {
        **{f"W_{n}_1": W[i, 0] for i, n in enumerate(LABELS)},
        **{f"kappa_{n}": KAPPA[i] for i, n in enumerate(LABELS)},
    }
    fit = da.kron.fit({"variable": xkron.Coregion(rank=1, W=None, kappa=None), "x": xkron.ExpQuad(ls=2.0),
                       "y": xkron.ExpQuad(ls=2.0)}, noise=0.1, mean=0.0, progressbar=False, restarts=0)  # fmt: skip
    factor = fit.spec.factors[0]
    values = {k: float(v) for k, v in fit.params.items()}
    B_fit = factor.kernel.between(factor_params(factor, values))
    new = np.array([0.5, 7.0])
    result = fit.predict(x=new)
    x = da["x"].values
    seen = np.isfinite(da.values.ravel())
    V, X, Y = (m.ravel() for m in np.meshgrid(np.arange(3), x, x, indexing="ij"))
    Vn, Xn, Yn = (m.ravel() for m in np.meshgrid(np.arange(3), new, x, indexing="ij"))

    def cov(v1, x1, y1, v2, x2, y2):
        return (B_fit[np.ix_(v1, v2)] * np.exp(-0.5 * (np.subtract.outer(x1, x2) / 2) ** 2)
                * np.exp(-0.5 * (np.subtract.outer(y1, y2) / 2) ** 2))  # fmt: skip

    K = cov(V[seen], X[seen], Y[seen], V[seen], X[seen], Y[seen]) + 0.01 * np.eye(seen.sum())
    Ks = cov(Vn, Xn, Yn, V[seen], X[seen], Y[seen])
    mean = Ks @ np.linalg.solve(K, da.values.ravel()[seen])
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-8)
    assert set(params) <= {k.replace("variable_", "") for k in values}


def test_bad_uses_say_what_is_wrong():
    da, _, _ = grid(n=4)
    with pytest.raises(ValueError, match="spans one labelled dim"):
        da.kron.fit({("variable", "x"): xkron.Coregion(), "y": "ExpQuad"}, progressbar=False)
    with pytest.raises(ValueError, match="was made for the labels"):
        da.kron.fit({"variable": xkron.Coregion().bind(["a", "b", "c"]), "x": "ExpQuad", "y": "ExpQuad"},
                    progressbar=False)  # fmt: skip
    with pytest.raises(ValueError, match="rank=0 must be a positive integer"):
        xkron.Coregion(rank=0)
    from xkron.spec.kernel_registry import parse_kernel_expression

    assert parse_kernel_expression("coregion(rank=2)") == xkron.Coregion(rank=2)  # the CLI's --kernel variable=...


# --------------------------------------------------------------------------- each variable its own noise

SIGMA = np.array([0.05, 0.3, 0.6])


def noisy_grid(seed=3, n=6):
    rng = np.random.default_rng(seed)
    x = np.arange(float(n))
    k = np.exp(-0.5 * (np.subtract.outer(x, x) / 2.0) ** 2)
    K = np.kron(B, np.kron(k, k)) + np.diag(np.repeat(SIGMA**2, n * n))
    y = (np.linalg.cholesky(K) @ rng.standard_normal(len(K))).reshape(3, n, n)
    y[rng.random(y.shape) < 0.2] = np.nan
    return xr.DataArray(y, coords={"variable": LABELS, "x": x, "z": x}, dims=("variable", "x", "z"))


@pytest.fixture(scope="module")
def own_noise_fit():
    da = noisy_grid()
    kernels = {"variable": xkron.Coregion(rank=1, noise=True), "x": xkron.ExpQuad(ls=2.0), "z": xkron.ExpQuad(ls=2.0)}
    return da, xkron.fit(da, kernels, mean=0.0, progressbar=False, restarts=0)


def _dense(fit, da):
    """The dense covariance of the observed cells (with each variable's noise), and what builds it."""
    factor = fit.spec.factors[0]
    values = {k: float(v) for k, v in fit.params.items()}
    params = factor_params(factor, values)
    Bf, var = factor.kernel.between(params), factor.kernel.noise_variances(params)
    x = da["x"].values
    V, X, Y = (m.ravel() for m in np.meshgrid(np.arange(3), x, x, indexing="ij"))
    seen = np.isfinite(da.values.ravel())

    def cov(v1, x1, y1, v2, x2, y2):
        return (Bf[np.ix_(v1, v2)] * np.exp(-0.5 * (np.subtract.outer(x1, x2) / 2) ** 2)
                * np.exp(-0.5 * (np.subtract.outer(y1, y2) / 2) ** 2))  # fmt: skip

    K = cov(V[seen], X[seen], Y[seen], V[seen], X[seen], Y[seen]) + np.diag(var[V[seen]])
    return K, seen, var, (cov, V, X, Y)


def _check_log_likelihood(fit, da, rtol=1e-10, atol=0.0, grad_rtol=1e-5):
    """The model's log-likelihood at the fit against the dense Gaussian, its gradient against central differences."""
    from scipy.stats import multivariate_normal

    model = fit.model
    K, seen, _, _ = _dense(fit, da)
    logp_y = model.compile_logp(vars=model.observed_RVs)
    values = {}
    for rv in model.free_RVs:
        transform, value = model.rvs_to_transforms.get(rv), float(fit.params[rv.name])
        values[model.rvs_to_values[rv].name] = value if transform is None else float(transform.forward(value).eval())
    expected = multivariate_normal(np.zeros(seen.sum()), K).logpdf(da.values.ravel()[seen])
    np.testing.assert_allclose(logp_y(values), expected, rtol=rtol, atol=atol)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    names = [v.name for v in model.value_vars]
    x0 = np.array([values[n] for n in names]) + 0.2

    def f(x):
        return logp(dict(zip(names, x, strict=True)))

    h = 1e-5
    fd = np.array([(f(x0 + h * e) - f(x0 - h * e)) / (2 * h) for e in np.eye(len(x0))])
    np.testing.assert_allclose(dlogp(dict(zip(names, x0, strict=True))), fd, rtol=grad_rtol, atol=1e-6)


def _check_predictions(fit, da, atol=1e-8, rtol=1e-8):
    """Mean and sd (with each variable's noise) off the grid and leave-one-out moments against the dense GP."""
    K, seen, var, (cov, V, X, Y) = _dense(fit, da)
    new = np.array([0.5, 3.0])
    result = fit.predict(x=new, noise=True)
    Vn, Xn, Yn = (m.ravel() for m in np.meshgrid(np.arange(3), new, da["z"].values, indexing="ij"))
    Ks = cov(Vn, Xn, Yn, V[seen], X[seen], Y[seen])
    y = da.values.ravel()[seen]
    mean = Ks @ np.linalg.solve(K, y)
    total = np.diag(cov(Vn, Xn, Yn, Vn, Xn, Yn)) - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T)) + var[Vn]
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=atol)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(total), rtol=rtol)
    P = np.linalg.inv(K)
    loo = fit.loo()
    np.testing.assert_allclose(loo["mean"].values.ravel()[seen], y - P @ y / np.diag(P), rtol=0, atol=1e-8)
    np.testing.assert_allclose(loo["sd"].values.ravel()[seen], np.diag(P) ** -0.5, rtol=1e-8)
    draws = fit.sample(400, observed=True, random_seed=0, progressbar=False)
    spread = (draws["y"] - draws["f"]).std(("sample", "x", "z"))
    np.testing.assert_allclose(spread, np.sqrt(var), rtol=0.1)  # each variable's own noise


def test_own_noise_log_likelihood_and_gradient_equal_the_dense_gp(own_noise_fit):
    da, fit = own_noise_fit
    assert fit.spec.solver.name == "dense"
    assert {"noise_variable_sst", "noise_variable_chl", "noise_variable_wind"} <= set(fit.params.data_vars)
    assert float(fit.params["noise"]) == 0.0
    _check_log_likelihood(fit, da)


def test_own_noise_predictions_equal_the_dense_gp(own_noise_fit):
    _check_predictions(*reversed(own_noise_fit))


OWN = {"variable": xkron.Coregion(rank=1, noise=True), "x": xkron.ExpQuad(ls=2.0), "z": xkron.ExpQuad(ls=2.0)}


def test_own_noise_on_a_complete_grid_is_exact_kronecker():
    """Whitened by each variable's noise sd, the complete grid keeps the exact Kronecker solver."""
    da = noisy_grid().fillna(0.3)
    fit = xkron.fit(da, OWN, mean=0.0, progressbar=False, restarts=0)
    assert fit.spec.solver.name == "kronecker"
    _check_log_likelihood(fit, da)
    _check_predictions(fit, da, atol=1e-10, rtol=1e-10)
    dense = xkron.fit(da, OWN, mean=0.0, progressbar=False, restarts=0, solver="dense")
    xr.testing.assert_allclose(fit.params, dense.params, rtol=1e-4, atol=1e-4)


def test_own_noise_on_the_iterative_solver_matches_the_dense_gp(own_noise_fit):
    """Gappy and whitened: the iterative solver's optimum, predictions and leave-one-out against the dense GP."""
    da, dense = own_noise_fit
    fit = xkron.fit(da, OWN, mean=0.0, progressbar=False, restarts=0, solver="iterative")
    report = fit.optimizer["solver"]
    assert report["cg_converged"] and report["logp_se"] > 0
    for name in ("W_variable_sst_1", "W_variable_chl_1", "noise_variable_chl", "noise_variable_wind"):
        np.testing.assert_allclose(float(fit.params[name]), float(dense.params[name]), rtol=0.02)
    _check_log_likelihood(fit, da, rtol=0, atol=4 * report["logp_se"], grad_rtol=0.1)  # a stochastic log|A|
    _check_predictions(fit, da, atol=1e-6, rtol=1e-4)  # CG to 1e-8; Lanczos sd to its 1e-4 bracket


def test_a_fit_with_string_labels_round_trips_through_netcdf(own_noise_fit, tmp_path):
    """The labelled dim's strings are positions in the model: the reopened fit predicts the same."""
    _, fit = own_noise_fit
    fit.to_netcdf(tmp_path / "fit.nc")
    back = xkron.open_fit(tmp_path / "fit.nc")
    assert list(back.data["variable"].values) == LABELS
    xr.testing.assert_identical(back.params, fit.params)
    xr.testing.assert_allclose(back.predict(x=[0.5, 3.0]), fit.predict(x=[0.5, 3.0]), rtol=1e-12)


def test_own_noise_estimates_follow_the_truth(own_noise_fit):
    _, fit = own_noise_fit
    fitted = [float(fit.params[f"noise_variable_{n}"]) for n in LABELS]
    assert fitted[0] < fitted[1] < fitted[2]
    np.testing.assert_allclose(fitted[1:], SIGMA[1:], rtol=0.35)  # 86 observed cells per variable


def test_own_noise_refuses_what_it_cannot_fit():
    da = noisy_grid(n=4)
    kernels = {"variable": xkron.Coregion(noise=True), "x": "ExpQuad", "z": "ExpQuad"}
    known = xr.full_like(da, 0.1).where(da["x"] > 1, 0.2)  # known noise per cell, besides each label's own
    with pytest.raises(ValueError, match="known noise_sd per cell, fitted by the dense solver only; solver='iterat"):
        xkron.fit(da, kernels, solver="iterative", noise_sd=known, progressbar=False)
    with pytest.raises(ValueError, match="in place of noise=: leave noise unset"):
        xkron.fit(da, kernels, noise=0.1, progressbar=False)
    with pytest.raises(ValueError, match="a Gaussian marginal fit only"):
        xkron.fit(da.fillna(0).round().clip(0), kernels, likelihood="poisson", method="laplace", progressbar=False)
