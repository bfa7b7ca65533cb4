"""Kernels of latitude alone (``Meridional``, ``PolarWeight``) and their combinations with ``Spherical``.

References written out in numpy, independent of xkron's formulas: the meridian arc ``R |φ − φ'|``
and ``|sin φ|^p`` from the degrees, the chord from points placed on the sphere in 3-D (no
haversine), the Matérn 5/2 profile; numpy's eigensolver for positive semi-definiteness on random
points with the poles and the date line; five-point central differences of the compiled log
density for the gradient; the dense GP (multivariate normal log density, Cholesky solves) for a
fit across the date line and up to both poles.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from pymc_extras.prior import Prior
from scipy.stats import multivariate_normal

import xkron
from xkron.spec.grid import Factor
from xkron.spec.kernel_registry import kernel_from_dict, parse_kernel_expression
from xkron.spec.sphere_kernels import EARTH_RADIUS_KM

R = EARTH_RADIUS_KM
LATS, LONS = [-90.0, -70.0, -12.5, 0.0, 45.0, 88.0, 90.0], [-180.0, -179.0, 0.0, 90.0, 179.0, 180.0, 300.0]
LAT = np.array([-90.0, -60.0, -20.0, 20.0, 60.0, 90.0])
LON = -180.0 + 60.0 * np.arange(6)
P = {"ls_1": 3000.0, "ls_2": 2000.0, "scale": 4.0, "ls_3": 1500.0, "amplitude": 1.2, "noise": 0.3, "mean": 0.5}


def xyz(lat, lon):
    phi, lam = np.radians(lat), np.radians(lon)
    return R * np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def matern52(r):
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


def chord(lat1, lon1, lat2, lon2):
    return np.linalg.norm(xyz(lat1, lon1)[:, None] - xyz(lat2, lon2)[None], axis=-1)


def arc(lat1, lat2):
    return R * np.pi / 180 * np.abs(np.subtract.outer(lat1, lat2))


def polar(lat1, lat2, power=2.0, hemisphere=None):
    """``g(φ) g(φ')``, ``g = |sin φ|^p``, times the indicator of the hemisphere (``None``: both)."""
    side = {None: lambda lat: np.ones_like(lat), "north": lambda lat: lat > 0, "south": lambda lat: lat < 0}[hemisphere]
    g1, g2 = (side(x) * np.abs(np.sin(np.radians(x))) ** power for x in (lat1, lat2))
    return np.multiply.outer(g1, g2)


def kernel():
    """The benchmark's model: ``Spherical*Meridional + c*Spherical*PolarWeight`` (default priors)."""
    return xkron.Spherical() * xkron.Meridional() + xkron.Spherical() * xkron.PolarWeight()


def dense(p, la1, lo1, la2, lo2):
    """``η² [M52(chord/ℓ₁) M52(arc/ℓ₂) + c M52(chord/ℓ₃) sin²φ sin²φ']``, written out."""
    c = chord(la1, lo1, la2, lo2)
    k = matern52(c / p["ls_1"]) * matern52(arc(la1, la2) / p["ls_2"])
    return p["amplitude"] ** 2 * (k + p["scale"] * matern52(c / p["ls_3"]) * polar(la1, la2))


def test_meridional_and_polar_weight_equal_their_formulas():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, 25), rng.uniform(-180, 540, 25)
    lat[:2] = [90.0, -90.0]
    got = xkron.Meridional(ls=800.0).matrix([lat, lon], [lat, lon], {"ls": 800.0})
    np.testing.assert_allclose(got, matern52(arc(lat, lat) / 800.0), rtol=1e-12, atol=1e-14)
    got = xkron.Meridional(xkron.ExpQuad()).matrix([lat, lon], [lat[:3], lon[:3]], {"ls": 500.0})
    np.testing.assert_allclose(got, np.exp(-0.5 * (arc(lat, lat[:3]) / 500.0) ** 2), rtol=1e-12, atol=1e-14)
    for power in (1, 2.5):
        got = xkron.PolarWeight(power).matrix([lat, lon], [lat, lon], {})
        np.testing.assert_allclose(got, polar(lat, lat, power), rtol=1e-12, atol=1e-14)
    assert got[0, 1] == pytest.approx(1.0, abs=1e-12)  # both poles weigh 1


