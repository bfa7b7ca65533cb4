"""Options of ``xkron.fit`` beyond the data and kernels (issue 11, items 6, 10, 11, 12).

Every refused input must be refused before any compute: a fixture replaces the model builder
and PyMC's inference entry points with a sentinel, so a test that expects an error fails if
the error comes only after compute started. Tests that need a real fit say so.
"""

from __future__ import annotations

import warnings

import numpy as np
import pymc as pm
import pytest
import scipy.stats
import xarray as xr
from pymc_extras.prior import Prior

import xkron
import xkron.inference.run
import xkron.models.build
from xkron.inference.arguments import OUTPUT_NAMES, accepted_kwargs
from xkron.inference.optimize import MAP_KWARGS
from xkron.spec.kernel_registry import KERNELS
from xkron.spec.likelihoods import LIKELIHOODS
from xkron.spec.support import prior_support


class ComputeReached(Exception):
    """Raised where compute would start: the arguments passed every check."""


@pytest.fixture
def no_compute(monkeypatch):
    """Replace the model builder and PyMC's inference with the sentinel; record the spec built."""
    seen = {}

    def build(y, spec, *args, **kwargs):
        seen["spec"] = spec
        raise ComputeReached("build_model")

    def compute(name):
        def run(*args, **kwargs):
            seen["kwargs"] = kwargs
            raise ComputeReached(name)

        return run

    monkeypatch.setattr(xkron.inference.run, "build_model", build)
    monkeypatch.setattr(xkron.models.build, "build_model", build)
    monkeypatch.setattr(xkron.inference.run, "fit_map", compute("fit_map"))
    for name in ("sample", "fit"):
        monkeypatch.setattr(pm, name, compute(name))
    return seen


@pytest.fixture
def grid():
    rng = np.random.default_rng(1)
    a, b = np.linspace(0.0, 1.0, 6), np.linspace(0.0, 2.0, 5)
    return xr.DataArray(rng.normal(size=(6, 5)), coords={"a": a, "b": b}, dims=("a", "b"), name="t")


K = {"a": "ExpQuad", "b": "ExpQuad"}


def reaches_compute(da, kernels=K, **kwargs):
    with pytest.raises(ComputeReached):
        xkron.fit(da, kernels, progressbar=False, **kwargs)


# --------------------------------------------------------------------------- item 6: prior support

NEGATIVE = Prior("Normal", mu=-5, sigma=0.1)


def _kernel_params():
    for name, cls in KERNELS.items():
        if name in ("SpectralMixture", "Spherical", "Meridional"):  # ExpQuad * Wave parts; two-dim factors (own tests)
            continue
        for key in cls().param_specs():
            if key != "c":  # a trend's pivot is a real number
                yield pytest.param(name, key, id=f"{name}-{key}")


@pytest.mark.parametrize(("kernel", "key"), list(_kernel_params()))
def test_kernel_parameter_refuses_prior_with_negative_support(grid, no_compute, kernel, key):
    kernels = {"a": KERNELS[kernel](**{key: NEGATIVE}), "b": "ExpQuad"}
    with pytest.raises(ValueError, match=rf"{key}_\w+=Prior\(\"Normal\".*must be > 0.*HalfNormal.*Gamma.*LogNormal"):
        xkron.fit(grid, kernels, progressbar=False)


def _likelihood_params():
    for name, cls in LIKELIHOODS.items():
        for param in cls.params:
            yield pytest.param(name, param, id=f"{name}-{param}")


@pytest.mark.parametrize(("likelihood", "param"), list(_likelihood_params()))
def test_likelihood_parameter_refuses_prior_with_negative_support(grid, no_compute, likelihood, param):
    data = {"gamma": np.exp(grid), "negative_binomial": (grid > 0).astype(float) * 3}.get(likelihood, grid)
    obj = LIKELIHOODS[likelihood](**{param: NEGATIVE})
    with pytest.raises(ValueError, match=rf"{param}=Prior.*must be > 0.*positive family"):
        xkron.fit(data, K, likelihood=obj, progressbar=False)


@pytest.mark.parametrize("name", ["amplitude", "noise"])
@pytest.mark.parametrize(
    "prior",
    [NEGATIVE, Prior("Uniform", lower=-1, upper=2), Prior("StudentT", nu=3, mu=1, sigma=1)],
    ids=["normal", "uniform-below-0", "student-t"],
)
def test_scale_refuses_prior_with_negative_support(grid, no_compute, name, prior):
    with pytest.raises(ValueError, match=rf"{name}=.*must be > 0"):
        xkron.fit(grid, K, progressbar=False, **{name: prior})


