"""The cross-validation loop: folds, training data without the held-out cells, predictions, scores.

:func:`cross_validate` checks every option before any fit, builds the folds
(:mod:`xkron.crossval.schemes`), and for each fold hides the held-out cells
(:func:`training_data`, which refuses to hand on training data that still hold one), predicts
them with the GP and the baselines (:mod:`xkron.crossval.methods`) and scores them
(:mod:`xkron.crossval.scores`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from xkron import api
from xkron.crossval.methods import (
    climatology_predict,
    default_space,
    dineof_predict,
    gp_predict,
    held_cells,
    linear_predict,
)
from xkron.crossval.result import CrossValidation
from xkron.crossval.schemes import SCHEMES, make_folds
from xkron.crossval.scores import score_dataset
from xkron.results.fit import KronFit
from xkron.settings import CV_FOLDS, CV_LEVELS, CV_PIT_BINS

__all__ = ["BASELINES", "LeakError", "check_no_leak", "cross_validate", "training_data"]

BASELINES = ("linear", "climatology", "dineof")
"""The baselines ``baselines=`` may name (:mod:`xkron.crossval.methods`); the default is the first two."""


class LeakError(RuntimeError):
    """Training data of a fold still hold one of its held-out values."""


def check_no_leak(train: xr.DataArray, held: xr.DataArray, fold=None) -> None:
    """Raise :class:`LeakError` if any held-out cell has a value in ``train``.

    Examples
    --------
    >>> held = xr.DataArray([True, False], dims="x")
    >>> check_no_leak(xr.DataArray([np.nan, 1.0], dims="x"), held)  # fine
    >>> check_no_leak(xr.DataArray([2.0, 1.0], dims="x"), held, fold=0)
    Traceback (most recent call last):
    ...
    xkron.crossval.run.LeakError: fold 0: 1 held-out cells still have values in the training data
    """
    leaked = int((train.notnull() & held).sum())
    if leaked:
        where = "" if fold is None else f"fold {fold}: "
        raise LeakError(f"{where}{leaked} held-out cells still have values in the training data")


def training_data(data: xr.DataArray, held: xr.DataArray, fold=None) -> xr.DataArray:
    """``data`` with the held-out cells set to NaN, checked to hold none of them (:func:`check_no_leak`).

    Every training set of :func:`cross_validate` (for the GP and the baselines alike) comes
    from here, so the check runs on each fold, not only in the tests.
    """
    train = data.where(~held.transpose(*data.dims))
    check_no_leak(train, held, fold)
    return train


def _check_options(data, scheme, blocks, space, baselines, levels, pit_bins, fit_kwargs) -> None:
    """Refuse what cross-validation cannot do, before any work."""
    if not isinstance(data, xr.DataArray):
        raise TypeError(f"cross_validate takes an xarray.DataArray, got {type(data).__name__}")
    if data.chunks is not None:
        raise TypeError("cross_validate needs the data in memory to choose the folds: call data.load() first")
    if scheme not in SCHEMES:
        raise ValueError(f"unknown scheme {scheme!r}: choose one of {SCHEMES}")
    if blocks is not None and scheme != "blocks":
        raise ValueError(f"blocks= applies to scheme='blocks', not {scheme!r}")
    unknown = [b for b in baselines if b not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baselines {unknown}: choose among {BASELINES}")
    if space is not None and (len(space) != 2 or any(d not in data.dims for d in space)):
        raise ValueError(f"space must name two dims of the data {tuple(data.dims)}, got {space!r}")
    if not levels or any(not 0 < lv < 1 for lv in levels):
        raise ValueError(f"levels must be probabilities in (0, 1), got {levels!r}")
    if isinstance(pit_bins, bool) or not isinstance(pit_bins, int) or pit_bins < 1:
        raise ValueError(f"pit_bins must be a whole number >= 1, got {pit_bins!r}")
    likelihood = fit_kwargs.get("likelihood", "gaussian")
    if getattr(likelihood, "name", likelihood) != "gaussian":
        raise ValueError("cross_validate scores Gaussian predictives of new observations: likelihood must be gaussian")
    if fit_kwargs.get("batch_dims") is not None:
        raise ValueError("cross_validate fits one GP: validate each slice on its own instead of batch_dims=")


def _check_fitted(fit: KronFit, data: xr.DataArray, refit: bool, fit_kwargs) -> None:
    """A fit given in place of kernels: conditioned per fold, so Gaussian, marginal, on the data's dims."""
    if refit or fit_kwargs:
        given = ["refit=True"] * refit + sorted(fit_kwargs)
        raise ValueError(f"a fitted KronFit is conditioned on each fold as it is: {', '.join(given)} would not apply")
    if fit.spec.latent or fit.spec.likelihood.name != "gaussian":
        raise ValueError("a fit given to cross_validate must be a Gaussian marginal fit (its predictive is scored)")
    if set(fit.dims) != set(data.dims):
        raise ValueError(f"the fit's dims {fit.dims} are not the data's {tuple(data.dims)}")


