"""The work of ``xkron fit``, ``xkron batch`` and ``xkron predict``: files in, files out.

:func:`run_fit`, :func:`run_batch` and :func:`run_predict` return their results
(:mod:`xkron.cli.report`) and raise; bad inputs raise
:class:`~xkron.cli.errors.JobInputError`, naming the option, before any fitting. They call the
library (:func:`xkron.fit`, :func:`xkron.open_fit`, ``predict``) and never start a dask
client. Heavy imports happen inside functions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from xkron.cli.checks import (
    check_cell_var,
    check_chunk_dims,
    check_kernels,
    check_likelihood_data,
    select_var,
)
from xkron.cli.errors import JobInputError
from xkron.cli.files import open_input, write_dataset
from xkron.cli.grids import chunk_request, prediction_request
from xkron.cli.info import kernels_text
from xkron.cli.masks import predict_mask, read_mask
from xkron.cli.parsing import GridSpec, KernelSpec
from xkron.cli.paths import check_output
from xkron.cli.report import BatchJobResult, FitJobResult, PredictJobResult, fit_noting_convergence
from xkron.cli.saved import first_fit, open_saved_fit, select_slices
from xkron.cli.select import select_dims
from xkron.inference.options import BATCH_ERRORS

__all__ = ["FitJobOptions", "run_batch", "run_fit", "run_predict"]


@dataclass(frozen=True)
class FitJobOptions:
    """The options of ``xkron fit`` and ``xkron batch`` beyond the data, kernels and output.

    Defaults as in :func:`xkron.fit` and the CLI; see :func:`run_fit` for each.
    """

    likelihood: str = "gaussian"
    mask_var: str | None = None
    noise_sd_var: str | None = None
    exposure_var: str | None = None
    trials: int | str | None = None
    method: str | None = None
    restarts: int = 2
    seed: int | None = None
    solver: str = "auto"
    chunks: Mapping[str, int] | None = None
    overwrite: bool = False
    sel: Mapping[str, str] | None = None
    squeeze: bool = False
    progress: bool = True
    command: str | None = None
    """The command line, recorded in the fit file's ``history``."""

    @property
    def trials_var(self) -> str | None:
        """``trials`` when it names a variable of the input file."""
        return self.trials if isinstance(self.trials, str) else None

    def fit_kwargs(self) -> dict[str, Any]:
        """Keywords of :func:`xkron.fit` (the likelihood as named; per-cell data are added later)."""
        return {
            "likelihood": self.likelihood,
            "method": self.method,
            "restarts": self.restarts,
            "random_seed": self.seed,
            "solver": self.solver,
            "progressbar": self.progress,
        }


def _check_inputs(probe, data, var: str, kernels, opts: FitJobOptions, named, batch_dims) -> tuple[dict, str | None]:
    """Check the options against the opened input before reading it: the kernels mapping, the per-cell datum."""
    select_var(probe, var, path=data)
    probe = select_dims(probe, var, opts.sel or {}, opts.squeeze, named)
    da = probe[var]
    check_chunk_dims(opts.chunks or {}, [str(d) for d in probe.dims], str(data))
    kernel_map = check_kernels(da, kernels, batch_dims)
    data_field = check_likelihood_data(opts.likelihood, opts.exposure_var, opts.trials)
    if opts.mask_var is not None:
        read_mask(probe, opts.mask_var, da, opts.sel or {}, named, "--mask-var")
    cell_vars = {
        "--noise-sd-var": opts.noise_sd_var,
        "--exposure-var": opts.exposure_var,
        "--trials": opts.trials_var,
    }
    for option, name in cell_vars.items():
        if name is not None:
            check_cell_var(probe, name, da, option)
    return kernel_map, data_field


def _read(data, var: str, opts: FitJobOptions, named, data_field: str | None) -> tuple[Any, dict[str, Any], Any]:
    """The data, ``mask``/``noise_sd`` and the per-cell likelihood datum, computed into memory.

    Each fit needs its data in memory: they are read once (in parallel by chunk, on the client
    if there is one) rather than at every use inside a fit, or inside each batch task.
    """
    with open_input(data, opts.chunks or {}) as ds:
        ds = select_dims(ds, var, opts.sel or {}, opts.squeeze, named)
        da = ds[var].compute()
        extra = {
            "mask": None
            if opts.mask_var is None
            else read_mask(ds, opts.mask_var, da, opts.sel or {}, named).compute(),
            "noise_sd": None if opts.noise_sd_var is None else ds[opts.noise_sd_var].compute(),
        }
        per_cell = {"exposure": opts.exposure_var, "trials": opts.trials_var}.get(data_field)
        cell_data = ds[per_cell].compute() if per_cell is not None else opts.trials
    return da, {k: v for k, v in extra.items() if v is not None}, cell_data


