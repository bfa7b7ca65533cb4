"""A ``Spherical`` fit on a gappy global grid predicts across the date line and at the poles as the dense GP does.

``tests/spec/test_sphere_kernels.py`` checks a complete regional grid with a time factor. Here
the field is global and 2-D, as in ``tests/benchmarks/bench_sphere.py --field global``: drawn
from the Spherical GP itself on 10 × 16 cells (longitude -180° to 157.5°, so the grid's seam in
degrees is the date line), a fifth of the cells missing, fitted by MAP. The reference is the GP
written out in numpy at the fitted parameters: points on the sphere in 3-D, Matérn 5/2 of their
Euclidean distance, a Cholesky solve on the observed cells. The ``Spherical`` factor holds only
the observed points (it spans every dim, so the observed cells are a complete grid of it: the
Kronecker solver); the dense solver on the same data must give the same numbers.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import xarray as xr

import xkron
from xkron.spec.sphere_kernels import EARTH_RADIUS_KM


def xyz(lat, lon):
    phi, lam = np.radians(lat), np.radians(lon)
    return EARTH_RADIUS_KM * np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], axis=-1)


def matern52(a, b, ls):
    r = np.linalg.norm(a[:, None] - b[None], axis=-1) / ls
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


def test_a_gappy_global_spherical_fit_predicts_across_the_date_line_like_the_dense_gp():
    rng = np.random.default_rng(7)
    lat, lon = np.linspace(-81.0, 81.0, 10), -180.0 + 22.5 * np.arange(16)
    cells = xyz(*(m.ravel() for m in np.meshgrid(lat, lon, indexing="ij")))
    prior = 1.5**2 * matern52(cells, cells, 3000.0) + 0.2**2 * np.eye(len(cells))
    y = (2.0 + np.linalg.cholesky(prior) @ rng.normal(size=len(cells))).reshape(10, 16)
    da = xr.DataArray(y, coords={"latitude": lat, "longitude": lon}, dims=("latitude", "longitude"))
    da = da.where(rng.random(y.shape) > 0.2)
    fit = da.kron.fit({("latitude", "longitude"): xkron.Spherical(xkron.Matern52())}, progressbar=False)
    p = {k: float(v) for k, v in fit.params.items()}
    assert str(fit.spec.solver) == "kronecker" and 1000 < p["ls_latitude_longitude"] < 9000

    new_lat, new_lon = np.array([-88.0, 0.0, 85.0, 90.0]), np.array([168.75, 180.0, -179.0, 191.25])
    seen = da.notnull().values.ravel()
    new = xyz(*(m.ravel() for m in np.meshgrid(new_lat, new_lon, indexing="ij")))
    ls, eta2, sigma2 = p["ls_latitude_longitude"], p["amplitude"] ** 2, p["noise"] ** 2
    K = eta2 * matern52(cells[seen], cells[seen], ls) + sigma2 * np.eye(seen.sum())
    Ks = eta2 * matern52(new, cells[seen], ls)
    chol = scipy.linalg.cho_factor(K)
    mean = p["mean"] + Ks @ scipy.linalg.cho_solve(chol, y.ravel()[seen] - p["mean"])
    var = eta2 + sigma2 - np.einsum("ij,ji->i", Ks, scipy.linalg.cho_solve(chol, Ks.T))

    dense = da.kron.fit({("latitude", "longitude"): xkron.Spherical(xkron.Matern52(), ls=ls)}, amplitude=p["amplitude"],
                        noise=p["noise"], mean=p["mean"], solver="dense", progressbar=False)  # fmt: skip
    assert str(dense.spec.solver) == "dense"
    for result in (fit, dense):
        got = result.predict(latitude=new_lat, longitude=new_lon, noise=True)
        np.testing.assert_allclose(got["mean"].values.ravel(), mean, rtol=0, atol=1e-8)
        np.testing.assert_allclose(got["sd"].values.ravel() ** 2, var, rtol=0, atol=1e-8)
    got = fit.predict(latitude=new_lat, longitude=new_lon)["mean"]
    wrapped = dense.predict(latitude=[0.0], longitude=[-168.75])["mean"]  # 191.25° is -168.75°
    assert float(got.isel(longitude=3, latitude=1)) == pytest.approx(float(wrapped[0, 0]), abs=1e-8)
    np.testing.assert_allclose(
        got.isel(latitude=3), got.isel(latitude=3, longitude=0), atol=1e-8
    )  # the pole: one point
