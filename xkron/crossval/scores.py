"""Scores of Gaussian predictions of held-out values: RMSE, MAE, CRPS, interval coverage, PIT.

A prediction of a held-out value ``y`` is a mean ``μ`` and, for probabilistic models, the sd
``σ`` of a Gaussian predictive ``N(μ, σ²)`` (a new observation's, noise included). Methods
without an uncertainty give ``σ = NaN``; their CRPS, coverage and PIT are then NaN, never a
made-up number.

* CRPS, the continuous ranked probability score ``∫ (F(x) − 1{x ≥ y})² dx`` (Gneiting & Raftery
  2007, eq. 21, closed form for a Gaussian): ``σ [z (2Φ(z) − 1) + 2φ(z) − 1/√π]`` with
  ``z = (y − μ)/σ``. In the data's units; it equals the MAE for a point forecast (``σ → 0``) and
  rewards a sharp *and* calibrated predictive.
* Coverage of the central ``level`` interval ``μ ± Φ⁻¹((1 + level)/2) σ``: the fraction of held-out
  values inside (``level`` for a calibrated predictive).
* PIT, the probability integral transform ``Φ(z)``: uniform on (0, 1) for a calibrated predictive;
  its histogram is U-shaped when the intervals are too narrow, humped when too wide.

Gneiting, T. and Raftery, A. E. (2007), Strictly proper scoring rules, prediction, and
estimation, J. Amer. Statist. Assoc. 102, 359-378.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.special
import xarray as xr

from xkron.settings import CV_LEVELS, CV_PIT_BINS

__all__ = ["covered", "crps_gaussian", "pit", "score_cells", "score_dataset"]


def crps_gaussian(mean, sd, y):
    """CRPS of ``N(mean, sd²)`` at the outcome ``y`` (closed form, Gneiting & Raftery 2007).

    Works elementwise on numbers, numpy arrays and DataArrays.

    Examples
    --------
    >>> round(float(crps_gaussian(0.0, 1.0, 0.0)), 6)  # (√2 − 1)/√π
    0.233695
    """
    z = (y - mean) / sd
    density = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
    return sd * (z * (2 * scipy.special.ndtr(z) - 1) + 2 * density - 1 / np.sqrt(np.pi))


def pit(mean, sd, y):
    """Probability integral transform ``Φ((y − mean)/sd)`` of ``y`` under ``N(mean, sd²)``.

    Examples
    --------
    >>> float(pit(1.0, 2.0, 1.0))
    0.5
    """
    return scipy.special.ndtr((y - mean) / sd)


def covered(mean, sd, y, level: float):
    """Whether ``y`` lies in the central ``level`` interval of ``N(mean, sd²)``.

    Examples
    --------
    >>> bool(covered(0.0, 1.0, 1.6, 0.9)), bool(covered(0.0, 1.0, 1.7, 0.9))  # z = 1.645
    (True, False)
    """
    return np.abs(y - mean) <= scipy.special.ndtri((1 + level) / 2) * sd


def score_cells(mean, sd, truth, levels: Sequence[float] = CV_LEVELS, bins: int = CV_PIT_BINS) -> dict:
    """Scores of one model on a set of held-out cells (1-D arrays).

    Cells where ``mean`` or ``truth`` is NaN (a baseline that cannot predict there) are not
    scored; ``n`` counts the others. The probabilistic scores (``crps``, ``coverage``, ``pit``)
    need ``sd`` at every scored cell, else they are NaN.

    Returns
    -------
    dict
        ``n``, ``rmse``, ``mae``, ``crps`` (numbers), ``coverage`` (one per level) and ``pit``
        (the fraction of cells in each of ``bins`` equal bins of (0, 1); ``1/bins`` each when
        calibrated).

    Examples
    --------
    >>> s = score_cells(np.zeros(4), np.full(4, np.nan), np.array([1.0, -1.0, 2.0, np.nan]))
    >>> s["n"], round(s["rmse"], 4), s["mae"], bool(np.isnan(s["crps"]))
    (3, 1.4142, 1.3333333333333333, True)
    """
    mean, sd, truth = (np.asarray(a, dtype=float).ravel() for a in (mean, sd, truth))
    keep = np.isfinite(mean) & np.isfinite(truth)
    mean, sd, truth = mean[keep], sd[keep], truth[keep]
    error = mean - truth
    n = int(keep.sum())
    out = {
        "n": n,
        "rmse": float(np.sqrt(np.mean(error**2))) if n else np.nan,
        "mae": float(np.mean(np.abs(error))) if n else np.nan,
        "crps": np.nan,
        "coverage": np.full(len(levels), np.nan),
        "pit": np.full(bins, np.nan),
    }
    if n and np.isfinite(sd).all():
        out["crps"] = float(np.mean(crps_gaussian(mean, sd, truth)))
        out["coverage"] = np.array([np.mean(covered(mean, sd, truth, level)) for level in levels])
        out["pit"] = np.histogram(pit(mean, sd, truth), bins=np.linspace(0, 1, bins + 1))[0] / n
    return out


def score_dataset(predictions: xr.Dataset, levels=CV_LEVELS, bins: int = CV_PIT_BINS) -> xr.Dataset:
    """Scores of every model of ``predictions`` (``truth`` on ``cell``; ``mean``, ``sd`` on ``(model, cell)``).

    Returns a Dataset on ``model`` (and ``level``, ``pit_bin``) with CF attributes; ``rmse``,
    ``mae`` and ``crps`` in the units of ``truth``.

    Examples
    --------
    >>> p = xr.Dataset({"truth": ("cell", [0.0, 1.0]), "mean": (("model", "cell"), [[0.0, 0.0]]),
    ...                 "sd": (("model", "cell"), [[1.0, 1.0]])}, coords={"model": ["gp"]})
    >>> s = score_dataset(p)
    >>> s["rmse"].dims, s["coverage"].sizes["level"], float(s["pit"].sum())
    (('model',), 3, 1.0)
    """
    rows = [
        score_cells(
            predictions["mean"].sel(model=m), predictions["sd"].sel(model=m), predictions["truth"], levels, bins
        )
        for m in predictions["model"].values
    ]
    units = predictions["truth"].attrs.get("units")
    unit = {"units": units} if units is not None else {}
    width = 1.0 / bins

    def var(key, dims, attrs):
        return (dims, np.array([row[key] for row in rows]), attrs)

    return xr.Dataset(
        {
            "n": var("n", ("model",), {"long_name": "number of held-out cells scored"}),
            "rmse": var("rmse", ("model",), {"long_name": "root-mean-square error", **unit}),
            "mae": var("mae", ("model",), {"long_name": "mean absolute error", **unit}),
            "crps": var("crps", ("model",), {"long_name": "mean continuous ranked probability score", **unit}),
            "coverage": var(
                "coverage",
                ("model", "level"),
                {"long_name": "fraction of held-out values in the central predictive interval", "units": "1"},
            ),
            "pit": var(
                "pit",
                ("model", "pit_bin"),
                {"long_name": "fraction of held-out values whose PIT falls in the bin", "units": "1"},
            ),
        },
        coords={
            "model": predictions["model"].values,
            "level": (
                "level",
                np.asarray(levels, dtype=float),
                {"long_name": "probability of the central predictive interval", "units": "1"},
            ),
            "pit_bin": (
                "pit_bin",
                (np.arange(bins) + 0.5) * width,
                {"long_name": "centre of the PIT bin", "units": "1", "bin_width": width},
            ),
        },
    )
