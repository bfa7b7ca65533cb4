"""``KronFit.predict`` against the dense GP formulas (numpy solve), point by point.

The reference builds the full training covariance from kernel formulas written out in numpy
(``ref_corr``) over the Cartesian list of training points, and the test-by-train
cross-covariance over the list of requested points, then uses

    mean = μ + K*ₓ (Kₓₓ + σ²I)⁻¹ (y − μ),   var = η² − diag(K*ₓ (Kₓₓ + σ²I)⁻¹ Kₓ*)  (+ σ²)

Every fit here fixes all hyperparameters (or reads them back from ``fit.params``), so no
optimisation noise enters the comparison.
"""

from __future__ import annotations

import tracemalloc

import cftime
import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from pymc_extras.prior import Prior
from threadpoolctl import threadpool_limits

import xkron
from xkron.linalg.kronecker import kron_matvec, mode_product

ATOL = 1e-8


# --------------------------------------------------------------------------- reference


def ref_corr(name, diffs, ls, alpha=None, period=None):
    if name == "Periodic":
        r2 = sum((np.sin(np.pi * d / period) / ell) ** 2 for d, ell in zip(diffs, ls, strict=True))
        return np.exp(-0.5 * r2)
    r2 = sum((d / ell) ** 2 for d, ell in zip(diffs, ls, strict=True))
    r = np.sqrt(r2)
    return {
        "ExpQuad": lambda: np.exp(-0.5 * r2),
        "Matern12": lambda: np.exp(-r),
        "Matern32": lambda: (1 + np.sqrt(3) * r) * np.exp(-np.sqrt(3) * r),
        "Matern52": lambda: (1 + np.sqrt(5) * r + 5.0 / 3.0 * r2) * np.exp(-np.sqrt(5) * r),
        "RatQuad": lambda: (1 + r2 / (2 * alpha)) ** (-alpha),
        "Cosine": lambda: np.cos(2 * np.pi * r),
    }[name]()


def kmat(P, Q, factors, eta):
    """``η² ∏_f k_f(P, Q)`` for point lists ``P``, ``Q`` (dicts dim -> 1-D numeric array)."""
    K = eta**2
    for dims, name, params in factors:
        diffs = [np.subtract.outer(P[d], Q[d]) for d in dims]
        K = K * ref_corr(name, diffs, params["ls"], params.get("alpha"), params.get("period"))
    return K


def dense_predict(train, y, test, factors, eta, sigma, mu, noise=False):
    K = kmat(train, train, factors, eta) + sigma**2 * np.eye(y.size)
    Ks = kmat(test, train, factors, eta)
    mean = mu + Ks @ np.linalg.solve(K, y - mu)
    var = eta**2 - np.einsum("mn,nm->m", Ks, np.linalg.solve(K, Ks.T))
    return mean, var + (sigma**2 if noise else 0.0)


def to_days(values):
    """Numeric coordinates as the kernels see them: numbers, or days since 1970-01-01.

    Written independently of xkron.spec.coords: timedelta arithmetic for datetime64, and the
    360-day calendar's arithmetic (12 months of 30 days) for cftime.
    """
    values = np.asarray(values)
    if values.dtype.kind == "M":
        return (values - np.datetime64("1970-01-01T00:00:00", "ns")) / np.timedelta64(1, "D")
    if values.dtype.kind == "O":
        out = []
        for t in values.ravel():
            assert t.calendar == "360_day"
            day = (t.year - 1970) * 360 + (t.month - 1) * 30 + (t.day - 1)
            out.append(day + (t.hour + (t.minute + t.second / 60) / 60) / 24)
        return np.array(out).reshape(values.shape)
    return values.astype(float)


def training_points(da):
    mesh = np.meshgrid(*[to_days(da[d].values) for d in da.dims], indexing="ij")
    return {d: m.ravel() for d, m in zip(da.dims, mesh, strict=True)}, da.values.ravel().astype(float)


