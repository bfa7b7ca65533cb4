"""Command-line interface: ``xkron demo`` and ``xkron info``.

``xkron demo`` fits an exact Kronecker GP to the bundled A1B air temperature (see
:func:`xkron.datasets.load_air_temperature`), predicts on a grid twice as fine in latitude
and longitude, and writes the predictions, the fit and a plot. ``xkron info FIT.nc``
summarises a fit saved with :meth:`xkron.KronFit.to_netcdf`.
``xkron fit``, ``xkron predict`` and ``xkron batch`` (files in, files out): :mod:`xkron.cli.jobs`.

The work is done by :func:`run_demo` and :func:`describe_fit`, which return their results
and raise exceptions; the click commands only parse options and print. Heavy imports
(xarray, PyMC, matplotlib) happen inside the functions, so ``--help`` is fast.
"""

from __future__ import annotations

import datetime
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from xkron.cli.paths import check_writable_folder
from xkron.io.atomic import atomic_write

__all__ = [
    "DEFAULT_YEARS",
    "DEMO_FIT",
    "DEMO_PLOT",
    "DEMO_PREDICTION",
    "DemoResult",
    "HeldOutCheck",
    "demo",
    "describe_fit",
    "info",
    "main",
    "run_demo",
]

DEMO_PREDICTION = "xkron_demo_prediction.nc"
DEMO_FIT = "xkron_demo_fit.nc"
DEMO_PLOT = "xkron_demo.png"

DEFAULT_YEARS = 240
"""Training years of ``xkron demo``: all of 1860–2099 (``--years`` takes the most recent N).

The fit's cost is dominated by the eigendecomposition of the 475-point spatial factor, so
the whole record fits in well under a minute; there is no need to subsample time."""

PREDICT_YEARS = 3
"""The demo predicts the last this many training years on the fine grid."""

TIME_KERNELS = ("Matern12", "Matern32", "Matern52", "ExpQuad")
TIME_KERNEL = "Matern12"
"""Default time kernel of the demo, chosen by the data.

With Matern52 over (latitude, longitude), MAP log posteriors (all 240 years / last 30):
Matern12 −11587 / −905, Matern32 −38000 / −4167; with ExpQuad over space the fits are
worse still (Matern32 × ExpQuad on 240 years does not converge: time lengthscale of
centuries, amplitude ~1000 K). Annual means change roughly from year to year, which the
exponential (Ornstein–Uhlenbeck) kernel describes and the smoother ones do not; its
lengthscale comes out far beyond the record (the field behaves like a random walk in
time), so that number is weakly identified. Held-out spatial RMSE differs little
(0.34–0.35 K)."""
SPACE_KERNEL = "Matern52"
SPACE_DIMS = ("latitude", "longitude")
RESTARTS = 2
SEED = 0
DAYS_PER_YEAR = {"360_day": 360.0, "noleap": 365.0, "all_leap": 366.0}


# --------------------------------------------------------------------------------------
# Library functions (no printing of results, no sys.exit)
# --------------------------------------------------------------------------------------


@dataclass
class HeldOutCheck:
    """Prediction error at fine-grid cells that are not in the training grid.

    The truth is the full-resolution field of ``A1B_north_america.nc`` (iris-sample-data),
    from which the bundled dataset takes every second latitude and longitude.
    """

    n_cells: int
    """Held-out values compared (cells × years)."""
    rmse: float
    """RMSE of the GP posterior mean (K)."""
    rmse_bilinear: float
    """RMSE of bilinear interpolation of the training grid, for comparison (K)."""
    coverage95: float
    """Fraction of held-out values inside the 95% predictive interval (mean ± 1.96 sd, noise included)."""
    mean_sd: float
    """Mean predictive sd at the held-out values, noise included (K)."""