def _load_and_fit(data, var: str, kernels: Sequence[KernelSpec], out, batch: Mapping[str, Any] | None, options):
    """Check, read, fit and write: the fit, the output path, timings and convergence warnings."""
    import xkron
    from xkron.spec.likelihoods import resolve_likelihood

    opts = FitJobOptions(**options)
    out = check_output(out, [data], overwrite=opts.overwrite, zarr_ok=False)
    batch_dims = tuple((batch or {}).get("batch_dims", ()))
    named = [d for spec in kernels for d in spec.dims] + list(batch_dims)
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    with open_input(data) as probe:
        kernel_map, data_field = _check_inputs(probe, data, var, kernels, opts, named, batch_dims)
    da, extra, cell_data = _read(data, var, opts, named, data_field)
    timings["load"] = time.perf_counter() - tick
    kwargs = {**opts.fit_kwargs(), **(batch or {}), **extra}
    if data_field is not None:
        kwargs["likelihood"] = replace(resolve_likelihood(opts.likelihood), **{data_field: cell_data})
    tick = time.perf_counter()
    result, fit_warnings = fit_noting_convergence(lambda: xkron.fit(da, kernel_map, **kwargs))
    timings["fit"] = time.perf_counter() - tick
    tick = time.perf_counter()
    result.to_netcdf(out, command=opts.command)
    timings["write"] = time.perf_counter() - tick
    return result, out, timings, fit_warnings


def run_fit(data: str | Path, var: str, kernels: Sequence[KernelSpec], out: str | Path, **options) -> FitJobResult:
    """Fit ``var`` of a NetCDF file or zarr store and write the fit to ``out`` (``xkron fit``).

    Parameters
    ----------
    data : path
        NetCDF file, or zarr store (suffix ``.zarr`` or a directory).
    var : str
        The data variable to fit.
    kernels : sequence of KernelSpec
        From :func:`xkron.cli.parsing.parse_kernel`; together they must cover every dim of ``var`` once.
    out : path
        The fit, written with :meth:`xkron.KronFit.to_netcdf` (NetCDF).
    **options
        The fields of :class:`FitJobOptions`, each optional:
    likelihood, method, restarts, solver
        As in :func:`xkron.fit`.
    mask_var : str, optional
        ``mask=`` (nonzero = observed): a variable of the same file, or ``FILE.nc:VAR`` of another
        (:func:`xkron.cli.masks.read_mask`).
    noise_sd_var : str, optional
        A variable of the same file passed as ``noise_sd=``.
    exposure_var : str, optional
        A variable of the same file with each cell's exposure (``poisson``,
        ``negative_binomial``): ``xkron.Poisson(exposure=...)``.
    trials : int or str, optional
        ``binomial`` (required there): trials per cell, one whole number or a variable of the
        same file: ``xkron.Binomial(trials=...)``.
    seed : int, optional
        ``random_seed`` of :func:`xkron.fit`.
    chunks : mapping, optional
        ``{dim: n}``: read the input as dask arrays in these chunks.
    overwrite : bool
        Replace an existing ``out`` (never one of the inputs); default: refuse.
    sel : mapping, optional
        ``{dim: value text}``: keep one point or a range of these dims (:func:`xkron.cli.select.select_dims`).
    squeeze : bool
        Drop the data's size-1 dims that no kernel or batch dim names.

    Raises
    ------
    JobInputError
        Unknown variable or dim, kernels that do not cover the dims, an output that exists
        (without ``overwrite``), is an input or cannot be written: before any fitting.
    ValueError, TypeError
        From :func:`xkron.fit` (data it cannot fit); ``TypeError`` also for an unknown option.
    """
    result, out, timings, fit_warnings = _load_and_fit(data, var, kernels, Path(out), None, options)
    return FitJobResult(result, out, timings, fit_warnings)


def run_batch(
    data: str | Path,
    var: str,
    kernels: Sequence[KernelSpec],
    out: str | Path,
    batch_dims: Sequence[str],
    *,
    shared: bool = False,
    errors: str = "raise",
    **options,
) -> BatchJobResult:
    """Independent fits, one per slice of ``var`` along ``batch_dims`` (``xkron batch``).

    Calls ``xkron.fit(da, kernels, batch_dims=..., shared=..., errors=..., ...)`` and writes
    the batch fit with its ``to_netcdf``. The input is read into memory first (by chunk with
    ``chunks``); the slices then run as tasks on the active dask client, if there is one
    (:mod:`xkron.inference.batch`). With ``shared=True`` the result is one :class:`xkron.KronFit` whose
    hyperparameters all slices share. ``options`` (``likelihood``, ``mask_var``, ``method``, ...)
    and errors as in :func:`run_fit`.
    """
    if not batch_dims:
        raise JobInputError("give at least one --batch-dim", "--batch-dim")
    if len(set(batch_dims)) != len(batch_dims):
        raise JobInputError(f"a batch dim is given twice: {list(batch_dims)}", "--batch-dim")
    if errors not in BATCH_ERRORS:
        raise JobInputError(f"errors must be one of {BATCH_ERRORS}, got {errors!r}", "--errors")
    if shared and errors != "raise":
        raise JobInputError("--errors record applies to independent slices; --shared makes one fit", "--errors")
    batch = {"batch_dims": list(batch_dims), "shared": shared, "errors": errors}
    result, out, timings, fit_warnings = _load_and_fit(data, var, kernels, Path(out), batch, options)
    return BatchJobResult(result, out, timings, fit_warnings, tuple(batch_dims))