def requested_points(result, dims):
    """Numeric coordinates of every element of ``result['mean']``, in its C order."""
    mean = result["mean"]
    return {d: to_days(result[d].broadcast_like(mean).transpose(*mean.dims).values).ravel() for d in dims}


def check_against_dense(result, da, factors, eta, sigma, mu, noise=False, atol=ATOL):
    train, y = training_points(da)
    test = requested_points(result, da.dims)
    mean, var = dense_predict(train, y, test, factors, eta, sigma, mu, noise)
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=atol)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(var), rtol=0, atol=atol)


# --------------------------------------------------------------------------- fixtures

ETA, SIGMA, MU = 1.1, 0.3, 0.4
XY_FACTORS = [(("x",), "Matern52", {"ls": [0.6]}), (("y",), "RatQuad", {"ls": [0.8], "alpha": 1.5})]


def _field(shape, seed=0):
    rng = np.random.default_rng(seed)
    return MU + rng.normal(size=shape)


@pytest.fixture(scope="module")
def xy_data():
    x = np.array([0.0, 0.3, 0.5, 0.9, 1.4, 1.6, 2.0])  # uneven spacing
    y = np.linspace(-1.0, 1.5, 6)
    return xr.DataArray(
        _field((7, 6)),
        coords={"x": ("x", x, {"units": "km", "long_name": "distance"}), "y": ("y", y, {"units": "m"})},
        dims=("x", "y"),
        name="tas",
        attrs={"units": "K", "long_name": "air temperature", "standard_name": "air_temperature"},
    )


@pytest.fixture(scope="module")
def xy_fit(xy_data):
    kernels = {"x": xkron.Matern52(ls=0.6), "y": xkron.RatQuad(ls=0.8, alpha=1.5)}
    return xkron.fit(xy_data, kernels, amplitude=ETA, noise=SIGMA, mean=MU, progressbar=False)


# --------------------------------------------------------------------------- (a)-(e)


def test_fixed_fit_has_no_free_parameters(xy_fit):
    assert xy_fit.spec.free_names() == []
    assert {k: float(v) for k, v in xy_fit.params.items()} == {
        "ls_x": 0.6,
        "ls_y": 0.8,
        "alpha_y": 1.5,
        "amplitude": ETA,
        "noise": SIGMA,
        "mean": MU,
    }


def test_new_grid_over_subset_of_dims(xy_data, xy_fit):
    new_x = np.linspace(-0.5, 2.5, 9)  # inside and outside the training range
    result = xy_fit.predict(x=new_x)
    assert result["mean"].dims == ("x", "y")
    np.testing.assert_array_equal(result["x"].values, new_x)
    np.testing.assert_array_equal(result["y"].values, xy_data["y"].values)
    check_against_dense(result, xy_data, XY_FACTORS, ETA, SIGMA, MU)


def test_training_grid_when_nothing_is_requested(xy_data, xy_fit):
    result = xy_fit.predict()
    assert result["mean"].dims == ("x", "y")
    check_against_dense(result, xy_data, XY_FACTORS, ETA, SIGMA, MU)


def test_scattered_points_interpolation_and_extrapolation(xy_data, xy_fit):
    rng = np.random.default_rng(3)
    px = np.concatenate([rng.uniform(0, 2, 8), [-1.0, 3.5, 0.45, 10.0]])
    py = np.concatenate([rng.uniform(-1, 1.5, 8), [0.2, -2.0, 2.5, 10.0]])
    result = xy_fit.predict(x=xr.DataArray(px, dims="p"), y=xr.DataArray(py, dims="p"))
    assert result["mean"].dims == ("p",)
    check_against_dense(result, xy_data, XY_FACTORS, ETA, SIGMA, MU)
    # Far from the data the prediction falls back to the prior.
    assert float(result["mean"][-1]) == pytest.approx(MU, abs=1e-6)
    assert float(result["sd"][-1]) == pytest.approx(ETA, abs=1e-6)


