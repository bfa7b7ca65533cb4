"""``xkron plot FILE.nc``: a PNG of a prediction (maps of mean and sd) or of a fit (``fit.plot()``).

:func:`plot_file` does the work and prints nothing; the click command prints where the PNG went.
Both plots are the library's (:meth:`xkron.KronFit.plot`, ``pred.kron.plot_map``): this module
only opens the file, applies ``--sel`` (:mod:`xkron.cli.select`, :mod:`xkron.cli.saved` for the
slices of a batch fit) and checks the output
(:mod:`xkron.cli.paths`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from xkron.cli.errors import JobInputError, click_callback, to_click
from xkron.cli.paths import OVERWRITE_OPTION, check_output
from xkron.cli.saved import select_slices
from xkron.cli.select import parse_sel, select_dims

__all__ = ["PlotResult", "plot", "plot_file"]


@dataclass
class PlotResult:
    """What :func:`plot_file` drew."""

    kind: str
    """``"prediction"``, ``"fit"`` or ``"batch fit"``."""
    out: Path
    """The PNG written."""
    shown: str
    """What the figure shows, e.g. ``"mean and sd at time=2099-07-01"``."""


def _batch_slice(batch, path: Path, sel: dict):
    """The one slice of a batch fit that ``sel`` picks (:func:`xkron.cli.saved.select_slices`), and its labels."""
    cut, rest = select_slices(batch, sel)
    if rest:
        raise JobInputError(
            f"--sel picks a slice of the batch fit {path} by its batch dims {list(batch.batch_dims)}, "
            f"not {sorted(rest)}",
            "--sel",
        )
    if len(cut.fits) != 1:
        left = {d: len(v) for d, v in cut.labels.items() if len(v) > 1}
        example = " ".join(f"--sel {d}={cut.labels[d][0]}" for d in left)
        raise JobInputError(f"{path} is a batch fit over {left}: choose one slice, e.g. {example}", "--sel")
    ((idx, fit),) = cut.fits.items()
    if fit is None:
        raise ValueError(f"the slice {cut.describe(idx)} of {path} failed when fitted: {cut.failures.get(idx, '')}")
    return fit, cut.describe(idx)


def _open_prediction(path: Path):
    """The prediction in ``path``, opened lazily (only the plotted slice is read; close it), or why it is not one."""
    from xkron.cli.files import open_input

    try:
        ds = open_input(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} is neither an xkron fit nor a prediction: xarray cannot open it ({err})") from err
    if "mean" not in ds.data_vars or "sd" not in ds.data_vars:
        ds.close()
        raise ValueError(
            f"{path} is neither an xkron fit nor a prediction: a prediction has variables 'mean' and 'sd' "
            f"(xkron predict), and this file has {list(ds.data_vars)}"
        )
    return ds


def _where(ds, sel: dict) -> str:
    """Where the map is, beyond its own dims: the ``--sel`` points and the last step of any other dim."""
    from xkron.results.plots import map_dims

    mapped = map_dims(ds["mean"])
    at = {d: ds[d].values for d in sel if d in ds.coords}
    at.update({d: ds[d].values[-1] if d in ds.coords else -1 for d in ds["mean"].dims if d not in mapped})
    return " at " + ", ".join(f"{d}={v}" for d, v in at.items()) if at else ""


def plot_file(path: str | Path, out: str | Path | None = None, sel: dict | None = None, overwrite: bool = False):
    """Write a PNG of the fit or prediction in ``path`` (see ``xkron plot --help``) and say what it shows.

    Raises
    ------
    JobInputError
        For a bad ``--out`` or ``--sel``, before anything is drawn.
    ValueError
        If ``path`` is neither an xkron fit nor a prediction, or the chosen slice failed.
    """
    import xkron
    from xkron.errors import NotAFitError

    path, sel = Path(path), dict(sel or {})
    out = Path(out) if out is not None else path.with_suffix(".png")
    if out.suffix.lower() != ".png":
        raise JobInputError(f"{out}: the plot is written as PNG; give a name ending in .png", "--out")
    check_output(out, [path], overwrite=overwrite)
    try:
        fit = xkron.open_fit(path)
    except NotAFitError:
        with _open_prediction(path) as opened:
            ds = select_dims(opened, "mean", sel, squeeze=False, named=())
            ds.kron.plot_map(path=out)
            return PlotResult("prediction", out, "maps of mean and sd" + _where(ds, sel))
    if isinstance(fit, xkron.BatchFit):
        fit, where = _batch_slice(fit, path, sel)
        kind = "batch fit"
    elif sel:
        raise JobInputError(f"{path} is a single fit: --sel picks a slice of a batch fit or of a prediction", "--sel")
    else:
        kind, where = "fit", ""
    fit.plot(path=out)
    shown = "hyperparameters and fitted vs observed" + (f" of the slice {where}" if where else "")
    return PlotResult(kind, out, shown)


@click.command(short_help="Plot a prediction (maps of mean and sd) or a fit to PNG.")
@click.argument("path", metavar="FILE.nc", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE.png",
    help="The PNG to write (atomically; an existing one needs --overwrite). Default: FILE with the suffix .png.",
)
@click.option(
    "--sel",
    "sel",
    multiple=True,
    metavar="DIM=VALUE",
    callback=click_callback(parse_sel),
    help="A prediction: the point VALUE of DIM to map (repeatable), e.g. --sel time=2099-07-01; dims neither "
    "mapped nor selected take their last step. A batch fit: the slice to plot, e.g. --sel member=r1.",
)
@OVERWRITE_OPTION
def plot(path: Path, out: Path | None, sel: dict, overwrite: bool) -> None:
    """Write a PNG of FILE.nc: a prediction or a fit.

    \b
    A prediction (xkron predict, KronFit.predict(...).to_netcdf): maps of the
    posterior mean and sd side by side, colour bars with units, on its
    longitude/latitude dims (else its last two dims); coastlines where
    cartopy is installed (pip install 'xkron[maps]').
    A fit (xkron fit, KronFit.to_netcdf): each hyperparameter's posterior
    (NUTS, ADVI, INLA) or prior with the MAP marked, and the posterior
    mean against the data at the observed cells.

    \b
    Examples:
      xkron plot pred.nc --sel time=2099-07-01 --out pred_2099.png
      xkron plot fit.nc
      xkron plot fits.nc --sel member=r1
    """
    ctx = click.get_current_context()
    try:
        result = plot_file(path, out, sel, overwrite)
    except (ValueError, TypeError, OSError) as err:
        raise to_click(err, ctx) from err
    click.echo(f"wrote {result.out}: {result.shown} of the {result.kind} in {path}")
