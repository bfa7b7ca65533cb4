"""xkron.cross_validate: folds by scheme, no leak, GP predictions against the dense GP, labelled scores.

The grids are tiny (8 × 6 × 5 cells); the GP's held-out predictions are checked against the dense
GP formulas in numpy at fixed hyperparameters, and the schemes against what each promises:
random and block folds partition the scorable cells, and a cloud-transplant fold holds out
exactly the donor's gaps on the target's observed cells.
"""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
import xarray as xr
from matplotlib.figure import Figure

import xkron
from xkron.baselines import dineof, linear_fill
from xkron.crossval import run as cv_run
from xkron.crossval.run import LeakError, check_no_leak, training_data
from xkron.crossval.schemes import make_folds, scorable

SHAPE = (8, 6, 5)
COORDS = {"time": np.arange(8.0), "lat": np.linspace(0, 5, 6), "lon": np.linspace(0, 4, 5)}


def _smooth(noise=0.05, seed=0) -> xr.DataArray:
    t, a, b = (COORDS[d] for d in ("time", "lat", "lon"))
    f = np.sin(t / 2)[:, None, None] + np.cos(a / 2)[None, :, None] * np.sin(b / 2 + 0.3)[None, None, :]
    rng = np.random.default_rng(seed)
    return xr.DataArray(f + noise * rng.normal(size=SHAPE), coords=COORDS, dims=("time", "lat", "lon"),
                        name="t", attrs={"units": "K"})  # fmt: skip


def _land() -> xr.DataArray:
    land = np.zeros((6, 5), dtype=bool)
    land[:2, :2] = True
    return xr.DataArray(~land, coords={"lat": COORDS["lat"], "lon": COORDS["lon"]}, dims=("lat", "lon"))


def _clouds(da: xr.DataArray, seed=1, cover=0.3) -> xr.DataArray:
    hidden = np.random.default_rng(seed).random(SHAPE) < cover
    hidden[[2, 5]] = False  # two clear time steps
    return da.where(~hidden)


@pytest.fixture(scope="module")
def cv_random():
    """A MAP cross-validation by random cells (hyperparameters fitted once)."""
    kernels = {"time": xkron.Matern52(), ("lat", "lon"): xkron.ExpQuad()}
    return xkron.cross_validate(_smooth(), kernels, "random", folds=4, random_seed=0, progressbar=False)


# --- schemes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["random", "blocks"])
def test_random_and_block_folds_partition_the_scorable_cells(scheme):
    da, mask = _clouds(_smooth()), _land()
    held = make_folds(da, scheme, 3, mask=mask, seed=5)
    ok = scorable(da, mask)
    assert held.dims == ("fold", *da.dims) and held.sizes["fold"] == 3
    assert int(held.sum("fold").max()) == 1  # disjoint
    assert bool((held.any("fold") == ok).all())  # every scorable cell once, nothing else
    assert not bool((held.any("fold") & (da.isnull() | ~mask)).any())  # never a NaN or masked cell
    if scheme == "random":
        sizes = held.sum(da.dims).values
        assert sizes.max() - sizes.min() <= 1


def test_block_folds_hold_out_whole_boxes():
    da = _clouds(_smooth())
    held = make_folds(da, "blocks", 4, blocks={"time": 3, "lat": 2}, seed=2)
    fold_of = held.argmax("fold").values
    box_t, box_a = np.arange(8)[:, None] // 3, np.arange(6)[None, :] // 2
    ok = scorable(da).values
    for bt in range(3):
        for ba in range(3):
            inside = ((box_t == bt) & (box_a == ba))[:, :, None] & ok
            assert np.unique(fold_of[inside]).size <= 1, (bt, ba)
    assert held.attrs["blocks"] == ["time=3", "lat=2", "lon=5"]


