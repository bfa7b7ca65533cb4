"""``xkron demo``: the click command and its printed summary; the work is :func:`xkron.cli.demo.run_demo`."""

from __future__ import annotations

from pathlib import Path

import click

from xkron.cli.demo import DEFAULT_YEARS, TIME_KERNEL, TIME_KERNELS, DemoResult, run_demo, year_of
from xkron.cli.info import kernels_text, optimizer_line, param_lines

__all__ = ["demo", "format_demo"]


@click.command(short_help="Fit the bundled air temperature, predict on a 2x finer grid, write NetCDF + PNG.")
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default="out",
    show_default=True,
    help="Directory for the three outputs (created if missing). The demo replaces its own files there "
    "(xkron_demo_prediction.nc, xkron_demo_fit.nc, xkron_demo.png) without --overwrite; each is written "
    "atomically.",
)
@click.option(
    "--years",
    type=click.IntRange(2, 240),
    default=DEFAULT_YEARS,
    show_default=True,
    help="Train on the last N years of 1860-2099 (2 to 240; default: all of them). The run time "
    "changes little with N: the 475-point spatial factor dominates the cost.",
)
@click.option(
    "--plot/--no-plot",
    default=True,
    show_default=True,
    help="Write xkron_demo.png, maps of the mean and sd (--no-plot skips it).",
)
@click.option(
    "--time-kernel",
    type=click.Choice(TIME_KERNELS),
    default=TIME_KERNEL,
    show_default=True,
    help="Kernel of the time factor. Matern12 fits these data best (by far the highest log "
    "posterior); compare with the printed optimizer line.",
)
@click.option(
    "--blas-threads",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="BLAS/LAPACK threads during fit and prediction. The matrices are small (at most 475 x 475), "
    "so extra threads gain little, and on a busy machine they can make the fit many times slower.",
)
def demo(out: Path, years: int, plot: bool, time_kernel: str, blas_threads: int) -> None:
    """Fit an exact Kronecker GP to the bundled air temperature and predict on a finer grid.

    \b
    Data: annual near-surface air temperature (K) over North America,
    1860-2099 (SRES A1B, Met Office Unified Model), bundled as a
    240 x 19 x 25 (time x latitude x longitude) subset of iris-sample-data's
    A1B_north_america.nc (every 2nd latitude and longitude).

    \b
    Model: y = mean + f + noise, f ~ GP(0, amplitude^2 * k_t(time) *
    Matern52(latitude, longitude)), k_t from --time-kernel (default
    Matern12), one lengthscale per dim, xkron's default priors, constant mean,
    MAP fit (L-BFGS-B from 3 starts, random seed 0) on the last --years years.

    \b
    Prediction: the last 3 training years on a 37 x 49 grid, twice the
    resolution in latitude and longitude (the grid of the original file).
    If iris-sample-data is installed, the prediction is compared with the
    original field at the 1338 cells per year that are not in the training
    grid: RMSE of the GP mean, RMSE of bilinear interpolation, and the
    coverage of the 95% predictive interval.

    \b
    Prints: the parameters with units, the optimizer's convergence report,
    the held-out check, timings and the output paths.

    \b
    Outputs in --out:
      xkron_demo_prediction.nc  mean and sd (K) of the latent field on
                                (time, latitude, longitude), CF attributes,
                                and the in_training_grid flag
      xkron_demo_fit.nc         the fit (KronFit.to_netcdf; read it back with
                                xkron.open_fit or `xkron info`)
      xkron_demo.png            maps of mean and sd in the last year, training
                                grid points marked (unless --no-plot)
    """
    try:
        result = run_demo(
            out, years=years, plot=plot, time_kernel=time_kernel, blas_threads=blas_threads, echo=click.echo
        )
    except (ValueError, OSError) as err:
        raise click.ClickException(str(err)) from err
    click.echo(format_demo(result))


def format_demo(result: DemoResult) -> str:
    """The printed summary of ``xkron demo``."""
    fit, pred = result.fit, result.prediction
    train = fit.data
    first, last = year_of(train["time"].values[0]), year_of(train["time"].values[-1])
    shape = " × ".join(f"{n}" for n in train.shape)
    t = result.timings
    lines = [
        "",
        "xkron demo: exact Kronecker GP, annual near-surface air temperature (K), A1B, North America",
        f"training:    {'all' if train.sizes['time'] == 240 else 'last ' + str(train.sizes['time']) + ' of'} 240 "
        f"years ({first}-{last}), whole bundled 19 × 25 grid: "
        f"{shape} = {train.size:,} cells",
        f"model:       amplitude² · {kernels_text(fit, ' · ')} + noise, constant mean, default priors, MAP",
        optimizer_line(fit.optimizer),
        *(f"WARNING: {w}" for w in result.warnings),
        "parameters:",
        *param_lines(fit, priors=False),
        f"prediction:  {', '.join(str(year_of(v)) for v in pred['time'].values)} on a "
        f"{pred.sizes['latitude']} × {pred.sizes['longitude']} grid (twice the training resolution)",
    ]
    h = result.heldout
    if h is not None:
        lines += [
            f"held-out check against the full-resolution iris-sample-data field ({h.n_cells:,} values at "
            "cells not in the training grid):",
            f"  RMSE of the GP mean             {h.rmse:.3f} K",
            f"  RMSE of bilinear interpolation  {h.rmse_bilinear:.3f} K",
            f"  95% predictive interval covers  {100 * h.coverage95:.1f} % (mean predictive sd {h.mean_sd:.3f} K)",
        ]
    else:
        lines.append(f"held-out check: skipped ({result.heldout_note})")
    lines.append(
        "timings:     "
        + ", ".join(f"{k} {t[k]:.1f} s" for k in ("load", "fit", "predict", "write", "plot", "total") if k in t)
    )
    lines.append("outputs:")
    lines += [f"  {k:<10}  {p}" for k, p in result.paths.items()]
    return "\n".join(lines)
