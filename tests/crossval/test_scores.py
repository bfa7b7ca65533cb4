"""Scores of Gaussian predictives (xkron.crossval.scores) against independent references.

CRPS against numerical integration of its definition (properscoring's check); coverage and PIT
on data drawn from the predictive itself, where they must be near nominal; RMSE and MAE against
their formulas.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.integrate
import scipy.stats
import xarray as xr

from xkron.crossval.scores import covered, crps_gaussian, pit, score_cells, score_dataset


def _crps_by_quadrature(mean: float, sd: float, y: float) -> float:
    """``∫ (F(x) − 1{x ≥ y})² dx``, split at ``y`` where the indicator jumps."""
    cdf = scipy.stats.norm(mean, sd).cdf
    below = scipy.integrate.quad(lambda x: cdf(x) ** 2, -np.inf, y, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
    above = scipy.integrate.quad(lambda x: (1 - cdf(x)) ** 2, y, np.inf, epsabs=1e-13, epsrel=1e-13, limit=200)[0]
    return below + above


@pytest.mark.parametrize(
    ("mean", "sd", "y"),
    [(0.0, 1.0, 0.0), (0.0, 1.0, 2.5), (3.0, 0.2, 2.1), (-1.0, 4.0, 7.0), (10.0, 0.05, 10.01), (0.0, 2.0, -30.0)],
)
def test_crps_closed_form_matches_numerical_integration(mean, sd, y):
    assert crps_gaussian(mean, sd, y) == pytest.approx(_crps_by_quadrature(mean, sd, y), abs=1e-8, rel=1e-8)


def test_crps_limits_and_arrays():
    # A far-off outcome: CRPS -> |y - mean| - sd/sqrt(pi); arrays and DataArrays elementwise.
    assert crps_gaussian(0.0, 1.0, 50.0) == pytest.approx(50.0 - 1 / np.sqrt(np.pi), rel=1e-12)
    mean = xr.DataArray([0.0, 1.0], dims="cell")
    out = crps_gaussian(mean, 1.0, np.array([0.0, 1.0]))
    assert out.dims == ("cell",) and np.allclose(out, (np.sqrt(2) - 1) / np.sqrt(np.pi))


def test_coverage_and_pit_are_nominal_for_draws_from_the_predictive():
    n = 40_000
    rng = np.random.default_rng(3)
    mean, sd = rng.normal(size=n) * 5, rng.uniform(0.1, 3.0, size=n)
    y = rng.normal(mean, sd)
    scores = score_cells(mean, sd, y, levels=(0.5, 0.9, 0.95), bins=10)
    # Binomial sd of a coverage fraction: sqrt(p(1-p)/n) <= 0.0025; allow 4 of them.
    for level, observed in zip((0.5, 0.9, 0.95), scores["coverage"], strict=True):
        assert abs(observed - level) < 4 * np.sqrt(level * (1 - level) / n)
    # Each PIT bin holds 1/10 of the cells up to a binomial sd of 0.0015; 4.5 sd over 10 bins.
    assert np.abs(scores["pit"] - 0.1).max() < 4.5 * np.sqrt(0.09 / n)
    assert scores["pit"].sum() == pytest.approx(1.0)
    assert scores["n"] == n


def test_too_narrow_intervals_are_seen():
    """The same draws scored with half the sd: coverage far below nominal, a U-shaped PIT."""
    rng = np.random.default_rng(4)
    y = rng.normal(size=20_000)
    scores = score_cells(np.zeros_like(y), np.full_like(y, 0.5), y)
    assert scores["coverage"][1] < 0.65  # P(|z| < 1.645 / 2) = 0.59
    assert scores["pit"][0] > 0.2 and scores["pit"][-1] > 0.2 and scores["pit"][5] < 0.06


def test_rmse_mae_against_formulas_and_nan_cells():
    mean = np.array([1.0, 2.0, np.nan, 4.0, 0.5])
    truth = np.array([1.5, 0.0, 3.0, 4.0, np.nan])
    sd = np.array([1.0, 1.0, 1.0, 2.0, 1.0])
    s = score_cells(mean, sd, truth, levels=(0.9,), bins=4)
    errors = np.array([-0.5, 2.0, 0.0])  # the cells where both are finite
    assert s["n"] == 3
    assert s["rmse"] == pytest.approx(np.sqrt(np.mean(errors**2)), rel=1e-15)
    assert s["mae"] == pytest.approx(np.mean(np.abs(errors)), rel=1e-15)
    kept = (np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.0, 2.0]), np.array([1.5, 0.0, 4.0]))
    assert s["crps"] == pytest.approx(np.mean([_crps_by_quadrature(*c) for c in zip(*kept, strict=True)]), abs=1e-8)
    assert s["coverage"][0] == pytest.approx(np.mean(covered(*kept, 0.9)))
    expected_pit = np.histogram(pit(*kept), bins=[0, 0.25, 0.5, 0.75, 1])[0] / 3
    np.testing.assert_allclose(s["pit"], expected_pit)


def test_no_uncertainty_gives_nan_not_numbers():
    s = score_cells(np.zeros(3), np.full(3, np.nan), np.ones(3))
    assert s["rmse"] == 1.0 and np.isnan(s["crps"])
    assert np.isnan(s["coverage"]).all() and np.isnan(s["pit"]).all()
    # An sd missing at one scored cell: no probabilistic score rather than one on a subset.
    s = score_cells(np.zeros(3), np.array([1.0, np.nan, 1.0]), np.ones(3))
    assert np.isnan(s["crps"])
    empty = score_cells(np.full(2, np.nan), np.ones(2), np.ones(2))
    assert empty["n"] == 0 and np.isnan(empty["rmse"])


def test_score_dataset_is_labelled_with_units():
    predictions = xr.Dataset(
        {
            "truth": ("cell", [0.0, 1.0, 2.0], {"units": "K"}),
            "mean": (("model", "cell"), [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]),
            "sd": (("model", "cell"), [[1.0, 1.0, 1.0], [np.nan] * 3]),
        },
        coords={"model": ["gp", "linear"]},
    )
    s = score_dataset(predictions, levels=(0.5, 0.9), bins=5)
    assert s["rmse"].attrs["units"] == "K" and s["coverage"].attrs["units"] == "1"
    assert s["coverage"].dims == ("model", "level") and s["pit"].dims == ("model", "pit_bin")
    np.testing.assert_allclose(s["pit_bin"], [0.1, 0.3, 0.5, 0.7, 0.9])
    assert float(s["rmse"].sel(model="gp")) == pytest.approx(np.sqrt(1 / 3))
    assert float(s["rmse"].sel(model="linear")) == pytest.approx(np.sqrt(2 / 3))
    assert np.isnan(float(s["crps"].sel(model="linear"))) and int(s["n"].sel(model="linear")) == 3