def test_polar_weight_of_one_hemisphere_equals_its_formula_and_is_zero_in_the_other():
    rng = np.random.default_rng(1)
    lat, lon = rng.uniform(-90, 90, 30), rng.uniform(-180, 540, 30)
    lat[:4] = [90.0, -90.0, 0.0, -0.0]
    for hemisphere in ("north", "south"):
        for power in (1, 2.0, 3.5):
            k = xkron.PolarWeight(power, hemisphere=hemisphere)
            got = k.matrix([lat, lon], [lat[5:], lon[5:]], {})
            np.testing.assert_allclose(got, polar(lat, lat[5:], power, hemisphere), rtol=1e-12, atol=1e-14)
        other = lat < 0 if hemisphere == "north" else lat > 0
        K = k.matrix([lat, lon], [lat, lon], {})
        assert np.all(K[other] == 0) and np.all(K[:, other] == 0)
        assert np.all(K[2:4] == 0)  # the equator is in neither
        assert K[0 if hemisphere == "north" else 1].max() > 0
        assert K[0, 0] + K[1, 1] == pytest.approx(1.0, abs=1e-12)  # its own pole weighs 1
    north, south = (xkron.PolarWeight(2, hemisphere=h).matrix([lat, lon], [lat, lon], {}) for h in ("north", "south"))
    np.testing.assert_allclose(np.diag(north + south), np.diag(xkron.PolarWeight(2).matrix([lat, lon], [lat, lon], {})))


def test_polar_weight_of_one_hemisphere_round_trips_through_its_dict_and_text():
    both = (xkron.Spherical() + xkron.Spherical() * xkron.PolarWeight(2, hemisphere="north")
            + xkron.Spherical() * xkron.PolarWeight(1.5, hemisphere="south"))  # fmt: skip
    for k in (both, xkron.PolarWeight(), xkron.PolarWeight(3, hemisphere="south")):
        back = kernel_from_dict(json.loads(json.dumps(k.to_dict())))
        assert back == k and back.name == k.name
    assert both.name == ("Spherical(Matern52) + c*Spherical(Matern52)*PolarWeight(north) "
                         "+ c*Spherical(Matern52)*PolarWeight(south)")  # fmt: skip
    assert kernel_from_dict(both.to_dict()).node((2, 0, 1)).hemisphere == "south"
    assert "hemisphere" not in xkron.PolarWeight().to_dict()  # the saved form of both hemispheres is unchanged
    assert xkron.PolarWeight(2, hemisphere="north") != xkron.PolarWeight(2, hemisphere="south")
    text = parse_kernel_expression("Spherical + Spherical*PolarWeight(power=2, hemisphere='north')")
    assert text.node((1, 0, 1)) == xkron.PolarWeight(2, hemisphere="north")


def test_the_combination_equals_the_dense_formula():
    lat, lon = (m.ravel() for m in np.meshgrid(LAT, LON, indexing="ij"))
    params = {"ls_1": P["ls_1"], "ls_2": P["ls_2"], "scale": P["scale"], "ls_3": P["ls_3"]}
    got = kernel().matrix([lat, lon], [lat, lon], params)
    expected = dense({**P, "amplitude": 1.0}, lat, lon, lat, lon)
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got[0], got[1], atol=1e-12)  # the south pole: one point at every longitude


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(LATS), st.sampled_from(LONS)), min_size=2, max_size=12),
    st.floats(100.0, 20000.0),
    st.floats(100.0, 20000.0),
    st.floats(0.25, 4.0),
    st.sampled_from([None, "north", "south"]),
)
def test_matrices_are_psd_with_repeats_poles_and_the_date_line(points, ls, ls_lat, power, hemisphere):
    lat, lon = (np.array(c) for c in zip(*points, strict=True))
    both = (xkron.Spherical() + xkron.Spherical() * xkron.PolarWeight(power, hemisphere="north")
            + xkron.Spherical() * xkron.PolarWeight(power, hemisphere="south"))  # fmt: skip
    for k, params in [
        (xkron.Meridional(ls=ls_lat), {"ls": ls_lat}),
        (xkron.PolarWeight(power, hemisphere=hemisphere), {}),
        (both, {"ls_1": ls, "scale_1": 3.0, "ls_2": ls_lat, "scale_2": 0.5, "ls_3": ls}),
        (xkron.Spherical() * xkron.Meridional(xkron.Matern32()), {"ls_1": ls, "ls_2": ls_lat}),
        (xkron.Spherical() + xkron.Spherical() * xkron.PolarWeight(power), {"ls_1": ls, "scale": 3.0, "ls_2": ls_lat}),
    ]:
        K = k.matrix([lat, lon], [lat, lon], params)
        assert np.linalg.eigvalsh(K)[0] >= -1e-10 * len(K), k.name


