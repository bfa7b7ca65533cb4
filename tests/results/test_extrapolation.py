"""Extrapolation warnings (xkron.results.extrapolation): far from the data a decaying kernel gives the prior.

Fits with every hyperparameter fixed (no optimisation: fast), lengthscales 0.2 along ``a`` and 0.5
along ``b`` on the unit square. Distances are checked against a brute-force nearest neighbour.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.errors import ExtrapolationWarning
from xkron.results.extrapolation import decays, far_factors

X = np.linspace(0.0, 1.0, 6)
FIXED = {"amplitude": 1.0, "noise": 0.1, "mean": "zero", "progressbar": False}


def _data(nan=None) -> xr.DataArray:
    values = np.sin(3 * X)[:, None] * np.cos(2 * X)[None, :]
    if nan is not None:
        values[nan] = np.nan
    return xr.DataArray(values, coords={"a": X, "b": X}, dims=("a", "b"), name="v")


def _fit(kernels, data=None):
    return (data if data is not None else _data()).kron.fit(kernels, **FIXED)


def _caught(call) -> list[str]:
    """The ExtrapolationWarning messages ``call()`` raises."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        call()
    return [str(w.message) for w in caught if issubclass(w.category, ExtrapolationWarning)]


@pytest.fixture(scope="module")
def fit():
    return _fit({"a": xkron.ExpQuad(ls=0.2), "b": xkron.Matern52(ls=0.5)})


def test_warns_beyond_a_few_lengthscales_naming_the_dim_and_the_distance(fit):
    messages = _caught(lambda: fit.predict(a=np.array([0.5, 1.0 + 8.2 * 0.2])))
    assert messages == [
        "a: up to 8.2 lengthscales beyond the data; the prediction there returns to the prior mean and sd "
        "(the data matter only within about 3 lengthscales)"  # xkron.settings.EXTRAPOLATION_LENGTHSCALES
    ]
    assert issubclass(ExtrapolationWarning, UserWarning) and xkron.ExtrapolationWarning is ExtrapolationWarning


def test_the_far_prediction_is_the_prior(fit):
    """What the warning says: there the mean is the prior mean (0) and the sd the prior sd (the amplitude)."""
    with pytest.warns(ExtrapolationWarning):
        far = fit.predict(a=[1.0 + 10 * 0.2])
    np.testing.assert_allclose(far["mean"].values, 0.0, atol=1e-8)
    np.testing.assert_allclose(far["sd"].values, 1.0, rtol=1e-8)


@pytest.mark.parametrize("beyond", [0.0, 1.0, 2.9])
def test_no_warning_inside_or_just_outside(fit, beyond):
    inside = np.linspace(-0.1, 1.0 + beyond * 0.2, 7)  # 0.1 below the data is half a lengthscale
    assert _caught(lambda: fit.predict(a=inside)) == []
    assert _caught(lambda: fit.predict()) == []


def test_names_only_the_far_dim(fit):
    messages = _caught(lambda: fit.predict(a=[0.5], b=[1.0 + 4 * 0.5]))
    assert len(messages) == 1 and messages[0].startswith("b: up to 4.0 lengthscales") and "a:" not in messages[0]


def test_once_per_call_naming_every_far_dim(fit):
    messages = _caught(lambda: fit.predict(a=[5.0, 6.0, 7.0], b=[-3.0, 9.0]))
    assert len(messages) == 1
    assert messages[0].startswith("a: up to 30.0 lengthscales beyond the data; b: up to 16.0 lengthscales")


def test_sample_fields_warn_too(fit):
    messages = _caught(lambda: fit.sample(2, a=[3.0], random_seed=0, progressbar=False))
    assert len(messages) == 1 and messages[0].startswith("a: up to 10.0 lengthscales")


def test_points_between_the_data_do_not_warn_but_interior_gaps_do():
    """The distance is to the nearest training input: a gap of many lengthscales inside the data warns too."""
    gappy = _data().isel(a=[0, 5])  # a = 0 and a = 1 only
    fit = _fit({"a": xkron.ExpQuad(ls=0.1), "b": xkron.Matern52(ls=0.5)}, gappy)
    assert _caught(lambda: fit.predict(a=[0.05, 0.95])) == []
    messages = _caught(lambda: fit.predict(a=[0.5]))
    assert len(messages) == 1 and messages[0].startswith("a: up to 5.0 lengthscales")