def test_block_folds_default_and_bad_blocks():
    da = _smooth()
    held = make_folds(da, "blocks", 5)
    assert held.attrs["blocks"] == ["time=2", "lat=2", "lon=2"]  # ceil(n / 4)
    with pytest.raises(ValueError, match="too few for 5 folds"):
        make_folds(da, "blocks", 5, blocks={"time": 4, "lat": 6, "lon": 5})
    with pytest.raises(ValueError, match="not dims of the data"):
        make_folds(da, "blocks", 2, blocks={"depth": 2})
    with pytest.raises(ValueError, match="whole number of cells"):
        make_folds(da, "blocks", 2, blocks={"time": 0})


@pytest.mark.parametrize("order", [("time", "lat", "lon"), ("lat", "time", "lon")])
def test_cloud_transplant_holds_out_the_donor_gaps_on_the_target(order):
    da, mask = _clouds(_smooth()).transpose(*order), _land()
    held = make_folds(da, "clouds", 3, mask=mask, seed=7).transpose("fold", "time", "lat", "lon")
    obs = scorable(da, mask).transpose("time", "lat", "lon").values
    gaps = ~obs & obs.any(axis=0)  # unobserved there, observed at some time: not land
    donors = [int(np.flatnonzero(COORDS["time"] == d)[0]) for d in held["donor"].values]
    union = held.any("fold").values
    for t, d in enumerate(donors):
        assert d != t and gaps[d].any()
        np.testing.assert_array_equal(union[t], gaps[d] & obs[t])
        assert held.isel(time=t).any(("lat", "lon")).sum() <= 1  # a target belongs to one fold
    assert {2, 5}.isdisjoint(donors)  # clear time steps have no clouds to give
    assert not (union & ~mask.values[None]).any()
    again = make_folds(da, "clouds", 3, mask=mask, seed=7).transpose(*held.dims)
    assert bool((again == held).all())
    assert not bool((make_folds(da, "clouds", 3, mask=mask, seed=8).transpose(*held.dims) == held).all())


def test_clouds_need_gaps_and_a_time_dim():
    with pytest.raises(ValueError, match="needs gaps to transplant"):
        make_folds(_smooth().where(_land()), "clouds", 3, mask=_land())  # NaN only on land: no clouds
    with pytest.raises(ValueError, match="pass time="):
        make_folds(_clouds(_smooth()), "clouds", 3, time="month")


# --- no leak ------------------------------------------------------------------------------------


def test_training_data_hide_the_held_out_cells():
    da = _smooth()
    held = make_folds(da, "random", 3).isel(fold=1, drop=True)
    train = training_data(da, held)
    assert bool(train.where(held).isnull().all()) and bool((train == da).where(~held, True).all())


def test_the_leak_check_fires_when_forced(monkeypatch):
    da = _smooth()
    held = make_folds(da, "random", 3).isel(fold=0, drop=True)
    with pytest.raises(LeakError, match="fold 0: 80 held-out cells"):
        check_no_leak(da, held, fold=0)
    monkeypatch.setattr(xr.DataArray, "where", lambda self, cond, *args, **kwargs: self)  # a broken hiding step
    with pytest.raises(LeakError, match="fold 2"):
        training_data(da, held, fold=2)