@pytest.mark.parametrize(
    "prior",
    [
        Prior("Gamma", alpha=2, beta=1),
        Prior("Uniform", lower=0, upper=3),
        Prior("TruncatedNormal", mu=1, sigma=1, lower=0),
        Prior("Normal", mu=0, sigma=1, transform="exp"),
        Prior("Uniform", lower=Prior("HalfNormal", sigma=1), upper=10),
    ],
    ids=["gamma", "uniform-from-0", "truncated-normal", "exp-transform", "nested-positive-bound"],
)
def test_positive_priors_are_accepted_everywhere(grid, no_compute, prior):
    kernels = {"a": xkron.RatQuad(ls=prior, alpha=prior), "b": xkron.Periodic(ls=prior, period=prior)}
    reaches_compute(grid, kernels, amplitude=prior, noise=prior, mean=NEGATIVE)  # the mean is real: any prior
    assert no_compute["spec"].priors["ls_a"] is prior


@pytest.mark.parametrize(
    ("prior", "reference"),
    [
        (Prior("Uniform", lower=-1, upper=2), scipy.stats.uniform(loc=-1, scale=3)),
        (Prior("Gamma", alpha=2, beta=1), scipy.stats.gamma(2)),
        (Prior("Pareto", alpha=2, m=0.5), scipy.stats.pareto(2, scale=0.5)),
        (Prior("Beta", alpha=2, beta=3), scipy.stats.beta(2, 3)),
        (Prior("Normal", mu=5, sigma=0.1), scipy.stats.norm(5, 0.1)),
        (Prior("TruncatedNormal", mu=0, sigma=1, lower=-0.5, upper=2), scipy.stats.truncnorm(-0.5, 2)),
        (Prior("Triangular", lower=-1, c=0, upper=3), scipy.stats.triang(0.25, loc=-1, scale=4)),
        (Prior("HalfCauchy", beta=1), scipy.stats.halfcauchy()),
    ],
    ids=lambda v: v.distribution if isinstance(v, Prior) else "",
)
def test_prior_support_matches_scipy(prior, reference):
    assert prior_support(prior) == pytest.approx(tuple(float(v) for v in reference.support()))


def test_prior_support_of_transformed_prior_covers_its_draws():
    prior = Prior("Normal", mu=0, sigma=3, transform="sigmoid")
    lower, upper = prior_support(prior)
    with pm.Model():
        draws = pm.draw(prior.create_variable("x"), draws=2000, random_seed=0)
    assert (lower, upper) == pytest.approx((0.0, 1.0))
    assert lower <= draws.min() and draws.max() <= upper


# --------------------------------------------------------------------------- item 10: extra keywords


@pytest.mark.parametrize(
    ("kwargs", "suggestion"),
    [
        ({"progresbar": False}, "progressbar"),
        ({"method": "nuts", "drawz": 20}, "draws"),
        ({"method": "nuts", "target_accpt": 0.9}, "target_accept"),
        ({"opitons": {"maxiter": 3}}, "options"),
        ({"latent": True, "method": "advi", "nn": 10}, "n"),
    ],
    ids=["progresbar", "drawz", "target_accpt", "opitons", "advi-nn"],
)
def test_misspelt_keyword_is_refused_before_compute_with_a_suggestion(grid, no_compute, kwargs, suggestion):
    with pytest.raises(TypeError, match=rf"unexpected keyword argument .*Did you mean '{suggestion}'"):
        xkron.fit(grid, K, **kwargs)


def test_keyword_of_another_method_says_which(grid, no_compute):
    with pytest.raises(TypeError, match=r"'draws'.*applies to method='nuts' or 'advi'"):
        xkron.fit(grid, K, method="map", draws=10, progressbar=False)


@pytest.mark.parametrize("name", ["model", "seed", "start", "return_inferencedata"])
def test_keywords_xkron_sets_itself_are_refused(grid, no_compute, name):
    with pytest.raises(TypeError, match=rf"does not take {name}="):
        xkron.fit(grid, K, method="nuts" if name == "return_inferencedata" else "map", progressbar=False, **{name: 1})