def _check_noise(fit, noise: bool) -> None:
    """``--noise`` needs a Gaussian fit."""
    if noise and fit.spec.likelihood.name != "gaussian":
        raise JobInputError(
            f"--noise adds Gaussian observation noise; this fit's likelihood is {fit.spec.likelihood.name}",
            "--noise",
        )


def _squeezed(pred, dims):
    """``pred`` without the ``dims`` of length 1 (kept as scalar coordinates): ``--squeeze``."""
    single = [d for d in dims if d in pred.dims and pred.sizes[d] == 1]
    return pred.squeeze(single) if single else pred


def run_predict(
    fit_path: str | Path,
    out: str | Path,
    *,
    grids: Sequence[GridSpec] = (),
    coords_from: str | Path | None = None,
    quantiles: Sequence[float] = (),
    noise: bool = False,
    mask: bool | str | None = False,
    chunks: Mapping[str, int] | None = None,
    command: str = "xkron predict",
    overwrite: bool = False,
    sel: Mapping[str, str] | None = None,
    squeeze: bool = False,
) -> PredictJobResult:
    """Predict from a saved fit and write NetCDF or zarr (``xkron predict``).

    Parameters
    ----------
    fit_path : path
        A fit written by :meth:`xkron.KronFit.to_netcdf` (``xkron fit``), or a batch fit
        (``xkron batch``: every slice is predicted, on the batch dims).
    out : path
        NetCDF file, or zarr store when it ends in ``.zarr``.
    grids : sequence of GridSpec
        New 1-D grids by dim (:func:`xkron.cli.parsing.parse_grid`); other dims keep the
        training coordinates.
    coords_from : path, optional
        A reference file (``--grid FILE.nc``): take the coordinates of the fit's dims that this
        NetCDF/zarr file has (``grids`` override them dim by dim). Coordinates on a shared dim
        give scattered points.
    quantiles, noise : see :meth:`xkron.KronFit.predict`.
    mask : bool or str
        ``True`` (or ``"fit"``): NaN where the fit's mask is False, or for a fit without one
        where its data are NaN at every time step (:func:`xkron.cli.masks.fit_mask`);
        ``"FILE.nc:VAR"``: that mask, on the prediction's coordinates.
    chunks : mapping, optional
        ``{dim: n}``: chunk the coordinate arrays along these output dims, so that the
        prediction is a lazy dask computation, written chunk by chunk.
    command : str
        The command line, recorded in the ``history`` attribute.
    overwrite : bool
        Replace an existing ``out`` (never the fit or ``coords_from``); default: refuse.
    sel : mapping, optional
        ``{dim: value text}``: predict at one point or a range of a dim's coordinates (the
        reference file's, else the training grid's), or only the named slices of a batch fit
        (:func:`xkron.cli.select.select_coords`); a point keeps its dim.
    squeeze : bool
        Drop the output's dims of length 1 (kept as scalar coordinates).

    Raises
    ------
    JobInputError
        Bad ``grids``, ``coords_from``, ``sel``, ``chunks``, ``mask``, ``noise`` or output path
        (checked before anything is predicted).
    """
    out = check_output(out, [fit_path, coords_from], overwrite=overwrite, zarr_ok=True)
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    fitted, rest = select_slices(open_saved_fit(fit_path), sel or {})
    fit = first_fit(fitted, fit_path)
    timings["open"] = time.perf_counter() - tick
    request = prediction_request(fit, grids, coords_from, rest)
    _check_noise(fit, noise)
    fits = [f for f in fitted.fits.values() if f is not None] if hasattr(fitted, "fits") else [fitted]
    keep = None
    if mask:
        keep = predict_mask(fits, fit_path, "fit" if mask is True else mask, request)
    if chunks:
        request = chunk_request(fit, request, chunks)
    tick = time.perf_counter()
    pred = fitted.predict(request, noise=noise, quantiles=tuple(quantiles), mask=keep)
    if squeeze:
        pred = _squeezed(pred, [*getattr(fitted, "batch_dims", ()), *fit.dims])
    timings["predict"] = time.perf_counter() - tick
    _add_provenance(pred, fit, fit_path, command)
    tick = time.perf_counter()
    write_dataset(pred, out)
    timings["write"] = time.perf_counter() - tick
    return PredictJobResult(pred, out, timings)


def _add_provenance(pred, fit, fit_path, command: str) -> None:
    """CF global attributes ``source`` and ``history``: the command line (absolute paths cut to file names)
    above the data's own history (:func:`xkron.io.cf.history`, as the library's own predictions)."""
    from xkron.io.cf import history, version

    name = fit.data.name or "data"
    pred.attrs.update(
        source=(
            f"xkron {version()}: Kronecker Gaussian process ({fit.method} fit, "
            f"{fit.spec.likelihood.name} likelihood, amplitude^2 * {kernels_text(fit)}) of {name!s} "
            f"from {Path(fit_path).name}"
        ),
        history=history("predict", fit.data.attrs.get("history"), command=command),
    )