def test_no_fit_nor_baseline_ever_sees_a_held_out_value(monkeypatch):
    seen = []
    real_fit = cv_run.api.fit

    def spy(name, function):
        def wrapped(train, *args, **kwargs):
            seen.append((name, train.copy()))
            return function(train, *args, **kwargs)

        return wrapped

    monkeypatch.setattr(cv_run.api, "fit", spy("gp", real_fit))
    monkeypatch.setattr(cv_run, "linear_predict", spy("linear", cv_run.linear_predict))
    monkeypatch.setattr(cv_run, "climatology_predict", spy("climatology", cv_run.climatology_predict))
    da = _clouds(_smooth())
    kernels = {"time": xkron.Matern52(ls=3.0), ("lat", "lon"): xkron.ExpQuad(ls=[2.0, 2.0])}
    cv = xkron.cross_validate(
        da, kernels, "clouds", folds=2, refit=True, amplitude=1.0, noise=0.05, mean="zero", progressbar=False
    )
    assert [name for name, _ in seen] == ["gp", "linear", "climatology"] * 2
    for i, (_, train) in enumerate(seen):
        held = cv.held_out.isel(fold=i // 3, drop=True)
        assert int(held.sum()) > 0 and bool(train.where(held).isnull().all())


# --- the GP against the dense GP ------------------------------------------------------------------


def _dense_reference(da, held, mask, ls, noise):
    """Mean and sd of new observations at the held-out cells: dense GP formulas in numpy."""
    factors = [np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / s**2) for x, s in zip(COORDS.values(), ls, strict=True)]
    k = np.kron(np.kron(factors[0], factors[1]), factors[2])
    train = (scorable(da, mask) & ~held).transpose(*da.dims).values.ravel()
    h = held.transpose(*da.dims).values.ravel()
    c = k[np.ix_(train, train)] + noise**2 * np.eye(train.sum())
    cross = k[np.ix_(h, train)]
    mean = cross @ np.linalg.solve(c, da.values.ravel()[train])
    var = np.diag(k)[h] - np.einsum("ij,ji->i", cross, np.linalg.solve(c, cross.T)) + noise**2
    return mean, np.sqrt(var)


@pytest.mark.parametrize("refit", [False, True])
def test_gp_predictions_equal_the_dense_gp(refit):
    ls, noise = (3.0, 2.0, 1.5), 0.1
    kernels = {"time": xkron.ExpQuad(ls=ls[0]), "lat": xkron.ExpQuad(ls=ls[1]), "lon": xkron.ExpQuad(ls=ls[2])}
    da, mask = _clouds(_smooth()), _land()
    cv = xkron.cross_validate(da, kernels, "random", folds=3, mask=mask, refit=refit, amplitude=1.0, noise=noise,
                              mean="zero", progressbar=False)  # fmt: skip
    for fold in range(3):
        mean, sd = _dense_reference(da, cv.held_out.isel(fold=fold, drop=True), mask, ls, noise)
        got = cv.predictions.where(cv.predictions["fold"] == fold, drop=True).sel(model="gp")
        np.testing.assert_allclose(got["mean"], mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got["sd"], sd, rtol=1e-8)


def test_known_noise_adds_to_the_predictive_sd():
    da = _smooth()
    noise_sd = xr.full_like(da, 0.2)
    kernels = {"time": xkron.ExpQuad(ls=3.0), ("lat", "lon"): xkron.ExpQuad(ls=[2.0, 2.0])}
    options = {"amplitude": 1.0, "noise": 0.1, "mean": "zero", "progressbar": False}
    with_known = xkron.cross_validate(da, kernels, folds=2, baselines=(), noise_sd=noise_sd, **options)
    fit = xkron.fit(da, kernels, noise_sd=noise_sd, **options)
    held = with_known.held_out.isel(fold=0, drop=True)
    pred = fit.condition(da.where(~held), noise_sd=noise_sd).predict(noise=True)
    first = with_known.predictions.where(with_known.predictions["fold"] == 0, drop=True).sel(model="gp")
    np.testing.assert_allclose(first["sd"], np.sqrt(pred["sd"].values[held.values] ** 2 + 0.2**2), rtol=1e-12)


# --- the baselines --------------------------------------------------------------------------------


def test_baselines_use_the_training_cells_only(cv_random):
    da = _smooth()
    held = cv_random.held_out.isel(fold=1, drop=True)
    train = da.where(~held)
    got = cv_random.predictions.where(cv_random.predictions["fold"] == 1, drop=True)
    np.testing.assert_allclose(got["mean"].sel(model="linear"), linear_fill(train, space=("lat", "lon")).values[held])
    assert np.isnan(got["sd"].sel(model="linear")).all()
    _, a, b = np.nonzero(held.values)
    clim_mean, clim_sd = np.nanmean(train.values, axis=0), np.nanstd(train.values, axis=0, ddof=1)
    np.testing.assert_allclose(got["mean"].sel(model="climatology"), clim_mean[a, b])
    np.testing.assert_allclose(got["sd"].sel(model="climatology"), clim_sd[a, b])