@pytest.mark.parametrize(
    ("method", "kwargs", "target"),
    [
        ("map", {"options": {"maxiter": 3}, "tol": 1e-6, "maxeval": 10}, "fit_map"),
        ("nuts", {"draws": 5, "tune": 5, "chains": 1, "target_accept": 0.9, "max_treedepth": 5}, "sample"),
        ("nuts", {"nuts": {"target_accept": 0.9}, "initvals": {"noise": 0.5}, "step_scale": 0.1}, "sample"),
        ("advi", {"n": 10, "draws": 3, "obj_n_mc": 2, "obj_optimizer": None}, "fit"),
    ],
    ids=["map", "nuts", "nuts-step", "advi"],
)
def test_accepted_keywords_reach_the_optimiser_or_pymc(grid, monkeypatch, method, kwargs, target):
    """Valid keywords pass the check and arrive, unchanged, at the PyMC function that runs."""
    seen = {}

    def record(*args, **kw):
        seen.update(kw)
        raise ComputeReached(target)

    monkeypatch.setattr(xkron.inference.run if target == "fit_map" else pm, target, record)
    latent = method == "advi"
    with pytest.raises(ComputeReached, match=target):
        xkron.fit(grid, K, method=method, latent=latent or None, restarts=0, progressbar=False, **kwargs)
    assert {k: seen[k] for k in kwargs if k != "draws" or method != "advi"} == {
        k: v for k, v in kwargs.items() if k != "draws" or method != "advi"
    }


def test_accepted_keywords_follow_the_installed_signatures():
    import inspect

    sample = set(inspect.signature(pm.sample).parameters) - {"kwargs", "model", "return_inferencedata"}
    assert sample <= set(accepted_kwargs("nuts"))
    assert {"target_accept", "max_treedepth", "nuts"} <= set(accepted_kwargs("nuts"))
    assert set(accepted_kwargs("map")) == set(MAP_KWARGS) - {"method"}  # method= is fit's own
    assert {"n", "obj_optimizer", "draws", "callbacks"} <= set(accepted_kwargs("advi"))


# --------------------------------------------------------------------------- item 11: options that do nothing


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"shared": True}, ValueError, r"shared=True applies to fits along batch_dims"),
        ({"errors": "record"}, ValueError, r"errors='record' applies to fits along batch_dims"),
        ({"errors": "ignore"}, ValueError, r"errors='ignore' is not one of"),
        ({"shared": "yes"}, TypeError, r"shared must be True or False"),
        ({"collapse": True}, ValueError, r"collapse= applies to latent models"),
        ({"latent": True, "solver": "dense"}, ValueError, r"solver='dense' applies to the Gaussian marginal"),
        ({"likelihood": "poisson", "solver_options": {"tol": 1e-6}}, ValueError, r"solver_options=.*marginal"),
        ({"solver": "dense", "solver_options": {"tol": 1e-6}}, ValueError, r"\['tol'\] are not read by solver='dense'"),
        ({"solver_options": {"tolerance": 1e-6}}, ValueError, r"not read by any solver.*Did you mean 'tol'"),
        ({"solver_options": [("tol", 1)]}, TypeError, r"solver_options must be a dict"),
        ({"solver": "cholesky"}, ValueError, r"solver='cholesky' is not one of"),
        ({"latent": True, "method": "advi", "collapse": True}, ValueError, r"collapse=True cannot apply"),
    ],
    ids=[
        "shared-without-batch",
        "record-without-batch",
        "errors-unknown",
        "shared-not-bool",
        "collapse-marginal",
        "solver-latent",
        "solver-options-latent",
        "solver-options-other-solver",
        "solver-options-unknown-key",
        "solver-options-not-dict",
        "solver-unknown",
        "collapse-advi",
    ],
)
def test_option_that_does_nothing_is_an_error(grid, no_compute, kwargs, error, match):
    data = (grid > 0).astype(float) * 2 if kwargs.get("likelihood") == "poisson" else grid
    with pytest.raises(error, match=match):
        xkron.fit(data, K, progressbar=False, **kwargs)


def test_solver_options_unused_by_the_auto_choice_warn(grid, no_compute):
    with pytest.warns(UserWarning, match=r"solver='auto' chose solver='kronecker'.*\['tol'\].*unused"):
        reaches_compute(grid, solver_options={"tol": 1e-6})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        reaches_compute(grid, solver="iterative", solver_options={"tol": 1e-6, "probes": 4})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "nuts", "initvals": {"noise": 0.5}},
        {"latent": True, "method": "advi"},
        {"likelihood": "poisson"},
    ],
    ids=["nuts-initvals", "advi", "poisson"],
)
def test_restarts_where_no_map_runs_warn(grid, no_compute, kwargs):
    data = (grid > 0).astype(float) * 2 if kwargs.get("likelihood") == "poisson" else grid
    with pytest.warns(UserWarning, match=r"restarts=5 has no effect here"):
        reaches_compute(data, restarts=5, **kwargs)


# --------------------------------------------------------------------------- item 12: clear errors


