"""Input and output files of the commands (NetCDF or zarr), and the dask client of a command.

``--scheduler``/``--workers`` start a dask distributed client for the duration of a command
(:func:`dask_client`); the library functions never create one. Heavy imports happen inside
the functions, so ``--help`` stays fast.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from xkron.cli.errors import JobInputError
from xkron.io.atomic import atomic_write

__all__ = ["ZARR_INSTALL", "dask_client", "is_zarr", "open_input", "require_zarr", "write_dataset"]

ZARR_INSTALL = 'pip install "xkron[zarr]"'
"""How to get zarr, an optional extra of xkron (named in the error when it is missing)."""


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is (or will be written as) a zarr store: suffix ``.zarr`` or a directory."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or path.is_dir()


def require_zarr(path: str | Path, doing: str = "reading", option: str | None = None) -> None:
    """Refuse a zarr store ``path`` before any work when the zarr package is not installed.

    Nothing happens for a NetCDF path. The error names the extra to install.
    """
    if not is_zarr(path):
        return
    try:
        import zarr  # noqa: F401
    except ImportError:
        raise JobInputError(
            f"{doing} the zarr store {path} needs the zarr package, an optional extra of xkron: {ZARR_INSTALL}",
            option,
        ) from None


def open_input(path: str | Path, chunks: Mapping[str, int] | None = None, decode_times=True):
    """Open a NetCDF file (``xarray.open_dataset``) or zarr store (``xarray.open_zarr``).

    ``chunks`` gives dask-backed variables (``{dim: n}``); without it the variables are
    lazily loaded numpy arrays. Use as a context manager to close the file.
    """
    import xarray as xr

    chunks = dict(chunks) if chunks else None
    if is_zarr(path):
        require_zarr(path)
        return xr.open_zarr(path, chunks=chunks, decode_times=decode_times)
    return xr.open_dataset(path, chunks=chunks, decode_times=decode_times)


def write_dataset(ds, path: str | Path) -> None:
    """Write ``ds`` to NetCDF, or to zarr when ``path`` ends in ``.zarr``, atomically (replacing ``path``).

    Dask-backed variables are computed chunk by chunk while they are written, into a temporary
    sibling of ``path`` that replaces it only once complete (:func:`xkron.io.atomic.atomic_write`).
    """
    ds = ds.copy()
    for name, variable in ds.variables.items():
        # Keep what describes the values (units, calendar); storage settings of the source
        # file (chunk sizes, compression, dtype of packed data) do not fit a new grid or format.
        variable.encoding = {k: v for k, v in variable.encoding.items() if k in ("units", "calendar")}
        if name in ds.dims:
            variable.encoding["_FillValue"] = None  # CF: coordinate variables have no missing values
        if _is_time(variable):
            variable.encoding["dtype"] = "float64"  # as the library writes them: not int64 ("hours since")
    with warnings.catch_warnings():
        # New times between those of the training units (hours on a "days since" axis) are
        # written as floating-point numbers of those units, which is what CF expects.
        warnings.filterwarnings("ignore", message="Times can't be serialized faithfully", category=UserWarning)
        with atomic_write(path) as tmp:
            if is_zarr(path):
                require_zarr(path, "writing")
                ds.to_zarr(tmp, mode="w")
            else:
                ds.to_netcdf(tmp)


def _is_time(variable) -> bool:
    """Whether ``variable`` holds datetimes (numpy or cftime), which the encoding turns into numbers of units."""
    if variable.dtype.kind == "M":
        return True
    if variable.dtype.kind != "O" or variable.size == 0 or variable.chunks is not None:  # never compute data
        return False
    import cftime

    return isinstance(np.ravel(variable.values)[0], cftime.datetime)


@contextlib.contextmanager
def dask_client(scheduler: str | None = None, workers: int | None = None) -> Iterator[Any]:
    """A ``distributed.Client`` for the duration of a command, closed on exit (also on error).

    ``scheduler``: connect to a running scheduler at that address. ``workers``: start a
    ``LocalCluster(n_workers=workers, threads_per_worker=1)`` and close it afterwards.
    Neither: yield ``None`` (dask's local threaded scheduler).
    """
    if scheduler is not None and workers is not None:
        raise JobInputError("give --scheduler or --workers, not both", "--scheduler")
    if scheduler is None and workers is None:
        yield None
        return
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            client = Client(scheduler)
        except (OSError, TimeoutError) as err:
            raise JobInputError(f"cannot connect to a dask scheduler at {scheduler!r}: {err}", "--scheduler") from err
        with client:
            yield client
        return
    with (
        LocalCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        yield client