def test_baselines_that_do_not_apply_are_skipped_with_a_note():
    da = _smooth().isel(lon=0, drop=True).rename(lat="x")  # (time, x): one spatial dim
    kernels = {"time": xkron.ExpQuad(ls=3.0), "x": xkron.ExpQuad(ls=2.0)}
    cv = xkron.cross_validate(da, kernels, folds=2, amplitude=1.0, noise=0.1, progressbar=False)
    assert list(cv.summary["model"].values) == ["gp", "climatology"]
    assert "linear: skipped" in cv.summary.attrs["notes"] and "linear: skipped" in repr(cv)


# --- end to end ------------------------------------------------------------------------------------


def test_scores_are_labelled_and_the_gp_beats_climatology(cv_random):
    s, per_fold = cv_random.summary, cv_random.scores
    assert list(s["model"].values) == ["gp", "linear", "climatology"]
    assert per_fold["rmse"].dims == ("fold", "model") and per_fold.sizes["fold"] == 4
    assert s["coverage"].dims == ("model", "level") and list(s["level"].values) == [0.5, 0.9, 0.95]
    assert s["pit"].dims == ("model", "pit_bin") and s["rmse"].attrs["units"] == "K"
    assert int(s["n"].sel(model="gp")) == 240
    gp, climatology = (float(s["rmse"].sel(model=m)) for m in ("gp", "climatology"))
    assert gp < 0.5 * climatology
    assert float(s["crps"].sel(model="gp")) < float(s["crps"].sel(model="climatology"))
    assert 0.75 <= float(s["coverage"].sel(model="gp", level=0.9)) <= 1.0
    assert np.isnan(float(s["crps"].sel(model="linear")))


def test_summary_is_the_count_weighted_mean_of_the_folds(cv_random):
    s, f = cv_random.summary, cv_random.scores
    w = f["n"] / f["n"].sum("fold")
    np.testing.assert_allclose(s["rmse"], np.sqrt((w * f["rmse"] ** 2).sum("fold")), rtol=1e-12)
    for name in ("mae", "crps", "coverage", "pit"):
        expected = (w * f[name]).sum("fold", skipna=False)
        np.testing.assert_allclose(s[name], expected.transpose(*s[name].dims), rtol=1e-12, err_msg=name)


def test_predictions_are_the_held_out_cells(cv_random):
    p, da = cv_random.predictions, _smooth()
    truth = da.sel(time=p["time"], lat=p["lat"], lon=p["lon"])
    np.testing.assert_array_equal(p["truth"].values, truth.values)
    assert p.sizes["cell"] == 240 and p["mean"].dims == ("model", "cell")
    for fold in range(4):
        cells = p.where(p["fold"] == fold, drop=True)
        assert cells.sizes["cell"] == int(cv_random.held_out.isel(fold=fold).sum())


def test_written_scores_and_the_reliability_plot(cv_random, tmp_path):
    path = tmp_path / "scores.nc"
    cv_random.to_netcdf(path)
    with xr.open_dataset(path) as root:
        np.testing.assert_allclose(root["rmse"], cv_random.summary["rmse"])
        assert root.attrs["Conventions"] == "CF-1.8" and root.attrs["scheme"] == "random"
    with xr.open_datatree(path) as tree:
        assert set(tree.children) == {"folds", "predictions"}
        np.testing.assert_allclose(tree["folds"]["crps"], cv_random.scores["crps"])
    fig = cv_random.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["calibrated", "gp (240 cells)",
                                                                            "climatology (240 cells)"]  # fmt: skip
    fig.savefig(tmp_path / "reliability.png")
    image = matplotlib.image.imread(tmp_path / "reliability.png")
    assert image.shape[0] > 300 and image.shape[1] > 700


