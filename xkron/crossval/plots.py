"""The reliability diagram of a cross-validation: are the predictive intervals as wide as they claim?

Left: the fraction of held-out values inside each model's central predictive interval
(observed coverage) against the interval's probability (nominal), for every probabilistic
model; a calibrated predictive lies on the diagonal, below it the intervals are too narrow.
Right: the PIT histograms as densities; a calibrated predictive is flat at 1, a U too narrow,
a hump too wide. Built on a bare :class:`matplotlib.figure.Figure` (no pyplot, no global
state), so it works under any backend, Agg included, and in notebooks.
"""

from __future__ import annotations

import numpy as np

from xkron.crossval.scores import covered

__all__ = ["NOMINAL", "observed_coverage", "reliability"]

NOMINAL = np.round(np.linspace(0.05, 0.95, 19), 2)
"""Interval probabilities drawn on the reliability curve (0.05 to 0.95 in steps of 0.05)."""


def observed_coverage(predictions, model: str, nominal=NOMINAL) -> np.ndarray:
    """Fraction of the held-out values of ``model`` inside its central intervals of probabilities ``nominal``.

    Examples
    --------
    >>> import xarray as xr
    >>> p = xr.Dataset({"truth": ("cell", [0.0, 3.0]), "mean": (("model", "cell"), [[0.0, 0.0]]),
    ...                 "sd": (("model", "cell"), [[1.0, 1.0]])}, coords={"model": ["gp"]})
    >>> observed_coverage(p, "gp", [0.5, 0.99]).tolist()
    [0.5, 0.5]
    """
    y, mean, sd = (
        np.asarray(a)
        for a in (predictions["truth"], predictions["mean"].sel(model=model), predictions["sd"].sel(model=model))
    )
    keep = np.isfinite(y) & np.isfinite(mean) & np.isfinite(sd)
    return np.array([np.mean(covered(mean[keep], sd[keep], y[keep], p)) for p in nominal])


def reliability(cv, models=None):
    """Reliability diagram and PIT histograms of a :class:`~xkron.crossval.result.CrossValidation`.

    ``models``: which to draw (default: every model with an uncertainty; the others have no
    intervals to draw and are left out). Returns the :class:`matplotlib.figure.Figure`; save it
    with ``fig.savefig("reliability.png")``.

    Examples
    --------
    >>> import xarray as xr
    >>> from xkron.crossval.result import CrossValidation
    >>> from xkron.crossval.scores import score_dataset
    >>> rng = np.random.default_rng(0)
    >>> p = xr.Dataset({"truth": ("cell", rng.normal(size=200)), "mean": (("model", "cell"), np.zeros((1, 200))),
    ...                 "sd": (("model", "cell"), np.ones((1, 200)))}, coords={"model": ["gp"]})
    >>> fig = reliability(CrossValidation(score_dataset(p), None, p, None))
    >>> [ax.get_xlabel() for ax in fig.axes]
    ['nominal coverage of the central interval', 'PIT']
    """
    from matplotlib.figure import Figure

    summary, predictions = cv.summary, cv.predictions
    if models is None:
        models = [str(m) for m in summary["model"].values if np.isfinite(summary["crps"].sel(model=m))]
    fig = Figure(figsize=(10, 4.2), layout="constrained")
    left, right = fig.subplots(1, 2)
    left.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="calibrated")
    bins = summary["pit_bin"].values
    width = float(summary["pit_bin"].attrs.get("bin_width", 1.0 / bins.size))
    edges = np.append(bins - width / 2, bins[-1] + width / 2)
    for model in models:
        n = int(summary["n"].sel(model=model))
        (line,) = left.plot(
            NOMINAL, observed_coverage(predictions, model), marker="o", markersize=3, label=f"{model} ({n} cells)"
        )
        levels = summary["level"].values
        left.plot(
            levels,
            summary["coverage"].sel(model=model).values,
            "s",
            color=line.get_color(),
            markersize=7,
            markerfacecolor="none",
        )
        density = summary["pit"].sel(model=model).values / width
        right.stairs(density, edges, color=line.get_color(), label=model, linewidth=1.5)
    right.axhline(1.0, color="0.5", linestyle="--", label="calibrated")
    left.set(
        xlim=(0, 1),
        ylim=(0, 1),
        aspect="equal",
        xlabel="nominal coverage of the central interval",
        ylabel="observed coverage of held-out values",
        title="Reliability (squares: the summary's levels)",
    )
    right.set(xlim=(0, 1), xlabel="PIT", ylabel="density", title="PIT histogram")
    left.legend(loc="upper left", fontsize="small")
    right.legend(loc="lower center", fontsize="small")
    if "title" in summary.attrs:
        fig.suptitle(f"{summary.attrs['title']}\nhyperparameters {summary.attrs.get('hyperparameters', '')}",
                     fontsize="medium")  # fmt: skip
    return fig
