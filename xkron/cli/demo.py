"""The work of ``xkron demo``: fit the bundled air temperature, predict on a finer grid, write, check.

:func:`run_demo` fits an exact Kronecker GP to the bundled A1B air temperature (see
:func:`xkron.datasets.load_air_temperature`), predicts on a grid twice as fine in latitude and
longitude, and writes the predictions, the fit and a plot; where iris-sample-data is
installed it compares the prediction with the full-resolution field. It returns a
:class:`DemoResult` and raises; :mod:`xkron.cli.demo_command` prints. Heavy imports (xarray,
PyMC, matplotlib) happen inside the functions, so ``--help`` is fast.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xkron.cli.info import kernels_text
from xkron.cli.paths import check_writable_folder
from xkron.cli.report import fit_noting_convergence
from xkron.io.atomic import atomic_write
from xkron.io.cf import history

__all__ = [
    "DEFAULT_YEARS",
    "DEMO_FIT",
    "DEMO_PLOT",
    "DEMO_PREDICTION",
    "PREDICT_YEARS",
    "RESTARTS",
    "SEED",
    "SPACE_DIMS",
    "SPACE_KERNEL",
    "TIME_KERNEL",
    "TIME_KERNELS",
    "DemoResult",
    "HeldOutCheck",
    "run_demo",
    "year_of",
]

DEMO_PREDICTION = "xkron_demo_prediction.nc"
DEMO_FIT = "xkron_demo_fit.nc"
DEMO_PLOT = "xkron_demo.png"

DEFAULT_YEARS = 240
"""Training years of ``xkron demo``: all of 1860–2099 (``--years`` takes the most recent N).

The whole record, because the cost is that of the 475-point spatial factor, not of the
number of years: there is no need to subsample time (timings: ``tests/benchmarks/README.md``)."""

PREDICT_YEARS = 3
"""The demo predicts the last this many training years on the fine grid."""

TIME_KERNELS = ("Matern12", "Matern32", "Matern52", "ExpQuad")
TIME_KERNEL = "Matern12"
"""Default time kernel of the demo, chosen by the data: the highest MAP log posterior of ``TIME_KERNELS``.