def _baselines(data, time, space, baselines) -> tuple[dict, list[str]]:
    """The baselines that apply (name: (function, its argument)) and notes on those that do not."""
    chosen, notes = {}, []
    if "linear" in baselines:
        space = space or default_space(data, time)
        if space is None:
            notes.append(f"linear: skipped, no two spatial dims among {tuple(data.dims)} (pass space=)")
        else:
            chosen["linear"] = tuple(space)
    for name in ("climatology", "dineof"):
        if name not in baselines:
            continue
        if time in data.dims:
            chosen[name] = time
        else:
            notes.append(f"{name}: skipped, no {time!r} dim (pass time=)")
    return chosen, notes


def _fold_predictions(data, held, fold, model, chosen, mask, noise_sd) -> xr.Dataset:
    """Held-out values and every model's predictive mean and sd for one fold (a ``cell`` dim)."""
    train = training_data(data, held, fold)
    fitted = model(train)
    index, points = held_cells(data, held)
    if noise_sd is not None:
        noise_sd = xr.broadcast(xr.DataArray(noise_sd), data)[0].transpose(*data.dims).values[index]
    rows = {"gp": gp_predict(fitted, index, data.dims, noise_sd)}
    seen = (
        train if mask is None else train.where(mask)
    )  # masked cells keep their values: the baselines must not see them
    if "linear" in chosen:
        rows["linear"] = linear_predict(seen, index, chosen["linear"], mask)
    if "climatology" in chosen:
        rows["climatology"] = climatology_predict(seen, index, chosen["climatology"])
    if "dineof" in chosen:
        rows["dineof"] = dineof_predict(seen, index, chosen["dineof"], mask)
    mean = np.stack([m for m, _ in rows.values()])
    sd = np.stack([s for _, s in rows.values()])
    units = {"units": data.attrs["units"]} if "units" in data.attrs else {}
    return xr.Dataset(
        {
            "truth": ("cell", data.values[index], {"long_name": "held-out value", **units}),
            "mean": (("model", "cell"), mean, {"long_name": "predictive mean", **units}),
            "sd": (("model", "cell"), sd, {"long_name": "predictive sd of a new observation", **units}),
        },
        coords={
            **{d: points[d] for d in points.data_vars},
            "model": list(rows),
            "fold": ("cell", np.full(index[0].size, fold)),
        },
    )