def test_bad_options_are_refused_before_any_fit(monkeypatch):
    def no_fit(*args, **kwargs):
        raise AssertionError("fitted before refusing")

    monkeypatch.setattr(cv_run.api, "fit", no_fit)
    da, kernels = _smooth(), {"time": "ExpQuad", "lat": "ExpQuad", "lon": "ExpQuad"}
    cases = [
        ({"scheme": "cloud"}, ValueError, "unknown scheme 'cloud'"),
        ({"blocks": {"time": 2}}, ValueError, "applies to scheme='blocks'"),
        ({"folds": 1}, ValueError, "folds must be a whole number >= 2"),
        ({"baselines": ("dineof", "kriging")}, ValueError, r"unknown baselines \[.kriging.\]"),
        ({"space": ("lat", "depth")}, ValueError, "space must name two dims"),
        ({"levels": (0.9, 1.0)}, ValueError, "levels must be probabilities"),
        ({"likelihood": "poisson"}, ValueError, "likelihood must be gaussian"),
        ({"scheme": "clouds"}, ValueError, "needs gaps"),
    ]
    for options, error, message in cases:
        with pytest.raises(error, match=message):
            xkron.cross_validate(da, kernels, **options)
    with pytest.raises(TypeError, match=r"call data.load\(\) first"):
        xkron.cross_validate(da.chunk(4), kernels)


# --- a fit given in place of kernels, and DINEOF ---------------------------------------------------


def test_a_fitted_kronfit_is_conditioned_per_fold_as_the_kernels_path_fits_it():
    """A fit of another field (here: the clean one) validated on a cloudy field by cloud transplant: its
    hyperparameters conditioned on each fold, equal to the dense GP; DINEOF scored beside it."""
    ls, noise = (3.0, 2.0, 1.5), 0.1
    kernels = {"time": xkron.ExpQuad(ls=ls[0]), "lat": xkron.ExpQuad(ls=ls[1]), "lon": xkron.ExpQuad(ls=ls[2])}
    clean, mask = _smooth(seed=3), _land()
    fitted = xkron.fit(clean, kernels, mask=mask, amplitude=1.0, noise=noise, mean="zero", progressbar=False)
    da = _clouds(_smooth())
    cv = xkron.cross_validate(da, fitted, "clouds", folds=2, mask=mask, baselines=("climatology", "dineof"))
    assert list(cv.summary["model"].values) == ["gp", "climatology", "dineof"]
    assert cv.summary.attrs["hyperparameters"] == "those of the fit given, conditioned per fold"
    for fold in range(2):
        held = cv.held_out.isel(fold=fold, drop=True)
        mean, sd = _dense_reference(da, held, mask, ls, noise)
        got = cv.predictions.where(cv.predictions["fold"] == fold, drop=True)
        np.testing.assert_allclose(got["mean"].sel(model="gp"), mean, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(got["sd"].sel(model="gp"), sd, rtol=1e-8)
        filled = dineof(da.where(~held).where(mask), mask=mask)
        np.testing.assert_allclose(got["mean"].sel(model="dineof"), filled.values[held.values])
        assert np.isnan(got["sd"].sel(model="dineof")).all()


def test_a_fitted_kronfit_refuses_what_would_not_apply():
    da = _smooth()
    fitted = xkron.fit(da, {"time": "ExpQuad", ("lat", "lon"): "ExpQuad"}, restarts=0, progressbar=False)
    with pytest.raises(ValueError, match=r"refit=True, restarts would not apply"):
        xkron.cross_validate(da, fitted, refit=True, restarts=2)
    with pytest.raises(ValueError, match=r"the fit's dims \('time', 'lat', 'lon'\) are not the data's"):
        xkron.cross_validate(da.isel(lon=0, drop=True), fitted)
