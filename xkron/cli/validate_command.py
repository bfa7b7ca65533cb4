"""``xkron validate``: cross-validate a GP on a variable of a file; write the scores and a reliability PNG.

The command parses its options with the shared ones (:mod:`xkron.cli.options`: ``--kernel``;
:mod:`xkron.cli.select`: ``--sel``, ``--squeeze``; :mod:`xkron.cli.masks`: ``--mask``), checks the
inputs and outputs before any work, and calls :func:`xkron.cross_validate` through
:func:`run_validate`, which prints nothing. The scores are written as NetCDF (the summary at the
root, groups ``folds`` and ``predictions``) and the reliability diagram as a PNG, each atomically.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from pathlib import Path

import click

from xkron.cli.checks import check_kernels, select_var
from xkron.cli.errors import JobInputError, click_callback, to_click
from xkron.cli.files import open_input
from xkron.cli.masks import read_mask
from xkron.cli.options import INPUT, KERNEL, VAR, RecordingCommand, command_line
from xkron.cli.parsing import KernelSpec, parse_chunks
from xkron.cli.paths import OVERWRITE_OPTION, check_output
from xkron.cli.select import SELECT_OPTIONS, select_dims
from xkron.crossval.schemes import SCHEMES
from xkron.io.atomic import atomic_write
from xkron.settings import CV_FOLDS

__all__ = ["run_validate", "validate"]


def _check_outputs(data: Path, out: Path | None, png: Path | None, overwrite: bool) -> None:
    if out is None and png is None:
        return
    if out is not None and png is not None and out.absolute() == png.absolute():
        raise JobInputError(f"--out and --png are the same file {out}: give two names", "--png")
    if out is not None:
        check_output(out, [data], overwrite=overwrite)
    if png is not None:
        if png.suffix.lower() != ".png":
            raise JobInputError(
                f"{png}: the reliability diagram is written as PNG; give a name ending in .png", "--png"
            )
        try:
            check_output(png, [data], overwrite=overwrite)
        except JobInputError as err:
            raise JobInputError(str(err).replace("--out", "--png"), "--png") from None


def _read(data: Path, var: str, kernels: Sequence[KernelSpec], mask: str | None, sel, squeeze: bool):
    """The variable (in memory), its kernels mapping and the mask, checked before any fit."""
    named = [d for spec in kernels for d in spec.dims]
    with open_input(data) as ds:
        select_var(ds, var, path=data)
        ds = select_dims(ds, var, sel or {}, squeeze, named)
        da = ds[var]
        kernel_map = check_kernels(da, kernels)
        mask_da = None if mask is None else read_mask(ds, mask, da, sel or {}, named).load()
        return da.load(), kernel_map, mask_da


def run_validate(
    data: str | Path,
    var: str,
    kernels: Sequence[KernelSpec],
    *,
    scheme: str = "random",
    folds: int = CV_FOLDS,
    blocks: Mapping[str, int] | None = None,
    mask: str | None = None,
    time_dim: str = "time",
    space: Sequence[str] | None = None,
    refit: bool = False,
    restarts: int = 2,
    seed: int = 0,
    progress: bool = False,
    out: str | Path | None = None,
    png: str | Path | None = None,
    overwrite: bool = False,
    sel: Mapping[str, str] | None = None,
    squeeze: bool = False,
    command: str = "xkron validate",
):
    """Cross-validate ``var`` of a NetCDF file or zarr store (``xkron validate``); write what is asked.

    Calls :func:`xkron.cross_validate` with the options of the same names (``time_dim`` is its
    ``time``; ``seed`` seeds both the folds and the fits) and returns its
    :class:`~xkron.crossval.result.CrossValidation`, after writing the scores to ``out``
    (NetCDF, with ``history``) and the reliability diagram to ``png``.

    Raises
    ------
    JobInputError
        An unknown variable or dim, kernels that do not cover the dims, a bad mask or output
        path: before any fitting.
    ValueError
        From :func:`xkron.cross_validate` (e.g. the clouds scheme on data without gaps), also
        before any fitting.
    """
    import xkron

    if blocks and scheme != "blocks":
        raise JobInputError(f"--blocks applies to --scheme blocks, not --scheme {scheme}", "--blocks")
    data = Path(data)
    out, png = (None if p is None else Path(p) for p in (out, png))
    _check_outputs(data, out, png, overwrite)
    da, kernel_map, mask_da = _read(data, var, kernels, mask, sel, squeeze)
    cv = xkron.cross_validate(da, kernel_map, scheme, folds=folds, mask=mask_da, blocks=blocks, time=time_dim,
                              space=space, refit=refit, seed=seed, restarts=restarts, random_seed=seed,
                              progressbar=progress)  # fmt: skip
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    cv.summary.attrs.update(source=f"xkron {xkron.__version__}: cross-validation of {var} from {data.name}",
                            history=f"{stamp}: {command}")  # fmt: skip
    if out is not None:
        cv.to_netcdf(out)
    if png is not None:
        with atomic_write(png) as tmp:
            cv.plot().savefig(tmp, dpi=100)
    return cv


def _space_callback(ctx, param, value):
    if value is None:
        return None
    dims = tuple(d.strip() for d in value.split(","))
    if len(dims) != 2 or not all(dims):
        raise click.BadParameter(f"{value!r} is not two dims joined by a comma, e.g. latitude,longitude", ctx, param)
    return dims


@click.command(cls=RecordingCommand, short_help="Cross-validate a GP against baselines; write scores and a PNG.")
@INPUT
@VAR
@KERNEL
@click.option(
    "--scheme",
    type=click.Choice(SCHEMES),
    default="random",
    show_default=True,
    help="Held-out cells: random (scattered cells), blocks (contiguous space-time boxes, --blocks), clouds "
    "(cloud transplant: each time step loses its observed cells under another time step's gaps; needs gaps).",
)
@click.option("--folds", type=click.IntRange(2), default=CV_FOLDS, show_default=True, help="Number of folds.")
@click.option(
    "--blocks",
    "blocks",
    multiple=True,
    metavar="DIM=N",
    callback=click_callback(lambda values: parse_chunks(values) or None),
    help="--scheme blocks: block length N along DIM (repeatable; dims not given: one block each). Default: "
    "every dim cut into 4.",
)
@click.option(
    "--mask",
    "mask",
    metavar="[FILE.nc:]NAME",
    default=None,
    help="Nonzero where a cell may be observed (e.g. ocean), as in `xkron fit --mask`: cells where it is 0 are "
    "neither fitted nor held out.",
)
@click.option("--time-dim", default="time", show_default=True, help="The time dim (clouds, climatology).")
@click.option(
    "--space",
    metavar="DIM,DIM",
    default=None,
    callback=_space_callback,
    help="The two spatial dims of the linear-interpolation baseline (default: latitude,longitude or lat,lon or "
    "y,x, else the two dims other than time; without two it is skipped).",
)
@click.option(
    "--refit/--condition",
    default=False,
    show_default=True,
    help="--condition: fit the hyperparameters once on all the data and condition on each fold's training cells "
    "(folds times cheaper); --refit: fit each fold afresh.",
)
@click.option("--restarts", type=click.IntRange(0), default=2, show_default=True, help="Extra MAP starts per fit.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the folds and of the fits.")
@click.option("--progress/--no-progress", default=False, show_default=True, help="The fits' progress on stderr.")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="SCORES.nc",
    default=None,
    help="Write the scores as NetCDF: the summary over folds at the root (xr.open_dataset), groups 'folds' "
    "and 'predictions' (xr.open_datatree). Written atomically; an existing file needs --overwrite.",
)
@click.option(
    "--png",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="RELIABILITY.png",
    default=None,
    help="Write the reliability diagram (observed vs nominal coverage, PIT histogram) as a PNG.",
)
@OVERWRITE_OPTION
@SELECT_OPTIONS[0]
@SELECT_OPTIONS[1]
def validate(data: Path, var: str, kernels, scheme: str, **options) -> None:
    """Cross-validate an exact Kronecker GP on a variable of DATA.nc, against linear interpolation and climatology.

    Each fold holds out some observed cells (--scheme), predicts them from the others with
    the GP and the baselines, and scores them: RMSE, MAE, CRPS, coverage of the 50/90/95%
    intervals and the PIT histogram, per fold and over all folds. The table over all folds
    is printed; --out and --png write the scores and the reliability diagram.

    \b
    Example:
      xkron validate sst.nc --var sst --kernel time=Matern12 \\
          --kernel latitude,longitude=Matern52 --scheme clouds --mask lsm \\
          --out scores.nc --png reliability.png
    """
    ctx = click.get_current_context()
    try:
        cv = run_validate(data, var, kernels, scheme=scheme, command=command_line(ctx), **options)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise to_click(err, ctx) from err
    click.echo(repr(cv))
    for path in (options.get("out"), options.get("png")):
        if path is not None:
            click.echo(f"wrote {path}")