def cross_validate(
    da: xr.DataArray,
    kernels: Mapping,
    scheme: str = "random",
    *,
    folds: int = CV_FOLDS,
    mask: xr.DataArray | None = None,
    blocks: Mapping[str, int] | None = None,
    time: str = "time",
    space: Sequence[str] | None = None,
    refit: bool = False,
    baselines: Sequence[str] = BASELINES[:2],
    levels: Sequence[float] = CV_LEVELS,
    pit_bins: int = CV_PIT_BINS,
    seed: int = 0,
    **fit_kwargs,
) -> CrossValidation:
    """Cross-validate a Kronecker GP on held-out cells, scored against simple baselines.

    Each fold hides some observed cells, predicts them from the others with the GP (its
    predictive of a new observation, noise included) and with the baselines, and scores the
    predictions (:mod:`xkron.crossval.scores`): RMSE, MAE, CRPS, coverage of central intervals
    and the PIT histogram, per fold and pooled. NaN cells and cells that ``mask`` hides are
    never held out nor scored. The training data of every fold are checked to hold none of its
    held-out values (:func:`training_data`; a :class:`LeakError` otherwise).

    Parameters
    ----------
    da : xarray.DataArray
        The data, in memory (a dask-backed array is refused rather than computed here).
    kernels : mapping, or KronFit
        As in :func:`xkron.fit`; or a fitted Gaussian marginal :class:`xkron.KronFit` on the data's dims,
        whose hyperparameters are then conditioned on each fold's training cells (no fit here; not
        with ``refit=True`` or fit keywords), e.g. a fit of another field or period.
    scheme : {"random", "blocks", "clouds"}
        How the held-out cells are chosen (:mod:`xkron.crossval.schemes`): scattered random
        cells; contiguous space-time boxes of ``blocks`` cells; or **cloud transplant**, each
        time step losing its observed cells under the gaps of another time step (DINEOF's and
        DINCAE's protocol: gaps of real shape and size; the data must have gaps).
    folds : int
        Number of folds (default 5). Random and block folds cover every observed cell once;
        cloud folds hold out one transplanted cloud per time step in all.
    mask : xarray.DataArray of bool, optional
        True where a cell may be observed (e.g. ocean), as in :func:`xkron.fit`, which gets it too.
    blocks : mapping of dim to int, optional
        ``scheme="blocks"``: block length along dims (dims not named: one block); default:
        every dim in :data:`~xkron.settings.CV_BLOCKS_PER_DIM` blocks.
    time : str
        The time dim: the clouds scheme moves gaps along it and climatology averages over it.
    space : (str, str), optional
        The two spatial dims of the linear-interpolation baseline; default a known pair
        (``latitude``/``longitude``, ``lat``/``lon``, ``y``/``x``), else the two dims other than
        ``time``; without two, that baseline is skipped with a note in ``summary.attrs``.
    refit : bool
        ``False`` (default): fit the hyperparameters once, on all the data, and condition that fit
        on each fold's training cells (:meth:`xkron.KronFit.condition`). ``True``: fit afresh on
        each fold's training cells. The default is far cheaper (one fit, on a complete grid often
        by the exact Kronecker solver, then one solve per fold, where refitting runs a whole
        optimisation on each fold's gappy grid) and is what kriging cross-validation and exact
        leave-one-out do: the predictions of a fold use none of its held-out values, which reach
        it only through the handful of hyperparameters estimated from every cell. ``True`` removes
        that too, at a price: on the README's example (2,280 cells, 5 folds, a shared 2-core
        machine) refitting took 655 s instead of 1.7 s by random cells and 141 s instead of 1.7 s
        by blocks, for GP RMSEs of 0.200 K (both) and 0.440 K (against 0.435 K).
    baselines : sequence of str
        Among ``("linear", "climatology", "dineof")`` (:mod:`xkron.crossval.methods`; default the first
        two: DINEOF's internal cross-validation of its modes costs seconds per fold); ``()`` for the GP alone.
    levels : sequence of float
        Central interval probabilities whose coverage is scored (default 0.5, 0.9, 0.95).
    pit_bins : int
        Bins of the PIT histogram (default 10).
    seed : int
        Seed of the folds (and of the clouds' donors); a fit's own seed is ``random_seed``.
    **fit_kwargs
        Passed to :func:`xkron.fit` (``noise_sd``, ``restarts``, ``random_seed``, ``progressbar``, ...).
        Gaussian likelihood only: the scores are those of Gaussian predictives.

    Returns
    -------
    CrossValidation
        ``summary`` (pooled scores by model), ``scores`` (per fold), ``predictions`` (every
        held-out cell's value and predictive mean and sd), ``held_out`` (the folds); ``table()``,
        ``plot()`` (reliability diagram) and ``to_netcdf()``.

    Examples
    --------
    >>> import xkron
    >>> t, x = np.arange(6.0), np.linspace(0, 3, 8)
    >>> da = xr.DataArray(np.sin(t / 2)[:, None] + np.cos(x)[None, :], coords={"time": t, "x": x}, dims=("time", "x"))
    >>> kernels = {"time": xkron.ExpQuad(ls=2.0), "x": xkron.ExpQuad(ls=1.0)}
    >>> cv = cross_validate(da, kernels, "random", folds=3, amplitude=1.0, noise=0.01, progressbar=False)
    >>> print(cv.summary.attrs["notes"])
    linear: skipped, no two spatial dims among ('time', 'x') (pass space=)
    >>> rmse = cv.summary["rmse"]
    >>> bool(rmse.sel(model="gp") < rmse.sel(model="climatology"))
    True
    """
    _check_options(da, scheme, blocks, space, baselines, levels, pit_bins, fit_kwargs)
    if isinstance(kernels, KronFit):
        _check_fitted(kernels, da, refit, fit_kwargs)
    chosen, notes = _baselines(da, time, space, baselines)
    held_out = make_folds(da, scheme, folds, mask=mask, blocks=blocks, time=time, seed=seed)
    if refit:

        def model(train):
            return api.fit(train, kernels, mask=mask, **fit_kwargs)
    else:
        whole = kernels if isinstance(kernels, KronFit) else api.fit(da, kernels, mask=mask, **fit_kwargs)

        def model(train):
            return whole.condition(train, mask=mask, noise_sd=fit_kwargs.get("noise_sd"))

    noise_sd = fit_kwargs.get("noise_sd")
    parts = [
        _fold_predictions(da, held_out.isel(fold=f, drop=True), f, model, chosen, mask, noise_sd)
        for f in range(held_out.sizes["fold"])
    ]
    scores = xr.concat([score_dataset(p, levels, pit_bins) for p in parts], dim="fold")
    predictions = xr.concat(parts, dim="cell")
    summary = score_dataset(predictions, levels, pit_bins)
    summary.attrs.update(
        Conventions="CF-1.8",
        title=f"xkron cross-validation, scheme {scheme!r}, {held_out.sizes['fold']} folds (seed {seed})",
        hyperparameters="refitted on each fold"
        if refit
        else "those of the fit given, conditioned per fold"
        if isinstance(kernels, KronFit)
        else "fitted once on all the data, conditioned per fold",
        scheme=scheme,
        folds=int(held_out.sizes["fold"]),
        seed=int(seed),
    )
    if "climatology" in chosen:
        summary.attrs["climatology"] = "mean and sd (ddof=1) over time of each cell's training values, as a Gaussian"
    if notes:
        summary.attrs["notes"] = "; ".join(notes)
    scores = scores.assign_coords(fold=np.arange(held_out.sizes["fold"]))
    return CrossValidation(summary, scores, predictions, held_out)