def grid(missing: float, seed: int = 0) -> xr.DataArray:
    """A global 6 × 6 field drawn from :func:`dense` at :data:`P`, both poles and the date line in it."""
    rng = np.random.default_rng(seed)
    lat, lon = (m.ravel() for m in np.meshgrid(LAT, LON, indexing="ij"))
    K = dense(P, lat, lon, lat, lon) + P["noise"] ** 2 * np.eye(lat.size)
    y = P["mean"] + np.linalg.cholesky(K + 1e-9 * np.eye(lat.size)) @ rng.standard_normal(lat.size)
    y[rng.random(y.size) < missing] = np.nan
    return xr.DataArray(y.reshape(LAT.size, LON.size), coords={"latitude": LAT, "longitude": LON},
                        dims=("latitude", "longitude"))  # fmt: skip


def fixed_fit(da, solver):
    k = (xkron.Spherical(ls=P["ls_1"]) * xkron.Meridional(ls=P["ls_2"])
         + P["scale"] * (xkron.Spherical(ls=P["ls_3"]) * xkron.PolarWeight()))  # fmt: skip
    return da.kron.fit({("latitude", "longitude"): k}, amplitude=P["amplitude"], noise=P["noise"], mean=P["mean"],
                       solver=solver, progressbar=False)  # fmt: skip


@pytest.mark.parametrize(("missing", "solver"), [(0.0, "kronecker"), (0.25, "dense")])
def test_log_likelihood_and_predictions_equal_the_dense_gp(missing, solver):
    da = grid(missing, seed=1)
    fit = fixed_fit(da, solver)
    seen = np.isfinite(da.values.ravel())
    lat, lon = (m.ravel()[seen] for m in np.meshgrid(LAT, LON, indexing="ij"))
    y = da.values.ravel()[seen]
    K = dense(P, lat, lon, lat, lon) + P["noise"] ** 2 * np.eye(lat.size)
    expected = multivariate_normal(np.full(lat.size, P["mean"]), K).logpdf(y)
    np.testing.assert_allclose(fit.model.compile_logp()({}), expected, rtol=1e-10)

    new_lat, new_lon = np.array([-88.0, 0.0, 75.0, 90.0]), np.array([-179.0, 175.0, 185.0])  # 185° is -175°
    result = fit.predict(latitude=new_lat, longitude=new_lon)
    la, lo = (m.ravel() for m in np.meshgrid(new_lat, new_lon, indexing="ij"))
    Ks = dense(P, la, lo, lat, lon)
    mean = P["mean"] + Ks @ np.linalg.solve(K, y - P["mean"])
    var = np.diag(dense(P, la, lo, la, lo)) - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(var), rtol=1e-8)
    pole = result["mean"].sel(latitude=90.0).values
    np.testing.assert_allclose(pole, pole[0], atol=1e-9)  # the north pole: one value


@pytest.mark.parametrize(("missing", "solver"), [(0.0, "kronecker"), (0.25, "dense")])
def test_gradient_equals_finite_differences(missing, solver, assert_gradient_matches_fd):
    """Every hyperparameter free (three lengthscales in km, the polar part's weight): compiled against central."""
    da = grid(missing, seed=2)
    fit = da.kron.fit({("latitude", "longitude"): kernel()}, solver=solver, restarts=0, progressbar=False)
    model = fit.model
    assert {"ls_latitude_longitude_1", "ls_latitude_longitude_2", "ls_latitude_longitude_3",
            "scale_latitude_longitude"} <= set(model.named_vars)  # fmt: skip
    assert_gradient_matches_fd(model, seed=3)