def test_noise_adds_sigma_squared_not_sigma(xy_data, xy_fit):
    new_x = np.linspace(-0.5, 2.5, 5)
    latent = xy_fit.predict(x=new_x)
    observed = xy_fit.predict(x=new_x, noise=True)
    check_against_dense(observed, xy_data, XY_FACTORS, ETA, SIGMA, MU, noise=True)
    np.testing.assert_allclose(observed["sd"] ** 2 - latent["sd"] ** 2, SIGMA**2, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(observed["mean"].values, latent["mean"].values)
    assert observed.attrs["includes_noise"] == 1 and latent.attrs["includes_noise"] == 0


def test_map_fit_predictions_use_its_params(xy_data):
    """A fitted (not fixed) model: the dense reference uses the values in ``fit.params``."""
    fit = xkron.fit(xy_data, {"x": xkron.Matern32(), "y": xkron.ExpQuad()}, progressbar=False)
    p = {k: float(v) for k, v in fit.params.items()}
    factors = [(("x",), "Matern32", {"ls": [p["ls_x"]]}), (("y",), "ExpQuad", {"ls": [p["ls_y"]]})]
    result = fit.predict(x=[-0.2, 0.7, 2.4], y=[0.0, 1.9])
    check_against_dense(result, xy_data, factors, p["amplitude"], p["noise"], p["mean"])


# --------------------------------------------------------------------------- (c) 3 factors, 2-dim factor

GRID3_FACTORS = [
    (("lat", "lon"), "ExpQuad", {"ls": [1.0, 1.5]}),
    (("time",), "Matern32", {"ls": [2.0]}),
    (("lev",), "Periodic", {"ls": [1.0], "period": 3.0}),
]


def _grid3(order):
    coords = {
        "time": np.array([0.0, 1.0, 2.5, 4.0]),
        "lat": np.array([-1.0, 0.0, 1.2]),
        "lev": np.array([0.0, 1.0, 2.0]),
        "lon": np.array([0.0, 0.8, 1.6, 3.0]),
    }
    shape = [len(coords[d]) for d in order]
    return xr.DataArray(_field(shape, seed=5), coords={d: coords[d] for d in order}, dims=order)


def _fit3(da):
    kernels = {
        ("lat", "lon"): xkron.ExpQuad(ls={"lat": 1.0, "lon": 1.5}),
        "time": xkron.Matern32(ls=2.0),
        "lev": xkron.Periodic(ls=1.0, period=3.0),
    }
    return xkron.fit(da, kernels, amplitude=ETA, noise=SIGMA, mean=MU, progressbar=False)


@pytest.mark.parametrize("order", [("time", "lat", "lev", "lon"), ("lat", "lon", "time", "lev")])
def test_three_factor_grid_with_two_dim_factor(order):
    da = _grid3(order)
    fit = _fit3(da)
    result = fit.predict(lat=np.array([-1.5, 0.5]), lon=np.array([0.4, 2.0, 4.0]), time=np.array([3.0, 6.0]))
    assert result["mean"].dims == order
    check_against_dense(result, da, GRID3_FACTORS, ETA, SIGMA, MU)


@pytest.mark.parametrize(
    ("order", "expected"),
    [
        (("time", "lat", "lev", "lon"), ("time", "site", "lev")),
        (("lat", "lon", "lev", "time"), ("site", "lev", "time")),
    ],
)
def test_points_in_two_dim_factor_with_grid_elsewhere(order, expected):
    """Sites scattered over (lat, lon), a grid in time: output dims follow the data's order."""
    da = _grid3(order)
    fit = _fit3(da)
    sites = xr.Dataset({"lat": ("site", [-0.5, 0.3, 2.0, 1.2]), "lon": ("site", [0.1, 2.5, -1.0, 0.8])})
    result = fit.predict(sites, time=np.array([0.5, 5.0]))
    assert result["mean"].dims == expected
    check_against_dense(result, da, GRID3_FACTORS, ETA, SIGMA, MU)


# --------------------------------------------------------------------------- (f) time coordinates


def test_datetime64_time_coordinate():
    times = pd.to_datetime(
        ["2001-01-01", "2001-01-02T06:00", "2001-01-03", "2001-01-05T12:00", "2001-01-06", "2001-01-09"],
        format="ISO8601",
    ).values
    x = np.linspace(0.0, 1.0, 4)
    da = xr.DataArray(_field((6, 4), seed=9), coords={"time": times, "x": x}, dims=("time", "x"))
    fit = xkron.fit(
        da,
        {"time": xkron.Matern32(ls=3.0), "x": xkron.ExpQuad(ls=0.5)},
        amplitude=ETA,
        noise=SIGMA,
        mean=MU,
        progressbar=False,
    )
    factors = [(("time",), "Matern32", {"ls": [3.0]}), (("x",), "ExpQuad", {"ls": [0.5]})]
    new_times = np.array(["2000-12-28", "2001-01-04T03:00", "2001-01-12", "2001-02-01"], dtype="datetime64[ns]")
    result = fit.predict(time=new_times)
    np.testing.assert_array_equal(result["time"].values, new_times)
    assert result["mean"].dims == ("time", "x")
    check_against_dense(result, da, factors, ETA, SIGMA, MU)
    # Time at scattered points, datetime64 in seconds resolution.
    pts_t = xr.DataArray(np.array(["2001-01-01T12:00", "2001-01-20"], dtype="datetime64[s]"), dims="p")
    pts = fit.predict(time=pts_t, x=xr.DataArray([0.2, 1.7], dims="p"))
    check_against_dense(pts, da, factors, ETA, SIGMA, MU)


def test_cftime_360_day_time_coordinate():
    times = xr.date_range("2000-01-01", periods=8, freq="MS", calendar="360_day", use_cftime=True)
    x = np.linspace(0.0, 1.0, 3)
    da = xr.DataArray(_field((8, 3), seed=11), coords={"time": times, "x": x}, dims=("time", "x"), attrs={"units": "K"})
    fit = xkron.fit(
        da,
        {"time": xkron.Matern52(ls=60.0), "x": xkron.ExpQuad(ls=0.5)},
        amplitude=ETA,
        noise=SIGMA,
        mean=MU,
        progressbar=False,
    )
    factors = [(("time",), "Matern52", {"ls": [60.0]}), (("x",), "ExpQuad", {"ls": [0.5]})]
    new_times = np.array(
        [
            cftime.Datetime360Day(1999, 11, 30),
            cftime.Datetime360Day(2000, 3, 16, 12),
            cftime.Datetime360Day(2000, 8, 30),
            cftime.Datetime360Day(2001, 2, 1),
        ]
    )
    result = fit.predict(time=new_times)
    assert list(result["time"].values) == list(new_times)
    assert result["mean"].dims == ("time", "x")
    check_against_dense(result, da, factors, ETA, SIGMA, MU)


# --------------------------------------------------------------------------- (g) requests, dims, attrs


def test_points_as_dataset_equal_points_as_dataarray_kwargs(xy_data, xy_fit):
    px, py = [0.1, 1.1, 2.3], [-0.4, 1.0, 0.3]
    from_dataset = xy_fit.predict(xr.Dataset({"x": ("p", px), "y": ("p", py)}))
    from_kwargs = xy_fit.predict(y=xr.DataArray(py, dims="p"), x=xr.DataArray(px, dims="p"))
    xr.testing.assert_identical(from_dataset, from_kwargs)
    check_against_dense(from_dataset, xy_data, XY_FACTORS, ETA, SIGMA, MU)


def test_output_dims_follow_data_order_not_kernel_or_request_order():
    da = xr.DataArray(
        _field((5, 4), seed=2), coords={"y": np.linspace(0, 1, 5), "x": np.linspace(0, 2, 4)}, dims=("y", "x")
    )
    fit = xkron.fit(
        da,
        {"x": xkron.Matern52(ls=0.6), "y": xkron.RatQuad(ls=0.8, alpha=1.5)},
        amplitude=ETA,
        noise=SIGMA,
        mean=MU,
        progressbar=False,
    )
    result = fit.predict(x=np.array([0.5, 2.5]), y=np.array([0.1, 0.2, 1.4]))
    assert result["mean"].dims == result["sd"].dims == ("y", "x")
    assert result["mean"].shape == (3, 2)
    check_against_dense(result, da, XY_FACTORS, ETA, SIGMA, MU)


def test_cf_attributes_of_the_data_are_carried_over(xy_data, xy_fit):
    result = xy_fit.predict(x=np.array([0.25, 3.0]))
    for var in ("mean", "sd"):
        assert result[var].attrs["units"] == "K"
        assert "air temperature" in result[var].attrs["long_name"]
    assert result["mean"].attrs["standard_name"] == "air_temperature"
    assert result["sd"].attrs["standard_name"] == "air_temperature standard_error"
    assert result.attrs["Conventions"].startswith("CF-")
    # Dims kept at their training coordinates keep that coordinate's attributes.
    assert result["y"].attrs == {"units": "m"}


def test_cf_attributes_of_new_coordinates(xy_fit):
    result = xy_fit.predict(x=np.array([0.25, 3.0]))
    assert result["x"].attrs == {"units": "km", "long_name": "distance"}


# --------------------------------------------------------------------------- (h) NUTS mixture


@pytest.fixture(scope="module")
def nuts_fit():
    a, b = np.linspace(0, 1, 5), np.linspace(0, 2, 4)
    rng = np.random.default_rng(4)
    da = xr.DataArray(
        np.sin(3 * a)[:, None] * np.cos(b)[None, :] + 0.1 * rng.normal(size=(5, 4)),
        coords={"a": a, "b": b},
        dims=("a", "b"),
    )
    kernels = {"a": xkron.ExpQuad(ls=Prior("Gamma", alpha=4, beta=8)), "b": xkron.Matern52(ls=0.7)}
    with threadpool_limits(limits=1, user_api="blas"):
        fit = xkron.fit(
            da, kernels, method="nuts", draws=20, tune=20, chains=2, cores=1, progressbar=False, random_seed=1
        )
    return da, fit


def _per_draw_dense(da, fit, test_request):
    """Dense predictions at every (chain, draw) of ``fit.params``: arrays (chain, draw, M)."""
    params = fit.params
    n_chain, n_draw = params.sizes["chain"], params.sizes["draw"]
    result = fit.predict(**test_request)
    train, y = training_points(da)
    test = requested_points(result, da.dims)
    means = np.empty((n_chain, n_draw, result["mean"].size))
    vars_ = np.empty_like(means)
    for c in range(n_chain):
        for d in range(n_draw):
            p = {k: float(v.values if v.ndim == 0 else v.values[c, d]) for k, v in params.items()}
            factors = [(("a",), "ExpQuad", {"ls": [p["ls_a"]]}), (("b",), "Matern52", {"ls": [p["ls_b"]]})]
            means[c, d], vars_[c, d] = dense_predict(train, y, test, factors, p["amplitude"], p["noise"], p["mean"])
    return result, means, vars_


def test_nuts_mixture_is_law_of_total_variance(nuts_fit):
    da, fit = nuts_fit
    assert fit.params["amplitude"].dims == ("chain", "draw")
    assert fit.params.sizes == {"chain": 2, "draw": 20}
    assert float(fit.params["amplitude"].std()) > 0  # the draws differ
    result, means, vars_ = _per_draw_dense(da, fit, {"a": np.array([-0.3, 0.45, 1.6])})
    mix_mean = means.mean(axis=(0, 1))
    mix_var = vars_.mean(axis=(0, 1)) + means.var(axis=(0, 1))  # E[var] + Var[mean]
    assert result["mean"].dims == ("a", "b")
    np.testing.assert_allclose(result["mean"].values.ravel(), mix_mean, rtol=0, atol=ATOL)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(mix_var), rtol=0, atol=ATOL)


