"""Kernels on the circle and the sphere by chordal distance, against the 3-D embedding they come from.

References: the points placed on a circle in the plane and on the sphere in 3-D space, and the
radial kernel written out at their Euclidean distance (no haversine); numpy's eigensolver for
positive definiteness on random points with repeats, the poles and the date line among them; a
fit with a ``Spherical`` factor against the dense GP.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

import xkron
from xkron.spec.grid import Factor
from xkron.spec.kernel_registry import kernel_from_dict, parse_kernel_expression
from xkron.spec.sphere_kernels import EARTH_RADIUS_KM

R = EARTH_RADIUS_KM
LATS, LONS = [-90.0, -45.0, 0.0, 60.0, 90.0], [0.0, 90.0, 179.9, 180.1, 359.5]


def xyz(lat, lon):
    phi, lam = np.radians(lat), np.radians(lon)
    return np.stack([R * np.cos(phi) * np.cos(lam), R * np.cos(phi) * np.sin(lam), R * np.sin(phi)], axis=-1)


def matern52(r):
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


def test_spherical_is_the_radial_kernel_of_the_3d_embedding():
    rng = np.random.default_rng(0)
    lat, lon = rng.uniform(-90, 90, 30), rng.uniform(-180, 540, 30)  # longitudes beyond 360 wrap
    lat[:3], lon[:3] = [90.0, 90.0, -90.0], [0.0, 123.0, 45.0]  # poles: every longitude is one point
    p = xyz(lat, lon)
    expected = matern52(np.linalg.norm(p[:, None] - p[None], axis=-1) / 1500.0)
    got = xkron.Spherical(ls=1500.0).matrix([lat, lon], [lat, lon], {"ls": 1500.0})
    np.testing.assert_allclose(got, expected, rtol=1e-11, atol=1e-12)
    assert got[0, 1] == pytest.approx(1.0, abs=1e-12)


def test_circular_is_the_radial_kernel_of_the_circle_in_the_plane():
    lon = np.array([0.0, 1.0, 90.0, 179.0, 181.0, 359.0, 360.0, 721.0])
    theta = np.radians(lon)
    p = np.stack([np.cos(theta), np.sin(theta)], axis=-1) * 360 / (2 * np.pi)  # circumference 360
    expected = np.exp(-0.5 * (np.linalg.norm(p[:, None] - p[None], axis=-1) / 40.0) ** 2)
    got = xkron.Circular(xkron.ExpQuad(), ls=40.0).matrix([lon], [lon], {"ls": [40.0]})
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)
    assert got[0, 6] == pytest.approx(1.0) and got[1, 5] == pytest.approx(got[5, 7])  # 0 ≡ 360, 359 next to 1


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(LATS), st.sampled_from(LONS)), min_size=2, max_size=12),
    st.floats(100.0, 20000.0),
    st.sampled_from(["ExpQuad", "Matern12", "Matern32", "Matern52"]),
)
def test_spherical_matrices_are_psd_with_repeats_poles_and_the_date_line(points, ls, name):
    lat, lon = (np.array(c) for c in zip(*points, strict=True))
    K = xkron.Spherical(getattr(xkron, name)(), ls=ls).matrix([lat, lon], [lat, lon], {"ls": ls})
    assert np.linalg.eigvalsh(K)[0] >= -1e-10 * len(K)


def test_a_spherical_factor_needs_two_dims_and_a_positive_lengthscale_prior():
    from pymc_extras.prior import Prior

    da = xr.DataArray(np.arange(60.0).reshape(3, 4, 5), coords={"t": np.arange(3.0), "latitude": [0.0, 10, 20, 30],
                      "longitude": np.arange(5.0) * 10}, dims=("t", "latitude", "longitude"))  # fmt: skip
    with pytest.raises(ValueError, match=r"Spherical\(Matern52\) spans 2 dims \(latitude then longitude"):
        xkron.fit(da, {"t": "ExpQuad", "latitude": xkron.Spherical(), "longitude": "ExpQuad"}, progressbar=False)
    negative = xkron.Spherical(ls=Prior("Normal", mu=-5, sigma=0.1))
    with pytest.raises(ValueError, match=r"ls_latitude_longitude=Prior\(\"Normal\".*must be > 0"):
        xkron.fit(da, {"t": "ExpQuad", ("latitude", "longitude"): negative}, progressbar=False)


def test_saved_form_text_and_errors():
    k = xkron.Spherical(xkron.RatQuad(alpha=2.0), ls=800.0)
    assert kernel_from_dict(json.loads(json.dumps(k.to_dict()))) == k
    assert parse_kernel_expression("Circular(kernel='Matern32', ls=30.0) * Matern52") is not None
    with pytest.raises(TypeError, match="takes a radial kernel"):
        xkron.Spherical(xkron.Periodic())
    with pytest.raises(ValueError, match="first dim must be latitude"):
        xkron.Spherical(ls=1.0).matrix([np.array([0.0, 200.0]), np.zeros(2)], [np.zeros(1), np.zeros(1)], {"ls": 1.0})


def test_a_spherical_factor_fits_and_predicts_like_the_dense_gp():
    """A (latitude, longitude) factor over the date line and up to the pole, ls in km, against the dense GP."""
    rng = np.random.default_rng(3)
    t, lat, lon = np.arange(4.0), np.array([60.0, 75.0, 90.0]), np.array([170.0, 180.0, 190.0, 200.0])
    y = rng.normal(size=(4, 3, 4))
    da = xr.DataArray(y, coords={"time": t, "latitude": lat, "longitude": lon}, dims=("time", "latitude", "longitude"))
    fit = da.kron.fit({"time": xkron.ExpQuad(ls=2.0), ("latitude", "longitude"): xkron.Spherical(ls=1200.0)},
                      amplitude=1.0, noise=0.3, mean=0.0, progressbar=False)  # fmt: skip
    assert fit.params["ls_latitude_longitude"].attrs["units"] == "km"
    new_lat, new_lon = np.array([89.0, 67.5]), np.array([-175.0, 185.0])  # −175° is 185°
    result = fit.predict(latitude=new_lat, longitude=new_lon)
    T, LA, LO = (m.ravel() for m in np.meshgrid(t, lat, lon, indexing="ij"))
    Tn, LAn, LOn = (m.ravel() for m in np.meshgrid(t, new_lat, new_lon, indexing="ij"))

    def k(t1, la1, lo1, t2, la2, lo2):
        d = np.linalg.norm(xyz(la1, lo1)[:, None] - xyz(la2, lo2)[None], axis=-1)
        return np.exp(-0.5 * (np.subtract.outer(t1, t2) / 2.0) ** 2) * matern52(d / 1200.0)

    K = k(T, LA, LO, T, LA, LO) + 0.09 * np.eye(T.size)
    Ks = k(Tn, LAn, LOn, T, LA, LO)
    mean = Ks @ np.linalg.solve(K, y.ravel())
    var = 1.0 - np.einsum("ij,ji->i", Ks, np.linalg.solve(K, Ks.T))
    np.testing.assert_allclose(result["mean"].values.ravel(), mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result["sd"].values.ravel(), np.sqrt(var), rtol=1e-8)
    np.testing.assert_allclose(result["mean"].isel(longitude=0), result["mean"].isel(longitude=1), rtol=1e-12)


def test_default_lengthscale_prior_is_in_km():
    from xkron.spec.priors import data_priors, resolve_priors

    lat, lon = np.arange(-80.0, 81, 10), np.arange(0.0, 360, 10)
    factor = Factor(("latitude", "longitude"), xkron.Spherical(), (lat, lon))
    prior = resolve_priors([factor], "constant", None, data_priors(0.0, 1.0))["ls_latitude_longitude"]
    lo, hi = np.exp(prior.parameters["mu"] + np.array([-1, 1]) * 2.326 * prior.parameters["sigma"])
    p = xyz(*(m.ravel() for m in np.meshgrid(lat, lon, indexing="ij")))
    largest = max(np.linalg.norm(p[i] - p, axis=-1).max() for i in range(len(p)))  # the grid's largest chord
    np.testing.assert_allclose([lo, hi], [np.radians(10) * R, largest], rtol=1e-3)


def test_map_starts_climb_a_ladder_in_km():
    from xkron.spec.priors import data_priors, map_starts, resolve_priors

    factor = Factor(("latitude", "longitude"), xkron.Spherical(), (np.arange(-60.0, 61, 20), np.arange(0.0, 360, 30)))
    priors = resolve_priors([factor], "constant", None, data_priors(0.0, 1.0))
    y = np.random.default_rng(0).normal(size=factor.size)
    starts = [s["ls_latitude_longitude"] for s in map_starts([factor], priors, y, 3)]
    lo, hi = factor.kernel.ls_range(factor.coords)
    assert starts == sorted(starts) and len(set(starts)) == 3 and lo / 2 < starts[0] < starts[-1] < hi
