"""Click options shared by the file commands, their callbacks, and the command class that records its arguments.

The choices come from the library: likelihood names from :data:`xkron.spec.likelihoods.LIKELIHOODS`,
solvers from :data:`xkron.spec.modelspec.SOLVERS` (plus ``auto``, which lets :func:`xkron.fit`
pick). Values are parsed by :mod:`xkron.cli.parsing`; a parse error becomes a
``click.BadParameter`` naming the option.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from xkron.cli.errors import JobInputError, click_callback
from xkron.cli.parsing import parse_chunks, parse_grid, parse_kernel, parse_quantiles
from xkron.cli.paths import OVERWRITE_OPTION
from xkron.cli.select import SELECT_OPTIONS
from xkron.inference.options import METHODS
from xkron.spec.likelihoods import LIKELIHOODS
from xkron.spec.solver import SOLVERS

__all__ = [
    "CHUNKS_IN",
    "INPUT",
    "KERNEL",
    "LIKELIHOOD_CHOICES",
    "SCHEDULER",
    "SOLVER_CHOICES",
    "VAR",
    "WORKERS",
    "RecordingCommand",
    "chunks_callback",
    "command_line",
    "data_options",
    "grid_callback",
    "parse_grid_or_file",
    "quantiles_callback",
]

LIKELIHOOD_CHOICES = tuple(LIKELIHOODS)
"""``--likelihood``: the names of the library's likelihoods."""
"""``--method``: the inference methods of :func:`xkron.fit`."""
SOLVER_CHOICES = ("auto", *SOLVERS)
"""``--solver``: the library's solvers, or ``auto`` (the first that applies)."""


class RecordingCommand(click.Command):
    """A command that keeps its raw arguments (for the ``history`` attribute)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["xkron.args"] = list(args)
        return super().parse_args(ctx, args)


def command_line(ctx: click.Context) -> str:
    """The command line as typed (through :class:`RecordingCommand`), quoted for a shell."""
    return shlex.join(["xkron", ctx.info_name or ctx.command.name or "", *ctx.meta.get("xkron.args", [])])


def _trials_callback(ctx, param, value):
    """``--trials``: a whole number (as an int), else the name of a variable."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return value
    if not number.is_integer() or number < 1:
        raise click.BadParameter(f"{value!r} is not a whole number of trials >= 1 (or a variable name)", ctx, param)
    return int(number)


kernels_callback = click_callback(lambda values: [parse_kernel(v) for v in values])
chunks_callback = click_callback(parse_chunks)


def parse_grid_or_file(text: str):
    """One ``--grid``: ``DIM=START:STOP:NUM|STEP`` (a :class:`~xkron.cli.parsing.GridSpec`) or a
    reference file whose coordinates to predict at (a :class:`~pathlib.Path`)."""
    if "=" in text:
        return parse_grid(text)
    path = Path(text)
    if not path.exists():
        raise JobInputError(
            f"{text!r} is neither DIM=START:STOP:NUM (or :STEP, e.g. time=1990:2000:1Y) nor an existing NetCDF file "
            "or zarr store to take the coordinates from",
            "--grid",
        )
    return path


grid_callback = click_callback(lambda values: [parse_grid_or_file(v) for v in values])
quantiles_callback = click_callback(lambda value: () if value is None else parse_quantiles(value))

INPUT = click.argument("data", metavar="DATA.nc|DATA.zarr", type=click.Path(exists=True, path_type=Path))
CHUNKS_IN = click.option(
    "--chunks",
    "chunks",
    multiple=True,
    metavar="DIM=N",
    callback=chunks_callback,
    help="Read the input lazily with dask in chunks of N along DIM (repeatable), e.g. --chunks time=100; "
    "with --scheduler or --workers the chunks are read in parallel on the cluster.",
)
SCHEDULER = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run dask work (reading chunks, lazy predictions) on the dask.distributed scheduler at "
    "ADDRESS, e.g. tcp://10.0.0.1:8786. Not with --workers.",
)
WORKERS = click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Start a local dask.distributed cluster of N single-threaded worker processes for the "
    "duration of the command. Not with --scheduler. Without either, dask runs in local threads.",
)

