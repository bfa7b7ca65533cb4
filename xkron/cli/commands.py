"""The click commands on files: ``xkron fit``, ``xkron predict`` and ``xkron batch``.

They parse options (:mod:`xkron.cli.options`), start a dask client when asked
(:func:`xkron.cli.files.dask_client`), call :mod:`xkron.cli.jobs`, turn errors into click
errors and print the summaries of :mod:`xkron.cli.report`. :mod:`xkron.cli.app` adds them to
the ``xkron`` group.
"""

from __future__ import annotations

from pathlib import Path

import click

from xkron.cli.errors import JobInputError, to_click
from xkron.cli.files import dask_client
from xkron.cli.jobs import run_batch, run_fit, run_predict
from xkron.cli.options import (
    INPUT,
    SCHEDULER,
    WORKERS,
    RecordingCommand,
    chunks_callback,
    command_line,
    data_options,
    grid_callback,
    quantiles_callback,
)
from xkron.cli.paths import OVERWRITE_OPTION
from xkron.cli.report import format_batch, format_fit, format_predict
from xkron.cli.select import SELECT_OPTIONS
from xkron.inference.options import BATCH_ERRORS

__all__ = ["batch", "fit", "predict"]


@click.command(cls=RecordingCommand, short_help="Fit a variable of a NetCDF/zarr file; write the fit.")
@INPUT
@data_options
def fit(data: Path, out: Path, scheduler: str | None, workers: int | None, **options) -> None:
    """Fit an exact Kronecker GP to a variable of DATA.nc (or DATA.zarr) and write the fit.

    The input is opened with xarray (a zarr store when the path ends in .zarr or is a
    directory). NaN cells, and cells where --mask-var is 0, are unobserved. The fit is
    written to --out with KronFit.to_netcdf, then its summary is printed: grid, kernels,
    every hyperparameter with units and prior, and the optimizer's report.

    \b
    Example:
      xkron fit tas.nc --var tas --kernel time=Matern32 \\
          --kernel latitude,longitude=ExpQuad --restarts 2 --seed 0 --out fit.nc
      xkron predict fit.nc --grid latitude=-60:60:121 --out pred.nc
    """
    ctx = click.get_current_context()
    _quiet(options)
    try:
        with dask_client(scheduler, workers):
            result = run_fit(
                data, options.pop("var"), options.pop("kernels"), out, command=command_line(ctx), **options
            )
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise to_click(err, ctx) from err
    click.echo(format_fit(result))


def _quiet(options: dict) -> None:
    """``--quiet`` turns the library's progress lines off, as ``--no-progress`` does."""
    quiet = options.pop("quiet")
    options["progress"] = options["progress"] and not quiet


_PREDICT_OPTIONS = (
    click.argument("fit_path", metavar="FIT.nc", type=click.Path(exists=True, dir_okay=False, path_type=Path)),
    click.option(
        "--grid",
        "grids",
        multiple=True,
        metavar="DIM=START:STOP:NUM|STEP|REF.nc",
        callback=grid_callback,
        help="Where to predict (repeatable; dims not given keep the training coordinates). "
        "DIM=START:STOP:NUM: NUM evenly spaced points, e.g. latitude=-60:60:121. "
        "On a time dim START and STOP are dates, never bare numbers: a year (1990: four digits), "
        "a month (1990-06), a date (1990-06-15), a date-time (1990-06-15T06:00) "
        "or a number with CF units ('7305 days since 1970-01-01'); "
        "the last field is NUM or a STEP of xarray.date_range in the fit's calendar (360_day too): "
        "1Y or 1YS (1 January), 1M or 1MS (the 1st of each month), 1D, 6h, 1min, 1s; YE/ME for period ends; "
        "e.g. time=1990:2000:1Y gives 1990-01-01 ... 2000-01-01. "
        "REF.nc (a NetCDF file or zarr store, like CDO's remap grids): the coordinates of the fit's dims "
        "found there; DIM=... options override it dim by dim. "
        "Coordinates that share a dim (latitude(station), longitude(station)) give scattered points.",
    ),
    click.option(
        "--coords-from",
        type=click.Path(exists=True, path_type=Path),
        metavar="REF.nc",
        default=None,
        help="The same as --grid REF.nc (kept for existing scripts).",
    ),
    SELECT_OPTIONS[0],
    click.option(
        "--squeeze",
        is_flag=True,
        default=False,
        help="Drop the output's dims of length 1 (e.g. after --sel member=r1), kept as scalar coordinates.",
    ),
    click.option(
        "--quantiles",
        metavar="Q1,Q2,...",
        default=None,
        callback=quantiles_callback,
        help="Also write these posterior quantiles (probabilities in (0, 1), comma-separated, e.g. 0.05,0.95) "
        "as the variable 'quantiles' on a 'quantile' dim.",
    ),
    click.option(
        "--noise",
        is_flag=True,
        default=False,
        help="Predict new observations: the sd (and quantiles) include the fitted observation noise. "
        "Gaussian fits only. Default: the latent field.",
    ),
    click.option(
        "--mask",
        is_flag=False,
        flag_value="fit",
        default=None,
        metavar="[FILE.nc:VAR]",
        help="NaN where a mask is 0 (e.g. on land). --mask alone: the fit's --mask, or for a fit without one "
        "whose data are NaN on land, the cells that are NaN at every time step (never observed); on any grid "
        "along the dims it does not vary on (a new time grid). --mask FILE.nc:VAR: that variable (nonzero = "
        "keep) on the prediction's coordinates, e.g. a land-sea mask of the --grid REF.nc. Default: every cell "
        "is predicted, masked and NaN cells filled in.",
    ),
    click.option(
        "--chunks",
        "chunks",
        multiple=True,
        metavar="DIM=N",
        callback=chunks_callback,
        help="Chunk the prediction in N points along DIM (repeatable): it is then computed lazily with dask "
        "and written chunk by chunk, so outputs larger than memory stream to disk; with --scheduler or "
        "--workers the chunks run on the cluster.",
    ),
    SCHEDULER,
    WORKERS,
    click.option(
        "--out",
        "out",
        required=True,
        type=click.Path(path_type=Path),
        metavar="PRED.nc|PRED.zarr",
        help="Where to write the prediction: NetCDF, or a zarr store when the name ends in .zarr (written "
        "atomically; an existing one needs --overwrite). Variables 'mean' and 'sd' with CF attributes, global "
        "attributes 'source' and 'history'.",
    ),
    OVERWRITE_OPTION,
)


