"""What the file commands made, and their printed summaries (``xkron fit``, ``predict``, ``batch``).

The ``run_*`` functions of :mod:`xkron.cli.jobs` return the result dataclasses defined here;
the ``format_*`` functions turn them into the text the commands print.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xkron.cli.info import describe_fit

__all__ = [
    "MAX_FAILURES_SHOWN",
    "BatchJobResult",
    "FitJobResult",
    "PredictJobResult",
    "fit_noting_convergence",
    "format_batch",
    "format_fit",
    "format_predict",
]

MAX_FAILURES_SHOWN = 10
"""Failed slices listed one by one in the summary of ``xkron batch`` (the rest are counted)."""


@dataclass
class FitJobResult:
    """What :func:`xkron.cli.jobs.run_fit` made."""

    fit: Any
    """The :class:`xkron.KronFit`."""
    out: Path
    """Where the fit was written."""
    timings: dict[str, float]
    """Seconds: ``load``, ``fit``, ``write``."""
    warnings: list[str] = field(default_factory=list)
    """Convergence warnings raised by the fit."""


@dataclass
class BatchJobResult(FitJobResult):
    """What :func:`xkron.cli.jobs.run_batch` made (``fit`` is the batch fit object)."""

    batch_dims: tuple[str, ...] = ()


@dataclass
class PredictJobResult:
    """What :func:`xkron.cli.jobs.run_predict` made."""

    prediction: Any
    """The prediction (``xarray.Dataset``) as written (lazy when ``chunks`` were given)."""
    out: Path
    timings: dict[str, float]
    """Seconds: ``open``, ``predict`` (building the graph only when lazy), ``write``."""


def fit_noting_convergence(run: Callable[[], Any]) -> tuple[Any, list[str]]:
    """``run()`` (a fit), with its ``ConvergenceWarning`` messages collected for the summary.

    Other warnings are passed on unchanged.
    """
    from xkron.errors import ConvergenceWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        result = run()
    messages = []
    for w in caught:
        if issubclass(w.category, ConvergenceWarning):
            messages.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result, messages


def _timings(timings: dict[str, float]) -> str:
    return "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())


def format_fit(result: FitJobResult) -> str:
    """The printed summary of ``xkron fit``: :func:`xkron.cli.info.describe_fit` of the written file."""
    return "\n".join(
        [
            describe_fit(result.out),
            *(f"WARNING: {w}" for w in result.warnings),
            _timings(result.timings),
            f"wrote {result.out}",
        ]
    )


def _failures(bfit) -> list[tuple[str, str]]:
    """``(slice, message)`` of the failed slices of a :class:`xkron.BatchFit`."""
    import numpy as np

    errors = bfit.errors  # a message per slice, "" where the fit worked
    out = []
    for idx in np.ndindex(errors.shape):
        message = str(errors.values[idx])
        if message:
            label = ", ".join(f"{d}={errors[d].values[i]}" for d, i in zip(errors.dims, idx, strict=True))
            out.append((label, message))
    return out


def _param_ranges(params) -> list[str]:
    """``name  median [min, max] units`` of each batch parameter."""
    import numpy as np

    lines = ["parameters (median [min, max] over the batch):"]
    width = max((len(str(k)) for k in params.data_vars), default=0)
    for name, v in params.items():
        values = np.asarray(v.values, dtype=float)
        units = v.attrs.get("units", "")
        if not np.isfinite(values).any():
            lines.append(f"  {name!s:<{width}}  all NaN")
            continue
        lo, med, hi = np.nanmin(values), np.nanmedian(values), np.nanmax(values)
        lines.append(f"  {name!s:<{width}}  {med:.4g} [{lo:.4g}, {hi:.4g}] {units}".rstrip())
    return lines


def format_batch(result: BatchJobResult) -> str:
    """The printed summary of ``xkron batch``: slices, failures, parameter ranges."""
    import numpy as np

    bfit = result.fit
    if not hasattr(bfit, "fits"):  # --shared: one KronFit
        return format_fit(result)
    params = bfit.params
    sizes = {d: int(params.sizes[d]) for d in result.batch_dims if d in params.sizes}
    n_slices = int(np.prod(list(sizes.values()))) if sizes else 1
    failures = _failures(bfit)
    unconverged = sum(
        f is not None and f.optimizer is not None and not f.optimizer.get("success", True) for f in bfit.fits.values()
    )
    lines = [
        f"{result.out}",
        f"batch:      {n_slices} slices ({' × '.join(f'{d}: {n}' for d, n in sizes.items())}), one fit each",
        f"failed:     {len(failures)}",
        *(f"  {where}: {message}" for where, message in failures[:MAX_FAILURES_SHOWN]),
    ]
    if len(failures) > MAX_FAILURES_SHOWN:
        lines.append(f"  ... and {len(failures) - MAX_FAILURES_SHOWN} more")
    lines += _param_ranges(params)
    if unconverged:
        lines.append(f"WARNING: the MAP optimizer did not converge in {unconverged} of {n_slices} slices")
    lines += [*(f"WARNING: {w}" for w in result.warnings)]
    lines.append(_timings(result.timings))
    lines.append(f"wrote {result.out}")
    return "\n".join(lines)


def format_predict(result: PredictJobResult) -> str:
    """The printed summary of ``xkron predict``."""
    pred = result.prediction
    shape = " × ".join(f"{d}: {n}" for d, n in pred["mean"].sizes.items())
    variables = ", ".join(str(v) for v in pred.data_vars)
    return "\n".join([f"prediction: {variables} on {shape}", _timings(result.timings), f"wrote {result.out}"])