VAR = click.option("--var", "var", required=True, metavar="NAME", help="The data variable of the input file.")
KERNEL = click.option(
    "--kernel",
    "kernels",
    multiple=True,
    required=True,
    metavar="DIMS=KERNEL",
    callback=kernels_callback,
    help="A kernel factor (repeat once per factor; every dim of --var needs exactly one): a dim, or "
    "several joined by commas for one factor over their product, = a kernel name (ExpQuad, Matern12, "
    "Matern32, Matern52, RatQuad, Cosine, Periodic, Independent; case-insensitive), optionally with fixed "
    "hyperparameters, e.g. time=Matern32, latitude,longitude=ExpQuad, time=Periodic(period=365.25), "
    "x,y=ExpQuad(ls=[5,10]). Unset hyperparameters get xkron's default priors.",
)
"""``--var`` and ``--kernel``, alike on every command that fits (``fit``, ``batch``, ``validate``)."""

_MODEL_OPTIONS = (
    VAR,
    KERNEL,
    click.option(
        "--likelihood",
        type=click.Choice(LIKELIHOOD_CHOICES),
        default="gaussian",
        show_default=True,
        help="Observation model. Gaussian data are fitted exactly (marginal likelihood); the others as "
        "a latent GP (see xkron.spec.likelihoods).",
    ),
    click.option(
        "--mask",
        "--mask-var",
        "mask_var",
        metavar="[FILE.nc:]NAME",
        default=None,
        help="A mask on some or all of the data's dims, nonzero (True) where a cell is observed: cells where "
        "it is 0 or missing leave the likelihood, like NaN cells (e.g. a land mask on latitude, longitude). "
        "NAME: a variable of the input file; FILE.nc:NAME (or FILE.zarr:NAME): one of another file, matched to "
        "the data's coordinates (its dims of one point dropped, --sel applied). Data that are simply NaN on "
        "land need no mask: `xkron predict --mask` finds the never-observed cells.",
    ),
    click.option(
        "--noise-sd-var",
        metavar="NAME",
        default=None,
        help="A variable of the input file with the known measurement-error sd of each cell (Gaussian "
        "likelihood only); it adds in variance to the fitted noise.",
    ),
    click.option(
        "--exposure-var",
        metavar="NAME",
        default=None,
        help="poisson and negative_binomial: a variable of the input file with each cell's exposure (e.g. "
        "days or area observed); the expected count is exposure * exp(f). Default: 1 everywhere.",
    ),
    click.option(
        "--trials",
        metavar="N|NAME",
        default=None,
        callback=_trials_callback,
        help="binomial (required there): the number of trials of each cell, as one whole number for every "
        "cell or the name of a variable of the input file.",
    ),
)

_INFERENCE_OPTIONS = (
    click.option(
        "--method",
        type=click.Choice(METHODS),
        default=None,
        help="Inference: map (L-BFGS-B from 1 + --restarts starts) for Gaussian data, nuts (PyMC's "
        "sampler, slow), advi (latent models). Default: map for Gaussian data, nuts otherwise.",
    ),
    click.option(
        "--restarts",
        type=click.IntRange(0),
        default=2,
        show_default=True,
        help="Extra MAP starts (the log-likelihood of real fields has several local optima).",
    ),
    click.option(
        "--progress/--no-progress",
        default=True,
        show_default=True,
        help="Progress on stderr, the library's own (as xkron.fit(progressbar=True) shows it): each MAP start's "
        "iterations, log posterior and elapsed time (a batch: dask's progress bar); PyMC's bars when sampling.",
    ),
    click.option(
        "--quiet",
        "-q",
        is_flag=True,
        default=False,
        help="No progress lines (the same as --no-progress); the summary is still printed on stdout.",
    ),
    click.option(
        "--seed",
        type=int,
        default=None,
        help="Random seed of the fit (PyMC's random_seed), for reproducible results.",
    ),
    click.option(
        "--solver",
        type=click.Choice(SOLVER_CHOICES),
        default="auto",
        show_default=True,
        help="Linear algebra of the Gaussian marginal model: kronecker (complete grid, exact, fastest), "
        "dense (exact, any missing pattern, up to a few thousand cells), iterative (conjugate "
        "gradients, large grids with holes); auto picks the first that applies.",
    ),
)

_FIT_OUT = click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FIT.nc",
    help="Where to write the fit (NetCDF, written atomically; an existing file needs --overwrite); read "
    "it back with xkron.open_fit, `xkron info` or `xkron predict`.",
)


def data_options(function):
    """Options shared by ``fit`` and ``batch``: data, model, inference, selection, dask, output."""
    options = [
        *_MODEL_OPTIONS,
        *_INFERENCE_OPTIONS,
        *SELECT_OPTIONS,
        CHUNKS_IN,
        SCHEDULER,
        WORKERS,
        _FIT_OUT,
        OVERWRITE_OPTION,
    ]
    for option in reversed(options):
        function = option(function)
    return function