@dataclass
class DemoResult:
    """What :func:`run_demo` made."""

    fit: Any
    """The :class:`xkron.KronFit`."""
    prediction: Any
    """The predictions (``xarray.Dataset``) as written to ``paths["prediction"]``."""
    paths: dict[str, Path]
    """``prediction``, ``fit`` and (unless ``plot=False``) ``plot``."""
    timings: dict[str, float]
    """Seconds per step: ``load``, ``fit``, ``predict``, ``write``, ``plot``, ``total``."""
    heldout: HeldOutCheck | None = None
    """``None`` when iris-sample-data is not installed (see ``heldout_note``)."""
    heldout_note: str = ""
    warnings: list[str] = field(default_factory=list)
    """Convergence warnings raised by the fit."""


def _fine_axis(values):
    """Twice the resolution: the training points plus the midpoints between them."""
    import numpy as np

    values = np.asarray(values, dtype=float)
    return np.linspace(values[0], values[-1], 2 * len(values) - 1)


def _year(t) -> int:
    return int(t.year)


def fit_noting_convergence(run: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``run()`` (a fit), with its ``ConvergenceWarning`` messages collected for the summary.

    Other warnings are passed on unchanged.
    """
    import xkron

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", xkron.ConvergenceWarning)
        result = run()
    messages = []
    for w in caught:
        if issubclass(w.category, xkron.ConvergenceWarning):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result, messages


def run_demo(
    out: str | Path,
    years: int = DEFAULT_YEARS,
    plot: bool = True,
    time_kernel: str = TIME_KERNEL,
    blas_threads: int | None = 1,
    echo: Callable[[str], None] | None = None,
) -> DemoResult:
    """Fit, predict and write the demo outputs into ``out`` (see ``xkron demo --help``).

    Parameters
    ----------
    out : path
        Output directory, created if missing and checked to be writable before the fit. The
        demo's own files in it (fixed names) are replaced, each atomically.
    years : int
        Train on the last ``years`` years of 1860–2099 (2 ≤ years ≤ 240).
    plot : bool
        Write the PNG.
    time_kernel : str
        Kernel of the time factor, one of ``TIME_KERNELS``.
    blas_threads : int or None
        BLAS/LAPACK threads during fit and prediction; ``None`` leaves the default.
    echo : callable, optional
        Progress messages (e.g. ``click.echo``).
    """
    import numpy as np
    from threadpoolctl import threadpool_limits

    import xkron
    from xkron.datasets import load_air_temperature

    say = echo or (lambda message: None)
    out = Path(out)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    tick = time.perf_counter()
    da = load_air_temperature()
    n_time = da.sizes["time"]
    if not 2 <= years <= n_time:
        raise ValueError(f"years must be between 2 and {n_time}, got {years}")
    if time_kernel not in TIME_KERNELS:
        raise ValueError(f"time_kernel must be one of {TIME_KERNELS}, got {time_kernel!r}")
    train = da.isel(time=slice(n_time - years, None))
    timings["load"] = time.perf_counter() - tick
    out.mkdir(parents=True, exist_ok=True)
    check_writable_folder(out)  # before the fit, not after it

    kernels = {"time": getattr(xkron, time_kernel)(), SPACE_DIMS: getattr(xkron, SPACE_KERNEL)()}
    shape = " × ".join(str(n) for n in train.shape)
    say(f"fitting {time_kernel}(time) × {SPACE_KERNEL}(latitude, longitude) to {shape} cells (MAP) ...")
    tick = time.perf_counter()
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        fit, fit_warnings = fit_noting_convergence(
            lambda: train.kron.fit(kernels, restarts=RESTARTS, random_seed=SEED, progressbar=False)
        )
    timings["fit"] = time.perf_counter() - tick

    lat_fine, lon_fine = _fine_axis(da["latitude"]), _fine_axis(da["longitude"])
    times = train["time"].values[-min(PREDICT_YEARS, years) :]
    tick = time.perf_counter()
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        pred = fit.predict(time=times, latitude=lat_fine, longitude=lon_fine)
        pred_noisy = fit.predict(time=times, latitude=lat_fine, longitude=lon_fine, noise=True)
    timings["predict"] = time.perf_counter() - tick

    in_training = np.zeros((lat_fine.size, lon_fine.size), dtype=np.int8)
    in_training[::2, ::2] = 1
    pred = _prediction_dataset(pred, da, train, fit, in_training)

    heldout, note = _heldout_check(pred, pred_noisy, train, in_training)

    tick = time.perf_counter()
    paths = {"prediction": out / DEMO_PREDICTION, "fit": out / DEMO_FIT}
    encoding = {name: {"zlib": True, "complevel": 4} for name in ("mean", "sd")}
    encoding["time"] = {"units": "days since 1860-01-01 00:00:00", "calendar": da["time"].encoding.get("calendar")}
    with atomic_write(paths["prediction"]) as tmp:
        pred.to_netcdf(tmp, encoding=encoding)
    fit.to_netcdf(paths["fit"])  # atomic too (xkron.io.netcdf.write_fit)
    timings["write"] = time.perf_counter() - tick

    if plot:
        tick = time.perf_counter()
        paths["plot"] = out / DEMO_PLOT
        with atomic_write(paths["plot"]) as tmp:
            _plot(pred, train, tmp)
        timings["plot"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - start
    return DemoResult(fit, pred, paths, timings, heldout, note, fit_warnings)


def _prediction_dataset(pred, da, train, fit, in_training):
    """Add CF coordinate attributes, a training-grid flag and global attributes."""
    import numpy as np
    import xarray as xr

    import xkron

    pred = pred.copy()
    for name in ("time", *SPACE_DIMS):
        pred[name].attrs = {k: v for k, v in da[name].attrs.items() if k != "bounds"}
    pred["in_training_grid"] = xr.DataArray(
        in_training,
        dims=SPACE_DIMS,
        attrs={
            "long_name": "cell is a point of the training grid",
            "flag_values": np.array([0, 1], dtype=np.int8),
            "flag_meanings": "held_out training_grid_point",
        },
    )
    first, last = _year(train["time"].values[0]), _year(train["time"].values[-1])
    params = ", ".join(f"{k}={float(v):.4g} {v.attrs.get('units', '')}".rstrip() for k, v in fit.params.items())
    pred.attrs.update(
        {
            "title": "Exact Kronecker GP prediction of annual near-surface air temperature (A1B, North America)",
            "source": f"xkron {xkron.__version__} demo; training data: {da.attrs.get('source', '')}",
            "history": (
                f"{datetime.datetime.now(datetime.UTC).isoformat(timespec='seconds')}: xkron demo --years "
                f"{train.sizes['time']}: MAP fit of a Kronecker GP to {first}-{last} on the bundled "
                f"{train.sizes['latitude']}x{train.sizes['longitude']} grid, predicted on a "
                f"{pred.sizes['latitude']}x{pred.sizes['longitude']} grid (twice the resolution)"
            ),
            "references": "Saatci (2011), Scalable inference for structured Gaussian process models, "
            "PhD thesis, University of Cambridge, Alg. 16; data: https://github.com/SciTools/iris-sample-data",
            "comment": (
                f"Kernel: amplitude^2 * {_kernels(fit)} + noise; "
                f"constant mean. MAP hyperparameters: {params}. 'mean' and 'sd' are the posterior of the "
                "latent field (observation noise not included)."
            ),
            "license": "data: British Crown copyright, 2018, Open Government Licence "
            "(http://www.nationalarchives.gov.uk/doc/open-government-licence)",
        }
    )
    return pred


def _heldout_check(pred, pred_noisy, train, in_training) -> tuple[HeldOutCheck | None, str]:
    """Compare with the full-resolution field at cells not in the training grid."""
    import numpy as np
    import xarray as xr

    try:
        import iris_sample_data
    except ImportError:
        return None, "iris-sample-data is not installed (pip install 'xkron[data]'): no held-out check"
    path = Path(iris_sample_data.path) / "A1B_north_america.nc"
    if not path.is_file():
        return None, f"{path} not found: no held-out check"
    times = pred["time"].values
    with xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        truth = ds["air_temperature"].sel(time=times).load()
    truth = truth.transpose("time", *SPACE_DIMS)
    same_grid = all(
        truth.sizes[d] == pred.sizes[d] and np.allclose(truth[d].values, pred[d].values, atol=1e-4) for d in SPACE_DIMS
    )
    if not same_grid:
        return None, "the full-resolution grid does not match the prediction grid: no held-out check"
    held_out = np.broadcast_to(in_training == 0, truth.shape)
    t = truth.values.astype(float)[held_out]
    mean = pred["mean"].values[held_out]
    sd_noisy = pred_noisy["sd"].values[held_out]
    bilinear = train.sel(time=times).interp(latitude=pred["latitude"].values, longitude=pred["longitude"].values)
    b = bilinear.transpose("time", *SPACE_DIMS).values.astype(float)[held_out]
    check = HeldOutCheck(
        n_cells=int(held_out.sum()),
        rmse=float(np.sqrt(np.mean((mean - t) ** 2))),
        rmse_bilinear=float(np.sqrt(np.mean((b - t) ** 2))),
        coverage95=float(np.mean(np.abs(t - mean) <= 1.96 * sd_noisy)),
        mean_sd=float(np.mean(sd_noisy)),
    )
    return check, ""


def _plot(pred, train, path: Path) -> None:
    """Maps of the posterior mean and sd of the last predicted year, training grid marked."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    year = pred.isel(time=-1)
    units = pred["mean"].attrs.get("units", "")
    fig = Figure(figsize=(13, 4.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2, sharey=True)
    lon_t, lat_t = np.meshgrid(train["longitude"].values, train["latitude"].values)
    panels = [
        ("mean", "viridis", f"posterior mean ({units})", "Posterior mean"),
        ("sd", "magma", f"posterior sd ({units})", "Posterior sd (latent field)"),
    ]
    for ax, (name, cmap, label, title) in zip(axes, panels, strict=True):
        mesh = ax.pcolormesh(
            year["longitude"].values, year["latitude"].values, year[name].values, cmap=cmap, shading="nearest"
        )
        fig.colorbar(mesh, ax=ax, label=label)
        ax.scatter(lon_t.ravel(), lat_t.ravel(), s=3, c="white", alpha=0.35, linewidths=0, label="training grid")
        ax.set_xlabel("longitude (degrees east)")
        ax.set_title(f"{title}, {_year(year['time'].item())}")
    axes[0].set_ylabel("latitude (degrees north)")
    axes[0].legend(loc="lower left", fontsize="small", framealpha=0.7)
    first, last = _year(train["time"].values[0]), _year(train["time"].values[-1])
    fig.suptitle(
        f"Near-surface air temperature, A1B: exact Kronecker GP trained on {first}–{last} "
        f"({train.sizes['latitude']}×{train.sizes['longitude']} grid), "
        f"predicted on {pred.sizes['latitude']}×{pred.sizes['longitude']}"
    )
    fig.savefig(path, dpi=110)


def _kernels(fit, sep: str = " * ") -> str:
    """``Matern12(time) * Matern52(latitude, longitude)``."""
    return sep.join(f"{f.kernel.name}({', '.join(f.dims)})" for f in fit.spec.factors)


def _short_numbers(text: str) -> str:
    """Round the long floats of a prior's repr to 4 significant digits."""
    import re

    return re.sub(r"-?\d+\.\d{5,}(?:e[-+]?\d+)?", lambda m: f"{float(m.group()):.4g}", text)


def _fmt(value: float) -> str:
    return f"{value:.4g}"


def param_lines(fit, priors: bool = True) -> list[str]:
    """One line per hyperparameter: value (mean ± sd for NUTS), units and (optionally) prior."""
    params = fit.params
    calendar = None
    for enc in getattr(fit, "encodings", {}).values():
        if enc.is_time:
            calendar = enc.calendar
    width = max(len(k) for k in params.data_vars)
    lines = []
    for name, var in params.items():
        units = var.attrs.get("units", "")
        if "chain" in var.dims:
            value = f"{_fmt(float(var.mean()))} ± {_fmt(float(var.std()))}"
        else:
            value = _fmt(float(var))
        text = f"  {name:<{width}}  {value} {units}".rstrip()
        if units == "days" and "chain" not in var.dims:
            days = DAYS_PER_YEAR.get(calendar or "", 365.25)
            text += f" (= {float(var) / days:.3g} years of {days:g} days)"
        prior = var.attrs.get("prior", "")
        if priors and prior:
            text += f"   prior: {_short_numbers(prior)}"
        lines.append(text)
    return lines


def optimizer_line(optimizer: dict | None) -> str:
    """The MAP convergence report in one line."""
    if not optimizer:
        return "optimizer: none (NUTS fit)"
    status = "converged" if optimizer.get("success") else "NOT converged"
    parts = [f"{status} ({optimizer.get('message', '')})", f"log posterior {optimizer.get('logp', float('nan')):.2f}"]
    if "nit" in optimizer:
        parts.append(f"{optimizer['nit']} iterations")
    if "n_starts" in optimizer:
        best = optimizer.get("n_starts_at_best", "?")
        parts.append(f"best optimum reached from {best} of {optimizer['n_starts']} starts")
    return "optimizer: " + ", ".join(parts)


def describe_fit(path: str | Path) -> str:
    """Summary of a fit saved with :meth:`xkron.KronFit.to_netcdf` (``xkron info``)."""
    import xkron

    fit = xkron.open_fit(path, defer_priors=True)  # a summary: no PyMC import
    data = fit.data
    lines = [
        f"{path}",
        repr(fit),
        f"data: {data.name or '(unnamed)'} [{data.attrs.get('units', 'no units')}]"
        + (f", {data.attrs['long_name']}" if "long_name" in data.attrs else ""),
        "parameters:",
        *param_lines(fit),
    ]
    if fit.method == "map":
        lines.append(optimizer_line(fit.optimizer))
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# click commands
# --------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xkron", prog_name="xkron")
def main() -> None:
    """xkron: exact Kronecker-structured Gaussian processes on xarray grids.

    Run `xkron COMMAND --help` for the options of a command.
    """


@main.command(short_help="Fit the bundled air temperature, predict on a 2x finer grid, write NetCDF + PNG.")
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
    first, last = _year(train["time"].values[0]), _year(train["time"].values[-1])
    shape = " × ".join(f"{n}" for n in train.shape)
    t = result.timings
    lines = [
        "",
        "xkron demo: exact Kronecker GP, annual near-surface air temperature (K), A1B, North America",
        f"training:    {'all' if train.sizes['time'] == 240 else 'last ' + str(train.sizes['time']) + ' of'} 240 "
        f"years ({first}-{last}), whole bundled 19 × 25 grid: "
        f"{shape} = {train.size:,} cells",
        f"model:       amplitude² · {_kernels(fit, ' · ')} + noise, constant mean, default priors, MAP",
        optimizer_line(fit.optimizer),
        *(f"WARNING: {w}" for w in result.warnings),
        "parameters:",
        *param_lines(fit, priors=False),
        f"prediction:  {', '.join(str(_year(v)) for v in pred['time'].values)} on a "
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


@main.command(short_help="Print the summary of a saved fit (FIT.nc).")
@click.argument("fit_path", metavar="FIT.nc", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def info(fit_path: Path) -> None:
    """Print the summary of a fit saved with KronFit.to_netcdf (e.g. by `xkron demo`).

    Shows the fit's repr (grid, kernels, method), the data variable and units, every
    hyperparameter with its units and prior (mean ± sd for NUTS fits) and, for MAP
    fits, the optimizer's convergence report.
    """
    try:
        text = describe_fit(fit_path)
    except (KeyError, ValueError, OSError) as err:  # open_fit says "PATH is not an xkron fit (why)"
        raise click.ClickException(str(err)) from err
    click.echo(text)


from xkron.cli import jobs as _cli_jobs  # noqa: E402, F401  (registers fit, predict, batch on main)