def test_nuts_per_draw_returns_chain_and_draw(nuts_fit):
    da, fit = nuts_fit
    request = {"a": xr.DataArray([0.2, 1.3], dims="p"), "b": xr.DataArray([0.5, 2.2], dims="p")}
    _, means, vars_ = _per_draw_dense(da, fit, request)
    per_draw = fit.predict(**request, per_draw=True)
    assert per_draw["mean"].dims == per_draw["sd"].dims == ("chain", "draw", "p")
    np.testing.assert_array_equal(per_draw["chain"].values, fit.params["chain"].values)
    np.testing.assert_array_equal(per_draw["draw"].values, fit.params["draw"].values)
    np.testing.assert_allclose(per_draw["mean"].values, means, rtol=0, atol=ATOL)
    np.testing.assert_allclose(per_draw["sd"].values, np.sqrt(vars_), rtol=0, atol=ATOL)


def test_per_draw_on_map_fit_is_an_error(xy_fit):
    with pytest.raises(ValueError, match="per_draw"):
        xy_fit.predict(x=[0.5], per_draw=True)


# --------------------------------------------------------------------------- dask


def _raise_if_computed(dsk, keys, **kwargs):
    raise RuntimeError("dask computed something while the prediction graph was being built")


def test_dask_points_stay_lazy_and_equal_numpy(xy_fit):
    rng = np.random.default_rng(8)
    px, py = rng.uniform(-0.5, 2.5, 23), rng.uniform(-1.5, 2.0, 23)
    lazy_x = xr.DataArray(dsa.from_array(px, chunks=7), dims="p")
    lazy_y = xr.DataArray(dsa.from_array(py, chunks=7), dims="p")
    with dask.config.set(scheduler=_raise_if_computed):
        lazy = xy_fit.predict(x=lazy_x, y=lazy_y, noise=True)
        assert isinstance(lazy["mean"].data, dsa.Array)
        assert isinstance(lazy["sd"].data, dsa.Array)
        assert lazy["mean"].chunks == ((7, 7, 7, 2),)
    eager = xy_fit.predict(x=xr.DataArray(px, dims="p"), y=xr.DataArray(py, dims="p"), noise=True)
    computed = lazy.compute()
    np.testing.assert_allclose(computed["mean"].values, eager["mean"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(computed["sd"].values, eager["sd"].values, rtol=0, atol=1e-12)


def test_dask_grid_stays_lazy_and_equal_numpy(xy_fit):
    """A dask 1-D request along its own dim: the result is lazy and chunked alike.

    No "raise if computed" scheduler here: the new values become the output's dim
    coordinate, and xarray loads an index coordinate (a 1-D vector) when it builds it.
    """
    new_x = np.linspace(-0.5, 2.5, 10)
    lazy_x = xr.DataArray(dsa.from_array(new_x, chunks=4), dims="x")
    lazy = xy_fit.predict(x=lazy_x)
    assert isinstance(lazy["mean"].data, dsa.Array) and isinstance(lazy["sd"].data, dsa.Array)
    assert lazy["mean"].chunks[0] == (4, 4, 2)
    eager = xy_fit.predict(x=new_x)
    np.testing.assert_allclose(lazy["mean"].values, eager["mean"].values, rtol=0, atol=1e-12)
    np.testing.assert_allclose(lazy["sd"].values, eager["sd"].values, rtol=0, atol=1e-12)


def test_kronecker_products_on_dask_stay_lazy():
    rng = np.random.default_rng(12)
    Y = rng.normal(size=(6, 5, 4))
    Ms = [rng.normal(size=(3, 6)), None, rng.normal(size=(7, 4))]
    lazy_Y = dsa.from_array(Y, chunks=(2, 5, 2))
    with dask.config.set(scheduler=_raise_if_computed):
        lazy_mode = mode_product(lazy_Y, Ms[0], 0)
        lazy_kron = kron_matvec(lazy_Y, Ms)
        assert isinstance(lazy_mode, dsa.Array) and isinstance(lazy_kron, dsa.Array)
    np.testing.assert_allclose(lazy_mode.compute(), mode_product(Y, Ms[0], 0), rtol=0, atol=1e-12)
    # Reference: the explicit Kronecker product acting on row-major vec(Y).
    dense = np.kron(np.kron(Ms[0], np.eye(5)), Ms[2]) @ Y.ravel()
    np.testing.assert_allclose(lazy_kron.compute().ravel(), dense, rtol=0, atol=1e-12)
    np.testing.assert_allclose(kron_matvec(Y, Ms).ravel(), dense, rtol=0, atol=1e-12)


# --------------------------------------------------------------------------- memory


def test_ten_thousand_points_from_a_200_by_200_grid():
    """M = 10⁴ points, N = 4·10⁴ training cells: a dense N×M cross-covariance alone would
    take 3.2 GB. The reference for 50 of the points uses their dense 50×N cross-covariance rows
    and solves with (K + σ²I), each solve checked by its residual.
    """
    x, y = np.linspace(0, 10, 200), np.linspace(0, 5, 200)
    rng = np.random.default_rng(21)
    values = np.sin(x)[:, None] * np.cos(2 * y)[None, :] + 0.3 * rng.normal(size=(200, 200))
    da = xr.DataArray(values, coords={"x": x, "y": y}, dims=("x", "y"))
    eta, sigma, mu = 1.0, 0.3, 0.2
    fit = xkron.fit(
        da,
        {"x": xkron.Matern32(ls=1.0), "y": xkron.Matern52(ls=0.7)},
        amplitude=eta,
        noise=sigma,
        mean=mu,
        progressbar=False,
    )
    px, py = rng.uniform(-0.5, 10.5, 10_000), rng.uniform(-0.5, 5.5, 10_000)

    tracemalloc.start()
    try:
        result = fit.predict(x=xr.DataArray(px, dims="p"), y=xr.DataArray(py, dims="p"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result["mean"].shape == (10_000,)
    assert peak < 1e9, f"predict allocated {peak / 1e9:.1f} GB at its peak"

    # Reference for a random subset: dense cross-covariance rows S (50×N).
    sub = rng.choice(10_000, size=50, replace=False)
    K1 = ref_corr("Matern32", [np.subtract.outer(x, x)], [1.0])
    K2 = ref_corr("Matern52", [np.subtract.outer(y, y)], [0.7])
    S = eta**2 * (
        ref_corr("Matern32", [np.subtract.outer(px[sub], x)], [1.0])[:, :, None]
        * ref_corr("Matern52", [np.subtract.outer(py[sub], y)], [0.7])[:, None, :]
    )

    def apply_K(V):  # (K + σ²I) vec(V) = vec(η² K1 V K2ᵀ + σ² V), batched over a leading axis
        return eta**2 * (K1 @ V @ K2.T) + sigma**2 * V

    lam1, Q1 = np.linalg.eigh(K1)
    lam2, Q2 = np.linalg.eigh(K2)
    W = 1.0 / (eta**2 * np.outer(lam1, lam2) + sigma**2)

    def solve(R):  # (K + σ²I)⁻¹ vec(R), batched over a leading axis
        return Q1 @ (W * (Q1.T @ R @ Q2)) @ Q2.T

    rhs = np.concatenate([(values - mu)[None], S])
    sol = solve(rhs)
    residual = apply_K(sol) - rhs
    assert np.abs(residual).max() < 1e-9 * np.abs(rhs).max()
    alpha, V = sol[0], sol[1:]
    mean = mu + np.einsum("mij,ij->m", S, alpha)
    var = eta**2 - np.einsum("mij,mij->m", S, V)
    np.testing.assert_allclose(result["mean"].values[sub], mean, rtol=0, atol=ATOL)
    np.testing.assert_allclose(result["sd"].values[sub], np.sqrt(var), rtol=0, atol=ATOL)