def test_saved_form_text_netcdf_and_units(tmp_path):
    for k in (kernel(), xkron.Meridional(xkron.RatQuad(alpha=2.0), ls=Prior("LogNormal", mu=7, sigma=1))):
        assert kernel_from_dict(json.loads(json.dumps(k.to_dict()))) == k
    text = parse_kernel_expression("Spherical*Meridional(kernel='Matern32', ls=900.0) + Spherical*PolarWeight(power=1)")
    assert text.name == "Spherical(Matern52)*Meridional(Matern32) + c*Spherical(Matern52)*PolarWeight"
    assert text.node((1, 0, 1)).power == 1.0
    fit = grid(0.1, seed=4).kron.fit({("latitude", "longitude"): kernel()}, restarts=0, progressbar=False)
    assert fit.params["ls_latitude_longitude_2"].attrs["units"] == "km"
    fit.to_netcdf(tmp_path / "fit.nc")
    back = xkron.open_fit(tmp_path / "fit.nc")
    assert back.spec.factors[0].kernel == fit.spec.factors[0].kernel
    new = {"latitude": [89.0, -10.0], "longitude": [179.0]}
    a, b = fit.predict(**new), back.predict(**new)
    np.testing.assert_allclose(a["mean"], b["mean"], rtol=1e-12)
    np.testing.assert_allclose(a["sd"], b["sd"], rtol=1e-12)


def test_errors_say_what_is_wrong():
    two = [np.array([0.0, 95.0]), np.zeros(2)]
    with pytest.raises(ValueError, match="first dim must be latitude"):
        xkron.Meridional(ls=1.0).matrix(two, two, {"ls": 1.0})
    with pytest.raises(ValueError, match=r"PolarWeight spans a \(latitude, longitude\) factor"):
        xkron.PolarWeight().matrix([np.zeros(2)], [np.zeros(2)], {})
    for bad in (0, -1.0, np.inf, True, "2"):
        with pytest.raises(ValueError, match=r"power=.* must be a fixed number > 0"):
            xkron.PolarWeight(bad)
    for bad in ("North", "both", "n", 1, ""):
        with pytest.raises(ValueError, match=r"hemisphere=.* must be None \(both\), 'north' or 'south'"):
            xkron.PolarWeight(2, hemisphere=bad)
    with pytest.raises(ValueError, match=r"hemisphere=.* must be None"):
        parse_kernel_expression("PolarWeight(hemisphere='equator')")
    with pytest.raises(TypeError, match="takes a radial kernel"):
        xkron.Meridional(xkron.Periodic())
    with pytest.raises(ValueError, match="PolarWeight has no hyperparameter 'ls'"):
        parse_kernel_expression("PolarWeight(ls=2)")
    da = grid(0.0)
    with pytest.raises(ValueError, match=r"Meridional\(Matern52\) spans 2 dims"):
        da.kron.fit({"latitude": xkron.Meridional(), "longitude": "Matern52"}, progressbar=False)
    negative = xkron.Spherical() * xkron.Meridional(ls=Prior("Normal", mu=-5, sigma=0.1))
    with pytest.raises(ValueError, match=r"ls_latitude_longitude_2=Prior\(\"Normal\".*must be > 0"):
        da.kron.fit({("latitude", "longitude"): negative}, progressbar=False)


def test_default_meridional_prior_is_in_km_of_latitude():
    from xkron.spec.priors import data_priors, resolve_priors

    lat, lon = np.arange(-80.0, 81, 10), np.arange(0.0, 360, 30)
    factor = Factor(("latitude", "longitude"), xkron.Spherical() * xkron.Meridional(), (lat, lon))
    prior = resolve_priors([factor], "constant", None, data_priors(0.0, 1.0))["ls_latitude_longitude_2"]
    lo, hi = np.exp(prior.parameters["mu"] + np.array([-1, 1]) * 2.326 * prior.parameters["sigma"])
    np.testing.assert_allclose([lo, hi], [R * np.radians(10), R * np.radians(160)], rtol=1e-3)