def test_constant_data_with_free_noise_is_a_clear_error(grid, no_compute):
    with pytest.raises(ValueError, match=r"all 30 observed cells equal 3\.0.*noise="):
        xkron.fit(grid * 0 + 3.0, K, progressbar=False)
    with pytest.raises(ValueError, match=r"all 29 observed cells equal"):
        xkron.fit((grid * 0 + 3.0).where(grid.a + grid.b > 0), K, latent=True, progressbar=False)


def test_constant_data_with_fixed_noise_fits(grid):
    """Real fit: with the noise fixed the model is regular; the mean is the constant."""
    result = xkron.fit(grid * 0 + 3.0, K, noise=0.1, restarts=0, progressbar=False)
    assert float(result.params["mean"]) == pytest.approx(3.0, abs=1e-3)
    assert np.allclose(result.predict()["mean"], 3.0, atol=1e-3)


@pytest.mark.parametrize("name", sorted(OUTPUT_NAMES))
def test_dim_named_like_an_output_is_refused(grid, no_compute, name):
    with pytest.raises(ValueError, match=rf"data dim '{name}' has the name of .*rename it"):
        xkron.fit(grid.rename(a=name), {name: "ExpQuad", "b": "ExpQuad"}, progressbar=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"restarts": -1}, ValueError, r"restarts=-1 is negative"),
        ({"restarts": 1.5}, TypeError, r"restarts must be a whole number"),
        ({"restarts": True}, TypeError, r"restarts must be a whole number"),
        ({"random_seed": -1}, ValueError, r"random_seed=-1 is negative"),
        ({"random_seed": "0"}, TypeError, r"random_seed must be None or a whole number"),
    ],
    ids=["restarts-negative", "restarts-float", "restarts-bool", "seed-negative", "seed-str"],
)
def test_bad_counts_and_seeds(grid, no_compute, kwargs, error, match):
    with pytest.raises(error, match=match):
        xkron.fit(grid, K, progressbar=False, **kwargs)


def test_numpy_scalars_and_0d_arrays_are_numbers(grid, no_compute):
    kernels = {"a": xkron.ExpQuad(ls=np.array(0.4)), "b": xkron.ExpQuad(ls={"b": np.float32(0.7)})}
    reaches_compute(
        grid, kernels, amplitude=np.array(1.5), noise=np.array(0.2), mean=np.array(-1.0), restarts=np.int64(0)
    )
    priors = no_compute["spec"].priors
    assert priors == pytest.approx({"ls_a": 0.4, "ls_b": 0.7, "amplitude": 1.5, "noise": 0.2, "mean": -1.0})


def test_int_mask_says_boolean_and_how_to_convert(grid, no_compute):
    with pytest.raises(TypeError, match=r"mask must be boolean .*dtype is int64.*mask\.astype\(bool\)"):
        xkron.fit(grid, K, mask=xr.ones_like(grid, dtype=int), progressbar=False)
    with pytest.raises(TypeError, match=r"mask must be a boolean xarray\.DataArray .*not ndarray"):
        xkron.fit(grid, K, mask=np.ones(grid.shape, dtype=bool), progressbar=False)


def test_noise_zero_without_known_noise_points_to_noise_sd(grid, no_compute):
    with pytest.raises(ValueError, match=r"noise=0\.0 is invalid.*noise_sd="):
        xkron.fit(grid, K, noise=0, progressbar=False)


def test_noise_zero_with_noise_sd_fits_with_the_known_noise_alone(grid):
    """Real fit (documented in the README): compare the smoothed mean with the dense GP formula."""
    rng = np.random.default_rng(2)
    sd = xr.DataArray(rng.uniform(0.1, 0.4, grid.shape), coords=grid.coords, dims=grid.dims)
    result = xkron.fit(grid, K, noise=0, noise_sd=sd, restarts=0, progressbar=False)
    p = {k: float(v) for k, v in result.params.data_vars.items()}
    assert p["noise"] == 0.0
    a, b = np.meshgrid(grid.a.values, grid.b.values, indexing="ij")
    x = np.column_stack([a.ravel(), b.ravel()])
    d2 = ((x[:, None, 0] - x[None, :, 0]) / p["ls_a"]) ** 2 + ((x[:, None, 1] - x[None, :, 1]) / p["ls_b"]) ** 2
    cov = p["amplitude"] ** 2 * np.exp(-0.5 * d2)
    y = grid.values.ravel()
    expected = p["mean"] + cov @ np.linalg.solve(cov + np.diag(sd.values.ravel() ** 2), y - p["mean"])
    np.testing.assert_allclose(result.predict()["mean"].values.ravel(), expected, rtol=1e-6, atol=1e-8)