Annual means change roughly from year to year, which the exponential (Ornstein–Uhlenbeck)
kernel describes and the smoother ones do not; its lengthscale comes out far beyond the
record (the field behaves like a random walk in time), so that number is weakly identified.
The log posteriors and held-out errors of each choice are in ``tests/benchmarks/README.md``."""
SPACE_KERNEL = "Matern52"
SPACE_DIMS = ("latitude", "longitude")
RESTARTS = 2
SEED = 0


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


def year_of(t) -> int:
    """The year of a time coordinate value (cftime or datetime)."""
    return int(t.year)


def _training_data(years: int, time_kernel: str):
    """The bundled data and its last ``years`` years, after checking the arguments."""
    from xkron.datasets import load_air_temperature

    da = load_air_temperature()
    n_time = da.sizes["time"]
    if not 2 <= years <= n_time:
        raise ValueError(f"years must be between 2 and {n_time}, got {years}")
    if time_kernel not in TIME_KERNELS:
        raise ValueError(f"time_kernel must be one of {TIME_KERNELS}, got {time_kernel!r}")
    return da, da.isel(time=slice(n_time - years, None))


def _write(out: Path, pred, fit, da) -> dict[str, Path]:
    """The prediction (compressed, times in days since 1860) and the fit, each written atomically."""
    paths = {"prediction": out / DEMO_PREDICTION, "fit": out / DEMO_FIT}
    encoding = {name: {"zlib": True, "complevel": 4} for name in ("mean", "sd")}
    encoding["time"] = {
        "units": "days since 1860-01-01 00:00:00",
        "calendar": da["time"].encoding.get("calendar"),
        "dtype": "float64",
        "_FillValue": None,  # CF: coordinate variables have no missing values
    }
    with atomic_write(paths["prediction"]) as tmp:
        pred.to_netcdf(tmp, encoding=encoding)
    fit.to_netcdf(paths["fit"])  # atomic too (xkron.io.netcdf.write_fit)
    return paths


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

    say = echo or (lambda message: None)
    out = Path(out)
    timings: dict[str, float] = {}
    start = tick = time.perf_counter()
    da, train = _training_data(years, time_kernel)
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

    grid = {"time": train["time"].values[-min(PREDICT_YEARS, years) :]}
    grid.update(latitude=_fine_axis(da["latitude"]), longitude=_fine_axis(da["longitude"]))
    tick = time.perf_counter()
    with threadpool_limits(limits=blas_threads, user_api="blas"):
        pred = fit.predict(**grid)
        pred_noisy = fit.predict(**grid, noise=True)
    timings["predict"] = time.perf_counter() - tick

    in_training = np.zeros((grid["latitude"].size, grid["longitude"].size), dtype=np.int8)
    in_training[::2, ::2] = 1
    pred = _prediction_dataset(pred, da, train, fit, in_training)
    heldout, note = _heldout_check(pred, pred_noisy, train, in_training)

    tick = time.perf_counter()
    paths = _write(out, pred, fit, da)
    timings["write"] = time.perf_counter() - tick
    if plot:
        tick = time.perf_counter()
        paths["plot"] = out / DEMO_PLOT
        _plot(pred, train, paths["plot"])  # atomic (xkron.results.plots.save_png)
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
    first, last = year_of(train["time"].values[0]), year_of(train["time"].values[-1])
    params = ", ".join(f"{k}={float(v):.4g} {v.attrs.get('units', '')}".rstrip() for k, v in fit.params.items())
    pred.attrs.update(
        {
            "title": "Exact Kronecker GP prediction of annual near-surface air temperature (A1B, North America)",
            "source": f"xkron {xkron.__version__} demo; training data: {da.attrs.get('source', '')}",
            "history": history(
                f"demo --years {train.sizes['time']}: MAP fit of a Kronecker GP to {first}-{last} on the bundled "
                f"{train.sizes['latitude']}x{train.sizes['longitude']} grid, predicted on a "
                f"{pred.sizes['latitude']}x{pred.sizes['longitude']} grid (twice the resolution)",
                da.attrs.get("history"),
            ),
            "references": "Saatci (2011), Scalable inference for structured Gaussian process models, "
            "PhD thesis, University of Cambridge, Alg. 16; data: https://github.com/SciTools/iris-sample-data",
            "comment": (
                f"Kernel: amplitude^2 * {kernels_text(fit)} + noise; "
                f"constant mean. MAP hyperparameters: {params}. 'mean' and 'sd' are the posterior of the "
                "latent field (observation noise not included)."
            ),
            "license": "data: British Crown copyright, 2018, Open Government Licence "
            "(http://www.nationalarchives.gov.uk/doc/open-government-licence)",
        }
    )
    return pred


def _full_resolution_truth(times):
    """The full-resolution field at ``times``, or ``None`` and why not."""
    import xarray as xr

    try:
        import iris_sample_data
    except ImportError:
        return None, "iris-sample-data is not installed (pip install 'xkron[data]'): no held-out check"
    path = Path(iris_sample_data.path) / "A1B_north_america.nc"
    if not path.is_file():
        return None, f"{path} not found: no held-out check"
    with xr.open_dataset(path, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)) as ds:
        truth = ds["air_temperature"].sel(time=times).load()
    return truth.transpose("time", *SPACE_DIMS), ""


def _heldout_check(pred, pred_noisy, train, in_training) -> tuple[HeldOutCheck | None, str]:
    """Compare with the full-resolution field at cells not in the training grid."""
    import numpy as np

    times = pred["time"].values
    truth, note = _full_resolution_truth(times)
    if truth is None:
        return None, note
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
    """Maps of the posterior mean and sd of the last predicted year (``pred.kron.plot_map``), training grid marked."""
    import numpy as np

    from xkron.results.plots import save_png

    fig = pred.kron.plot_map(isel={"time": -1}, figsize=(13, 4.6))
    lon_t, lat_t = np.meshgrid(train["longitude"].values, train["latitude"].values)
    for ax in fig.axes[:2]:
        ax.scatter(lon_t.ravel(), lat_t.ravel(), s=3, c="white", alpha=0.35, linewidths=0, label="training grid")
    fig.axes[0].legend(loc="lower left", fontsize="small", framealpha=0.7)
    first, last = year_of(train["time"].values[0]), year_of(train["time"].values[-1])
    fig.suptitle(
        f"Near-surface air temperature, A1B: exact Kronecker GP trained on {first}–{last} "
        f"({train.sizes['latitude']}×{train.sizes['longitude']} grid), "
        f"predicted on {pred.sizes['latitude']}×{pred.sizes['longitude']}"
    )
    save_png(fig, path)
