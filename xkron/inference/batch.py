"""Running one fit per slice along batch dims, locally or on a dask cluster.

The fit of a slice is passed in (``xkron.fit``), so this runner knows nothing of results; the
batch (:class:`xkron.results.batch.BatchFit`) is assembled above it. Independent slices run as
tasks: on the active ``distributed.Client`` when there is one (``distributed.get_client``;
xkron never creates a client or sets dask options), else one after the other in this process
with dask's synchronous scheduler. Progress is shown with dask's own tools
(``distributed.progress``, ``dask.diagnostics.ProgressBar``). A task is a pure function of its
slice, so the cluster reschedules it, with the same result, when a worker dies.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, replace

import numpy as np
import xarray as xr

from xkron.errors import BatchError
from xkron.inference.options import FitOptions

__all__ = ["fit_slice", "labels_of", "prepare_all", "run_slices", "select", "slice_options"]


def prepare_all(kernels, tasks, index, labels, errors: str) -> dict[int, str]:
    """Check every slice's arguments before any slice is fitted (:func:`xkron.inference.prepare.prepare`).

    ``tasks`` are ``(data, options)`` per slice (:func:`slice_options`).

    Every slice refused: the arguments themselves are wrong, and the first refusal is raised
    as it is (``ValueError`` or ``TypeError``, naming the slice). Some refused: with
    ``errors="raise"`` a :class:`BatchError` names the first; with ``"record"`` the refusals
    are returned by task number, and those slices are not run.
    """
    from xkron.inference.prepare import prepare

    refused: dict[int, tuple[str, Exception]] = {}
    for k, (data, options) in enumerate(tasks):
        try:
            prepare(data, kernels, options)
        except (ValueError, TypeError) as exc:
            where = ", ".join(f"{d}={labels[d][i].item()!r}" for d, i in zip(labels, index[k], strict=True))
            refused[k] = (where, exc)
    if not refused:
        return {}
    where, exc = next(iter(refused.values()))
    if len(refused) == len(tasks):
        raise type(exc)(f"every batch slice was refused; the first, {where}: {exc}") from exc
    if errors == "raise":
        raise BatchError(
            f"{len(refused)} of {len(tasks)} slices failed before any fit; the first, {where}: "
            f"{type(exc).__name__}: {exc}. Pass errors='record' to keep the others (failed slices give NaN)."
        ) from exc
    return {k: f"{type(e).__name__}: {e}" for k, (_, e) in refused.items()}


def select(value, where: Mapping[str, int]):
    """A per-slice keyword value: DataArrays (and likelihoods holding them) cut along the batch dims."""
    if isinstance(value, xr.DataArray):
        return value.isel({d: i for d, i in where.items() if d in value.dims})
    if hasattr(value, "__dataclass_fields__"):
        changes = {f.name: select(getattr(value, f.name), where) for f in fields(value)}
        changes = {k: v for k, v in changes.items() if isinstance(v, xr.DataArray)}
        return replace(value, **changes) if changes else value
    return value


def slice_options(options: FitOptions, where: Mapping[str, int], k: int) -> FitOptions:
    """The options of slice ``k`` at ``where``: per-cell inputs cut to it, seed ``random_seed + k``,
    no progress bar (dask's shows the slices), and one process for PyMC inside a task."""
    cut = {f.name: select(getattr(options, f.name), where) for f in fields(options) if f.name != "sample_kwargs"}
    kwargs = {name: select(value, where) for name, value in options.sample_kwargs.items()}
    if options.method == "nuts":
        kwargs = {"cores": 1, **kwargs}  # inside a task PyMC must not start its own processes
    seed = None if options.random_seed is None else options.random_seed + k
    return replace(options, **cut).unbatched(random_seed=seed, progressbar=False, sample_kwargs=kwargs)


def labels_of(da: xr.DataArray, dim: str) -> np.ndarray:
    return da[dim].values if dim in da.coords else np.arange(da.sizes[dim])


def fit_slice(fit: Callable, data: xr.DataArray, kernels: Mapping, options: FitOptions):
    """One slice's ``fit(data, kernels, options)``, or its error message; the fit without its
    caches (the PyMC model and posteriors, rebuilt on demand), so it travels light."""
    try:
        result = fit(data, kernels, options)
    except Exception as exc:  # recorded per slice; the caller raises unless errors="record"
        return None, f"{type(exc).__name__}: {exc}"
    result.release_caches()
    return result, ""


def run_slices(fit: Callable, kernels, tasks, progressbar: bool) -> list:
    """Run ``fit`` on every slice on the active dask client, or locally with dask's synchronous scheduler."""
    import dask

    try:
        from distributed import get_client, progress

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        futures = [client.submit(fit_slice, fit, data, kernels, options, pure=False) for data, options in tasks]
        if progressbar:
            progress(futures)
        return client.gather(futures)
    delayed = [dask.delayed(fit_slice)(fit, data, kernels, options) for data, options in tasks]
    if progressbar:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*delayed, scheduler="synchronous"))
    return list(dask.compute(*delayed, scheduler="synchronous"))