def test_subsample_thins_an_aligned_mask_with_the_data(grid):
    """Real fit: an all-True mask aligned with the data fits as if it were not given."""
    mask = xr.ones_like(grid, dtype=bool)
    with_mask = xkron.fit(grid, K, mask=mask, subsample={"a": 2}, noise=0.3, restarts=0, progressbar=False)
    without = xkron.fit(grid, K, subsample={"a": 2}, noise=0.3, restarts=0, progressbar=False)
    xr.testing.assert_allclose(with_mask.params, without.params)
    assert with_mask.data.sizes == grid.sizes


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"likelihood": "student_t"}, r"subsample= applies to Gaussian marginal fits"),
        ({"subsample": {"time": 2}}, r"subsample dim 'time' is not in the data"),
        ({"subsample": {"a": 0}}, r"a step must be >= 1"),
        ({"subsample": {"a": 6}}, r"subsample\['a'\]=6 keeps 1 of the 6 coordinates.*a step of at most 5"),
        ({"nan": "thinned"}, r"subsample=\{'a': 2\} keeps 15 cells, all NaN or masked"),
        ({"noise_sd": "negative-off-grid"}, r"noise_sd must be a finite sd >= 0 at every observed cell.*'a': 0\.2"),
        ({"noise_sd": "misaligned"}, r"noise_sd does not align with the data along 'a'"),
    ],
    ids=["student-t", "unknown-dim", "zero-step", "step-too-large", "thinned-all-missing", "sd-off-grid", "sd-align"],
)
def test_subsample_refuses_before_fitting_what_it_cannot_condition_on(grid, no_compute, change, match):
    """Refused before the thinned fit starts, also where only the whole grid's cells are wrong
    (a negative noise_sd at a cell the thinning drops: a = 0.2 is the second coordinate)."""
    kwargs = {"subsample": {"a": 2}}
    data = grid
    if change.pop("nan", None) == "thinned":
        data = grid.where(grid.a.isin(grid.a.values[1::2]))
    sd = change.get("noise_sd")
    if sd == "negative-off-grid":
        change["noise_sd"] = xr.full_like(grid, 0.1).where((grid.a != 0.2) | (grid.b != 0.0), -1.0)
    elif sd == "misaligned":
        change["noise_sd"] = xr.full_like(grid, 0.1).assign_coords(a=grid.a.values + 1)
    kwargs.update(change)
    with pytest.raises(ValueError, match=match):
        xkron.fit(data, K, progressbar=False, **kwargs)


@pytest.mark.parametrize("change", ["mask-hides", "noise-sd-cells", "nan-cell"])
def test_subsample_takes_gaps_masks_and_per_cell_noise(grid, no_compute, change):
    """Refused until issue 13: the thinned fit now starts (its spec: the thinned grid, gaps and noise thinned
    alike; the conditioning on the whole grid is checked in tests/results/test_condition_gappy.py)."""
    hide = (grid.a != 0.4) | (grid.b != 0.0)  # a = 0.4 is kept by the thinning (a[::2])
    kwargs = {"subsample": {"a": 2}, "noise": 0.3}
    data = grid.where(hide) if change == "nan-cell" else grid
    if change == "mask-hides":
        kwargs["mask"] = hide
    if change == "noise-sd-cells":
        kwargs["noise_sd"] = 0.1 + 0.05 * grid.a
    reaches_compute(data, **kwargs)
    spec = no_compute["spec"]
    assert spec.factors[0].coords[0].tolist() == grid.a.values[::2].tolist()
    if change == "noise-sd-cells":
        np.testing.assert_allclose(spec.known_noise_sd, (0.1 + 0.05 * grid.a[::2]).values[:, None] * np.ones((1, 5)))
    else:
        assert spec.solver == "dense" and spec.known_noise_sd is None


def test_batch_arguments_no_slice_can_take_are_refused_before_any_slice_is_fitted(no_compute):
    rng = np.random.default_rng(3)
    da = xr.DataArray(
        rng.normal(size=(2, 6, 5)), coords={"m": ["r1", "r2"], "a": np.linspace(0, 1, 6), "b": np.arange(5.0)}
    )
    with pytest.raises(ValueError, match=r"every batch slice was refused; the first, m='r1': fixed value noise=0"):
        xkron.fit(da, K, batch_dims="m", noise=0, progressbar=False)
    with pytest.raises(ValueError, match=r"every batch slice was refused.*ls_a=Prior"):
        xkron.fit(da, {"a": xkron.ExpQuad(ls=NEGATIVE), "b": "ExpQuad"}, batch_dims="m", errors="record")
