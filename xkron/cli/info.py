"""``xkron info FIT.nc``: the summary of a saved fit, also printed by ``xkron fit`` and ``xkron demo``.

:func:`describe_fit` does the work and returns the text; the click command only prints it.
The fit is opened with ``defer_priors=True``, so a summary imports no PyMC. A batch fit
(``xkron batch``) is listed slice by slice; ``--sel member=m1`` shows the summary of one slice.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from xkron.cli.errors import JobInputError, to_click
from xkron.cli.saved import select_slices
from xkron.cli.select import SELECT_OPTIONS

__all__ = ["DAYS_PER_YEAR", "describe_fit", "info", "kernels_text", "optimizer_line", "param_lines", "prior_lines"]

DAYS_PER_YEAR = {"360_day": 360.0, "noleap": 365.0, "all_leap": 366.0}
"""Days of a year by cftime calendar, to show time lengthscales in years (365.25 for the others)."""


def kernels_text(fit, sep: str = " * ") -> str:
    """The fit's kernel factors, e.g. ``Matern12(time) * Matern52(latitude, longitude)``."""
    return sep.join(f"{f.kernel.name}({', '.join(f.dims)})" for f in fit.spec.factors)


def _short_numbers(text: str) -> str:
    """Round the long floats of a prior's repr to 4 significant digits."""
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


def _batch_text(batch, path, sel: dict) -> tuple[str, object | None]:
    """The header of a batch fit cut to ``sel``, and its one fit (``None`` while several slices are left)."""
    batch, rest = select_slices(batch, sel)
    if rest:
        raise JobInputError(
            f"--sel picks slices of a batch fit by its batch dims {list(batch.batch_dims)}, not {sorted(rest)}", "--sel"
        )
    if len(batch.fits) == 1:
        ((idx, fit),) = batch.fits.items()
        if fit is None:
            raise JobInputError(f"the slice {batch.describe(idx)} of {path} failed: {batch.failures[idx]}", "--sel")
        return f"{path} (slice {batch.describe(idx)})", fit
    lines = [f"{path}", repr(batch)]
    for idx, fit in batch.fits.items():
        lines.append(f"  {batch.describe(idx)}: {'failed: ' + batch.failures[idx] if fit is None else 'fitted'}")
    first = batch.describe(next(iter(batch.fits))).split(", ")
    lines.append("one slice's parameters: --sel " + " --sel ".join(item.replace("'", "") for item in first))
    return "\n".join(lines), None


def describe_fit(path: str | Path, sel: dict | None = None) -> str:
    """Summary of a fit saved with :meth:`xkron.KronFit.to_netcdf` (``xkron info``).

    A batch fit is listed slice by slice, unless ``sel`` (``{batch dim: label}``, as ``--sel``)
    picks one slice, whose summary is then shown.
    """
    import xkron

    fit = xkron.open_fit(path, defer_priors=True)  # a summary: no PyMC import
    header = f"{path}"
    if hasattr(fit, "fits"):
        header, fit = _batch_text(fit, path, dict(sel or {}))
        if fit is None:
            return header
    elif sel:
        raise JobInputError(f"--sel picks slices of a batch fit; {path} is a single fit", "--sel")
    data = fit.data
    lines = [
        header,
        repr(fit),
        f"data: {data.name or '(unnamed)'} [{data.attrs.get('units', 'no units')}]"
        + (f", {data.attrs['long_name']}" if "long_name" in data.attrs else ""),
        "priors:",
        *prior_lines(fit),
    ]
    if fit.method == "map":
        lines.append(optimizer_line(fit.optimizer))
    return "\n".join(lines)


def prior_lines(fit) -> list[str]:
    """One line per hyperparameter with a prior (the values and units are in the fit's repr above)."""
    priors = {name: var.attrs.get("prior", "") for name, var in fit.params.items()}
    width = max((len(k) for k in priors), default=0)
    return [f"  {name:<{width}}  {_short_numbers(prior)}" for name, prior in priors.items() if prior]


@click.command(short_help="Print the summary of a saved fit (FIT.nc).")
@click.argument("fit_path", metavar="FIT.nc", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@SELECT_OPTIONS[0]
def info(fit_path: Path, sel: dict) -> None:
    """Print the summary of a fit saved with KronFit.to_netcdf (e.g. by `xkron demo`).

    Shows the fit's repr (grid, kernels, method), the data variable and units, every
    hyperparameter with its units and prior (mean ± sd for NUTS fits) and, for MAP
    fits, the optimizer's convergence report. A batch fit (`xkron batch`) is listed
    slice by slice; --sel picks one slice to summarise.

    \b
    Examples:
      xkron info fit.nc
      xkron info fits.nc --sel member=r1i1p1f1
    """
    try:
        text = describe_fit(fit_path, sel)
    except JobInputError as err:
        raise to_click(err, click.get_current_context()) from err
    except (KeyError, ValueError, OSError) as err:  # open_fit says "PATH is not an xkron fit (why)"
        raise click.ClickException(str(err)) from err
    click.echo(text)