@pytest.mark.parametrize(
    "kernel",
    [
        xkron.Periodic(ls=0.5, period=0.3),
        xkron.Linear(),
        xkron.Polynomial(),
        xkron.Periodic(ls=0.5, period=0.3) + xkron.ExpQuad(ls=0.2),  # the periodic part persists
        xkron.Linear() + xkron.ExpQuad(ls=0.2),
    ],
    ids=["Periodic", "Linear", "Polynomial", "Periodic+ExpQuad", "Linear+ExpQuad"],
)
def test_kernels_that_do_not_decay_do_not_warn(kernel):
    assert not decays(kernel)
    fit = _fit({"a": kernel, "b": xkron.Matern52(ls=0.5)})
    assert _caught(lambda: fit.predict(a=[50.0])) == []
    assert _caught(lambda: fit.predict(b=[50.0])) != []  # the other factor still does


def test_products_and_sums_use_the_longest_decaying_lengthscale():
    """A product decays if one part does (its Periodic part has no say), a sum if all parts do; the
    distance is in the longest of the decaying parts' lengthscales."""
    product = xkron.Periodic(ls=0.5, period=0.3) * xkron.Matern52(ls=0.25)
    total = xkron.ExpQuad(ls=0.1) + xkron.Matern32(ls=0.4) + 2.0 * xkron.Matern12(ls=0.05)
    assert decays(product) and decays(total) and decays(xkron.WhiteNoise() + xkron.ExpQuad())
    for kernel, longest in ((product, 0.25), (total, 0.4)):
        fit = _fit({"a": kernel, "b": xkron.Matern52(ls=0.5)})
        ((dims, distance),) = far_factors(fit, {"a": np.array([3.0]), "b": X}, {"a": "a", "b": "b"}, {"b"})
        assert dims == ("a",) and distance == pytest.approx(2.0 / longest, rel=1e-12)


def _brute_force(train: np.ndarray, test: np.ndarray, ls) -> float:
    """Largest distance, in lengthscales, of a test point to its nearest training point (all pairs)."""
    d = (test[:, None, :] - train[None, :, :]) / np.asarray(ls)
    return float(np.sqrt((d**2).sum(-1)).min(1).max())


@pytest.mark.parametrize("gappy", [False, True], ids=["full grid", "subset of the grid"])
def test_two_dim_factor_distance_is_to_the_nearest_training_input(gappy):
    """A (a, b) factor: Euclidean distance in lengthscale units to the nearest training input, on a new grid and
    at scattered points, equal to brute force. With NaN cells the factor's inputs are a subset of the grid."""
    nan = (slice(3, None), slice(3, None)) if gappy else None  # a missing corner: far from the rest
    fit = _fit({("a", "b"): xkron.Matern52(ls=[0.2, 0.5])}, _data(nan))
    factor = fit.spec.factors[0]
    assert (factor.subset is not None) == gappy
    train = np.stack(factor.inputs(), axis=-1)
    new_a, new_b = np.linspace(0.5, 1.9, 5), np.linspace(0.5, 2.5, 4)
    grid = np.stack([g.ravel() for g in np.meshgrid(new_a, new_b, indexing="ij")], axis=-1)
    ((_, distance),) = far_factors(fit, {"a": new_a, "b": new_b}, {"a": "a", "b": "b"}, set())
    assert distance == pytest.approx(_brute_force(train, grid, [0.2, 0.5]), rel=1e-12)
    points = np.array([[1.9, 0.1], [0.9, 0.95], [-0.7, 0.5]])
    ((_, distance),) = far_factors(fit, {"a": points[:, 0], "b": points[:, 1]}, {"a": "p", "b": "p"}, set())
    assert distance == pytest.approx(_brute_force(train, points, [0.2, 0.5]), rel=1e-12)
    corner = {"a": np.array([1.0]), "b": np.array([1.0])}  # in the missing corner: 1.2 lengthscales from (1, 0.4)
    assert far_factors(fit, corner, {"a": "a", "b": "b"}, set()) == []


def test_dask_coordinates_are_not_read():
    """Dask-backed requests are not computed to check them: no warning, and the result stays lazy."""
    dask_array = pytest.importorskip("dask.array")
    fit = _fit({"a": xkron.ExpQuad(ls=0.2), "b": xkron.Matern52(ls=0.5)})
    far = xr.DataArray(dask_array.from_array(np.array([9.0, 10.0]), chunks=1), dims="a")
    result = []
    assert _caught(lambda: result.append(fit.predict(a=far))) == []
    assert result[0]["mean"].chunks is not None