def _predict_options(function):
    for option in reversed(_PREDICT_OPTIONS):
        function = option(function)
    return function


@click.command(cls=RecordingCommand, short_help="Predict from a saved fit; write NetCDF or zarr.")
@_predict_options
def predict(fit_path: Path, scheduler: str | None, workers: int | None, out: Path, **options) -> None:
    """Predict the posterior mean and sd from a fit saved by `xkron fit` (FIT.nc).

    By default on the training grid (filling its NaN and masked cells); --grid gives new
    coordinates (ranges, or a reference file's) and --sel picks points or ranges of them. A
    batch fit (`xkron batch`) predicts every slice (or those --sel names), on the batch dims.
    The output has 'mean' and 'sd' (and 'quantiles') with units and long_name from the data,
    in the data's dim order.

    \b
    Examples:
      xkron predict fit.nc --out pred.nc
      xkron predict fit.nc --grid time=1990:2000:1Y \\
          --grid latitude=-60:60:241 --quantiles 0.05,0.95 --out pred.nc
      xkron predict fit.nc --grid time=1990-01-01:1990-12-31:6h --out pred.nc
      xkron predict fit.nc --grid era5_grid.nc --mask era5_grid.nc:lsm --out pred.nc
      xkron predict fit.nc --sel time=2000-01:2000-12 --mask --out pred_2000.nc
      xkron predict fit.nc --grid stations.nc --noise --out stations_pred.nc
      xkron predict fit.nc --grid latitude=-90:90:1801 --chunks latitude=100 \\
          --workers 4 --out pred.zarr
    """
    ctx = click.get_current_context()
    try:
        options["grids"], options["coords_from"] = _grids_and_reference(options["grids"], options["coords_from"])
        with dask_client(scheduler, workers):
            result = run_predict(fit_path, out, command=command_line(ctx), **options)
    except (ValueError, TypeError, OSError) as err:
        raise to_click(err, ctx) from err
    click.echo(format_predict(result))


def _grids_and_reference(grids, coords_from):
    """The ``--grid DIM=...`` specs and the one reference file (``--grid REF.nc`` or ``--coords-from``)."""
    refs = [g for g in grids if isinstance(g, Path)] + ([coords_from] if coords_from is not None else [])
    if len(refs) > 1:
        raise JobInputError(
            f"give one reference file (--grid REF.nc or --coords-from), not {len(refs)}: {', '.join(map(str, refs))}",
            "--grid",
        )
    return [g for g in grids if not isinstance(g, Path)], (refs[0] if refs else None)


@click.command(cls=RecordingCommand, short_help="Fit one GP per slice along batch dims; write the batch fit.")
@INPUT
@click.option(
    "--batch-dim",
    "batch_dims",
    multiple=True,
    required=True,
    metavar="DIM",
    help="A dim of --var that indexes independent fits, e.g. member (repeatable: one fit per combination, "
    "e.g. --batch-dim member --batch-dim scenario). Batch dims take no --kernel.",
)
@click.option(
    "--shared/--independent",
    "shared",
    default=False,
    show_default=True,
    help="--shared: one set of hyperparameters for all slices; --independent: each slice has its own.",
)
@click.option(
    "--errors",
    type=click.Choice(BATCH_ERRORS),
    default="raise",
    show_default=True,
    help="When a slice cannot be fitted: raise stops the command with its error; record keeps going, "
    "stores the message in the batch fit (its params are NaN there) and lists the failures.",
)
@data_options
def batch(data: Path, out: Path, scheduler: str | None, workers: int | None, **options) -> None:
    """Fit one exact Kronecker GP per slice of a variable along --batch-dim (e.g. ensemble members).

    The kernels (--kernel) cover the other dims of --var. The batch fit is written to --out
    (NetCDF; its params have the batch dims), and a summary is printed: the number of fits,
    the failures, and each hyperparameter's median and range over the batch.

    \b
    Example:
      xkron batch ensemble.nc --var tas --batch-dim member --kernel time=Matern32 \\
          --kernel latitude,longitude=ExpQuad --errors record --workers 4 --out fits.nc
    """
    ctx = click.get_current_context()
    _quiet(options)
    var, kernels, batch_dims = options.pop("var"), options.pop("kernels"), options.pop("batch_dims")
    try:
        with dask_client(scheduler, workers):
            result = run_batch(data, var, kernels, out, batch_dims, command=command_line(ctx), **options)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise to_click(err, ctx) from err
    click.echo(format_batch(result))
