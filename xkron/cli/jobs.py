"""Command-line jobs on files: ``xkron fit``, ``xkron predict`` and ``xkron batch``.

``xkron fit DATA.nc --var NAME --kernel DIMS=KERNEL ... --out FIT.nc`` fits one variable of a
NetCDF file or zarr store and writes the fit (:meth:`xkron.KronFit.to_netcdf`);
``xkron predict FIT.nc --out PRED.nc`` predicts from a saved fit, on the training grid or on
new grids, and writes NetCDF or zarr with CF attributes; ``xkron batch`` fits many independent
GPs, one per slice along ``--batch-dim``.

As in :mod:`xkron.cli.app`, the work is done by library functions that return results and raise
(:func:`run_fit`, :func:`run_predict`, :func:`run_batch`; bad inputs raise
:class:`JobInputError`, naming the option, before any fitting), and the click commands only
parse, convert errors and print. ``--scheduler``/``--workers`` start a dask distributed
client for the duration of a command (:func:`dask_client`); the library functions never
create one. Heavy imports happen inside functions.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import re
import shlex
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import click

from xkron.cli.app import describe_fit, fit_noting_convergence, main
from xkron.cli.paths import OVERWRITE_OPTION, check_output
from xkron.cli.select import SELECT_OPTIONS, check_kernel_dim_sizes, missing_kernel_message, select_dims
from xkron.io.atomic import atomic_write
from xkron.spec.likelihoods import resolve_likelihood

__all__ = [
    "LIKELIHOOD_NAMES",
    "BatchJobResult",
    "FitJobResult",
    "GridSpec",
    "JobInputError",
    "KernelSpec",
    "PredictJobResult",
    "batch",
    "dask_client",
    "fit",
    "format_batch",
    "format_fit",
    "format_predict",
    "grid_values",
    "is_zarr",
    "open_input",
    "parse_chunks",
    "parse_grid",
    "parse_kernel",
    "parse_quantiles",
    "predict",
    "run_batch",
    "run_fit",
    "run_predict",
    "write_dataset",
]

LIKELIHOOD_NAMES = ("gaussian", "student_t", "poisson", "negative_binomial", "bernoulli", "binomial", "gamma")
METHODS = ("map", "nuts", "advi")
SOLVERS = ("auto", "kronecker", "dense", "iterative")
ERRORS = ("raise", "record")
_EPOCH = "1970-01-01"
_ISO_DATE = re.compile(r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d*)?)?)?\s*$")


class JobInputError(ValueError):
    """A bad command-line input, found before any fitting.

    ``option`` names the option at fault (``"--kernel"``, ...); the commands turn the error
    into a ``click.BadParameter`` (exit code 2).
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


# --------------------------------------------------------------------------------------
# Parsing of option values (no xarray needed)
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KernelSpec:
    """One ``--kernel DIMS=KERNEL``: the dims of a factor and its kernel."""

    dims: tuple[str, ...]
    kernel: Any
    """A :class:`xkron.Kernel` instance."""
    text: str
    """The option value as given (for messages)."""

    @property
    def key(self) -> str | tuple[str, ...]:
        """The key of :func:`xkron.fit`'s ``kernels`` mapping."""
        return self.dims[0] if len(self.dims) == 1 else self.dims


def parse_kernel(text: str) -> KernelSpec:
    """Parse ``DIMS=KERNEL``: ``time=Matern32``, ``latitude,longitude=ExpQuad(ls=2)``.

    ``DIMS`` is one dim or several separated by commas (one factor over their Cartesian
    product). ``KERNEL`` is a kernel name (case-insensitive: ``ExpQuad``, ``Matern12``,
    ``Matern32``, ``Matern52``, ``RatQuad``, ``Cosine``, ``Periodic``, ``Independent``), optionally with
    hyperparameters fixed to literal values: ``Periodic(period=365.25)``,
    ``ExpQuad(ls=[5, 10])`` (one per dim, in the order given). Unset hyperparameters get
    xkron's default priors.

    Examples
    --------
    >>> spec = parse_kernel("latitude,longitude=expquad(ls=2)")
    >>> spec.key, spec.kernel
    (('latitude', 'longitude'), ExpQuad(ls=2))
    >>> parse_kernel("time=Matern33")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xkron.cli.jobs.JobInputError: unknown kernel 'Matern33' in 'time=Matern33'; kernels: ExpQuad, ...
    """
    dims_text, sep, kernel_text = text.partition("=")
    if not sep or not dims_text.strip() or not kernel_text.strip():
        raise JobInputError(
            f"{text!r} is not DIMS=KERNEL: give e.g. time=Matern32 or latitude,longitude=ExpQuad(ls=2)", "--kernel"
        )
    dims = tuple(d.strip() for d in dims_text.split(","))
    if not all(dims):
        raise JobInputError(
            f"{text!r} has an empty dim name in {dims_text!r}; separate dims by single commas", "--kernel"
        )
    if len(set(dims)) != len(dims):
        raise JobInputError(f"{text!r} names a dim twice in {dims_text!r}", "--kernel")
    return KernelSpec(dims, _make_kernel(kernel_text.strip(), text), text)


def _make_kernel(spec: str, text: str):
    from xkron.spec.kernels import KERNELS

    names = ", ".join(KERNELS)
    try:
        node = ast.parse(spec, mode="eval").body
    except SyntaxError:
        node = None
    if isinstance(node, ast.Name):
        name, call = node.id, None
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        name, call = node.func.id, node
    else:
        raise JobInputError(
            f"kernel {spec!r} (in {text!r}) is not NAME or NAME(param=value, ...), e.g. Matern32 or "
            f"Periodic(period=365.25); kernels: {names}",
            "--kernel",
        )
    cls = {k.lower(): v for k, v in KERNELS.items()}.get(name.lower())
    if cls is None:
        raise JobInputError(f"unknown kernel {name!r} in {text!r}; kernels: {names}", "--kernel")
    allowed = [f.name for f in fields(cls)]
    kwargs: dict[str, Any] = {}
    if call is not None:
        if call.args or any(kw.arg is None for kw in call.keywords):
            raise JobInputError(
                f"give {cls.__name__}'s hyperparameters by name in {text!r}, e.g. {cls.__name__}(ls=2); "
                f"its hyperparameters: {', '.join(allowed)}",
                "--kernel",
            )
        for kw in call.keywords:
            if kw.arg not in allowed:
                raise JobInputError(
                    f"{cls.__name__} has no hyperparameter {kw.arg!r} (in {text!r}); its hyperparameters: "
                    f"{', '.join(allowed)}",
                    "--kernel",
                )
            try:
                kwargs[kw.arg] = ast.literal_eval(kw.value)
            except (ValueError, TypeError, SyntaxError):
                raise JobInputError(
                    f"{kw.arg}={ast.unparse(kw.value)} in {text!r} is not a literal value: give a number, a list of "
                    "numbers (one per dim) or None (default prior)",
                    "--kernel",
                ) from None
    return cls(**kwargs)


def parse_chunks(items: Sequence[str]) -> dict[str, int]:
    """Parse repeated ``dim=n`` into ``{dim: n}`` (``n`` a positive integer).

    Examples
    --------
    >>> parse_chunks(["time=10", "latitude=5"])
    {'time': 10, 'latitude': 5}
    """
    chunks: dict[str, int] = {}
    for item in items:
        dim, sep, size = item.partition("=")
        dim = dim.strip()
        try:
            n = int(size)
        except ValueError:
            n = 0
        if not sep or not dim or n < 1:
            raise JobInputError(f"{item!r} is not dim=n with a positive integer n, e.g. time=10", "--chunks")
        if dim in chunks:
            raise JobInputError(f"dim {dim!r} is chunked twice", "--chunks")
        chunks[dim] = n
    return chunks


@dataclass(frozen=True)
class GridSpec:
    """One ``--grid dim=start:stop:num``: ``num`` evenly spaced points from start to stop."""

    dim: str
    start: str
    stop: str
    num: int


def parse_grid(text: str) -> GridSpec:
    """Parse ``dim=start:stop:num``; start and stop are numbers or (time dims) ISO dates.

    Examples
    --------
    >>> parse_grid("latitude=10:30:41")
    GridSpec(dim='latitude', start='10', stop='30', num=41)
    >>> parse_grid("time=2000-01-01:2000-12-31T12:00:12").stop
    '2000-12-31T12:00'
    """
    dim, sep, rest = text.partition("=")
    usage = "e.g. latitude=10:30:41 or time=2000-01-01:2010-01-01:11"
    # Split from the right: ISO times (2000-01-01T12:00) contain colons themselves.
    parts = rest.rsplit(":", 1)
    num_text = parts[1] if len(parts) == 2 else ""
    span = _split_span(parts[0])
    try:
        num = int(num_text)
    except ValueError:
        num = 0
    if not sep or not dim.strip() or span is None or num < 1:
        raise JobInputError(f"{text!r} is not dim=start:stop:num with num a positive integer, {usage}", "--grid")
    return GridSpec(dim.strip(), span[0], span[1], num)


def _split_span(text: str) -> tuple[str, str] | None:
    """``"a:b"`` into ``("a", "b")`` where a and b may be ISO times with colons of their own."""
    candidates = []
    for i, char in enumerate(text):
        if char != ":":
            continue
        start, stop = text[:i].strip(), text[i + 1 :].strip()
        if start and stop and _plain_value(start) and _plain_value(stop):
            candidates.append((start, stop))
    return candidates[0] if len(candidates) == 1 else None


def _plain_value(text: str) -> bool:
    """A number or an ISO date/time (for splitting ``start:stop``)."""
    try:
        float(text)
        return True
    except ValueError:
        return bool(_ISO_DATE.match(text))


def parse_quantiles(text: str) -> tuple[float, ...]:
    """Parse ``0.05,0.95`` into probabilities strictly between 0 and 1.

    Examples
    --------
    >>> parse_quantiles("0.05, 0.5,0.95")
    (0.05, 0.5, 0.95)
    """
    try:
        values = tuple(float(q) for q in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 < q < 1 for q in values):
        raise JobInputError(
            f"{text!r} is not a comma-separated list of probabilities in (0, 1), e.g. 0.05,0.95", "--quantiles"
        )
    return values


# --------------------------------------------------------------------------------------
# Files and the dask client
# --------------------------------------------------------------------------------------


def is_zarr(path: str | Path) -> bool:
    """Whether ``path`` is (or will be written as) a zarr store: suffix ``.zarr`` or a directory."""
    path = Path(path)
    return path.suffix.lower() == ".zarr" or path.is_dir()


def open_input(path: str | Path, chunks: Mapping[str, int] | None = None, decode_times=True):
    """Open a NetCDF file (``xarray.open_dataset``) or zarr store (``xarray.open_zarr``).

    ``chunks`` gives dask-backed variables (``{dim: n}``); without it the variables are
    lazily loaded numpy arrays. Use as a context manager to close the file.
    """
    import xarray as xr

    chunks = dict(chunks) if chunks else None
    if is_zarr(path):
        try:
            return xr.open_zarr(path, chunks=chunks, decode_times=decode_times)
        except ImportError as err:
            raise OSError(f"reading {path} needs the zarr package (pip install zarr): {err}") from err
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
    with warnings.catch_warnings():
        # New times between those of the training units (hours on a "days since" axis) are
        # written as floating-point numbers of those units, which is what CF expects.
        warnings.filterwarnings("ignore", message="Times can't be serialized faithfully", category=UserWarning)
        with atomic_write(path) as tmp:
            if is_zarr(path):
                try:
                    ds.to_zarr(tmp, mode="w")
                except ImportError as err:
                    raise OSError(f"writing {path} needs the zarr package (pip install zarr): {err}") from err
            else:
                ds.to_netcdf(tmp)


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


# --------------------------------------------------------------------------------------
# Checks of the data against the options (before any fitting)
# --------------------------------------------------------------------------------------


def _select_var(ds, var: str, option: str = "--var", path: Any = None):
    if var not in ds.data_vars:
        names = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        where = f" in {path}" if path is not None else ""
        raise JobInputError(f"no variable {var!r}{where}; its data variables: {names}", option)
    return ds[var]


def _check_chunk_dims(chunks: Mapping[str, int], dims: Sequence[str], what: str) -> None:
    unknown = [d for d in chunks if d not in dims]
    if unknown:
        raise JobInputError(f"cannot chunk {unknown}: not dims of {what} (dims: {', '.join(dims)})", "--chunks")


def _check_kernels(da, kernels: Sequence[KernelSpec], batch_dims: Sequence[str] = ()) -> dict:
    """The ``kernels`` mapping of :func:`xkron.fit`, checked against the data's dims."""
    data_dims = [str(d) for d in da.dims]
    if not kernels:
        example = " ".join(f"--kernel {d}=Matern52" for d in data_dims if d not in batch_dims)
        raise JobInputError(f"give one --kernel per dim (or group of dims), e.g. {example}", "--kernel")
    for dim in batch_dims:
        if dim not in data_dims:
            raise JobInputError(
                f"{dim!r} is not a dim of {da.name!r} (dims: {', '.join(data_dims)})",
                "--batch-dim",
            )
    mapped: dict[str, str] = {}
    for spec in kernels:
        for dim in spec.dims:
            if dim not in data_dims:
                raise JobInputError(
                    f"{dim!r} (in {spec.text!r}) is not a dim of {da.name!r}; its dims: {', '.join(data_dims)}",
                    "--kernel",
                )
            if dim in batch_dims:
                raise JobInputError(
                    f"{dim!r} (in {spec.text!r}) is a --batch-dim: batch dims index separate fits and take no kernel",
                    "--kernel",
                )
            if dim in mapped:
                raise JobInputError(f"dim {dim!r} has two kernels: {mapped[dim]!r} and {spec.text!r}", "--kernel")
            mapped[dim] = spec.text
        check_kernel_dim_sizes(da, spec.dims, spec.text)
    missing = [d for d in data_dims if d not in mapped and d not in batch_dims]
    if missing:
        raise JobInputError(missing_kernel_message(da, missing, batch=bool(batch_dims)), "--kernel")
    return {spec.key: spec.kernel for spec in kernels}


def _check_cell_var(ds, name: str, da, option: str):
    """A variable on some or all of the data's dims (``--mask-var``, ``--noise-sd-var``)."""
    var = _select_var(ds, name, option)
    extra = [d for d in var.dims if d not in da.dims]
    if extra:
        raise JobInputError(
            f"{name!r} has dims {extra} that {da.name!r} does not have (its dims: {', '.join(map(str, da.dims))})",
            option,
        )
    return var


def _check_likelihood_data(likelihood: str, exposure_var: str | None, trials) -> str | None:
    """Which per-cell likelihood datum the options give (``exposure``, ``trials`` or none)."""
    fields = resolve_likelihood(likelihood).data_fields
    if exposure_var is not None and "exposure" not in fields:
        raise JobInputError(
            f"--exposure-var applies to the poisson and negative_binomial likelihoods, not {likelihood}",
            "--exposure-var",
        )
    if trials is not None and "trials" not in fields:
        raise JobInputError(f"--trials applies to the binomial likelihood, not {likelihood}", "--trials")
    if "trials" in fields and trials is None:
        raise JobInputError(
            "the binomial likelihood needs --trials: a whole number for every cell, or a variable of the input file",
            "--trials",
        )
    if exposure_var is not None:
        return "exposure"
    return "trials" if trials is not None else None


def _as_mask(var):
    """A stored mask (bool, or integers with 1/0, NaN = not observed) as booleans."""
    if var.dtype == bool:
        return var
    return var.fillna(0) != 0


# --------------------------------------------------------------------------------------
# fit and batch
# --------------------------------------------------------------------------------------


@dataclass
class FitJobResult:
    """What :func:`run_fit` made."""

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
    """What :func:`run_batch` made (``fit`` is the batch fit object)."""

    batch_dims: tuple[str, ...] = ()


def _fit_kwargs(likelihood, method, restarts, seed, solver) -> dict[str, Any]:
    return {
        "likelihood": likelihood,
        "method": method,
        "restarts": restarts,
        "random_seed": seed,
        "solver": solver,
        "progressbar": False,
    }


def _load_and_fit(
    data: str | Path,
    var: str,
    kernels: Sequence[KernelSpec],
    out: Path,
    *,
    batch: Mapping[str, Any] | None,
    likelihood: str = "gaussian",
    mask_var: str | None = None,
    noise_sd_var: str | None = None,
    exposure_var: str | None = None,
    trials: int | str | None = None,
    method: str | None = None,
    restarts: int = 2,
    seed: int | None = None,
    solver: str = "auto",
    chunks: Mapping[str, int] | None = None,
    overwrite: bool = False,
    sel: Mapping[str, str] | None = None,
    squeeze: bool = False,
):
    import xkron

    out = check_output(out, [data], overwrite=overwrite, zarr_ok=False)
    chunks = dict(chunks or {})
    named = [d for spec in kernels for d in spec.dims] + list((batch or {}).get("batch_dims", ()))
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    with open_input(data) as probe:
        _select_var(probe, var, path=data)
        probe = select_dims(probe, var, sel or {}, squeeze, named)
        da = probe[var]
        _check_chunk_dims(chunks, [str(d) for d in probe.dims], str(data))
        kernel_map = _check_kernels(da, kernels, tuple((batch or {}).get("batch_dims", ())))
        data_field = _check_likelihood_data(likelihood, exposure_var, trials)
        trials_var = trials if isinstance(trials, str) else None
        cell_vars = {"--mask-var": mask_var, "--noise-sd-var": noise_sd_var, "--exposure-var": exposure_var,
                     "--trials": trials_var}  # fmt: skip
        for option, name in cell_vars.items():
            if name is not None:
                _check_cell_var(probe, name, da, option)

    # Each fit needs its data in memory: read them once (in parallel by chunk, on the client
    # if there is one) rather than at every use inside a fit, or inside each batch task.
    with open_input(data, chunks) as ds:
        ds = select_dims(ds, var, sel or {}, squeeze, named)
        da = ds[var].compute()
        extra = {
            "mask": None if mask_var is None else _as_mask(ds[mask_var]).compute(),
            "noise_sd": None if noise_sd_var is None else ds[noise_sd_var].compute(),
        }
        per_cell = {"exposure": exposure_var, "trials": trials_var}.get(data_field)
        cell_data = ds[per_cell].compute() if per_cell is not None else trials
    timings["load"] = time.perf_counter() - tick
    if data_field is not None:
        likelihood = replace(resolve_likelihood(likelihood), **{data_field: cell_data})
    kwargs = {**_fit_kwargs(likelihood, method, restarts, seed, solver), **(batch or {})}
    kwargs.update({k: v for k, v in extra.items() if v is not None})
    tick = time.perf_counter()
    result, fit_warnings = fit_noting_convergence(lambda: xkron.fit(da, kernel_map, **kwargs))
    timings["fit"] = time.perf_counter() - tick
    tick = time.perf_counter()
    result.to_netcdf(out)
    timings["write"] = time.perf_counter() - tick
    return result, out, timings, fit_warnings


def run_fit(
    data: str | Path,
    var: str,
    kernels: Sequence[KernelSpec],
    out: str | Path,
    **options,
) -> FitJobResult:
    """Fit ``var`` of a NetCDF file or zarr store and write the fit to ``out`` (``xkron fit``).

    Parameters
    ----------
    data : path
        NetCDF file, or zarr store (suffix ``.zarr`` or a directory).
    var : str
        The data variable to fit.
    kernels : sequence of KernelSpec
        From :func:`parse_kernel`; together they must cover every dim of ``var`` once.
    out : path
        The fit, written with :meth:`xkron.KronFit.to_netcdf` (NetCDF).
    **options
        Keywords, each optional (defaults as in :func:`xkron.fit` and the CLI):
    likelihood, method, restarts, solver
        As in :func:`xkron.fit`.
    mask_var, noise_sd_var : str, optional
        Variables of the same file passed as ``mask=`` (nonzero = observed) and ``noise_sd=``.
    exposure_var : str, optional
        A variable of the same file with each cell's exposure (``poisson``,
        ``negative_binomial``): ``xkron.Poisson(exposure=...)``.
    trials : int or str, optional
        ``binomial`` (required there): trials per cell, one whole number or a variable of the
        same file: ``xkron.Binomial(trials=...)``.
    seed : int, optional
        ``random_seed`` of :func:`xkron.fit`.
    chunks : mapping, optional
        ``{dim: n}``: read the input as dask arrays in these chunks.
    overwrite : bool
        Replace an existing ``out`` (never one of the inputs); default: refuse.
    sel : mapping, optional
        ``{dim: value text}``: keep one point of these dims (:func:`xkron.cli.select.select_dims`).
    squeeze : bool
        Drop the data's size-1 dims that no kernel or batch dim names.

    Raises
    ------
    JobInputError
        Unknown variable or dim, kernels that do not cover the dims, an output that exists
        (without ``overwrite``), is an input or cannot be written: before any fitting.
    ValueError, TypeError
        From :func:`xkron.fit` (data it cannot fit).
    """
    result, out, timings, fit_warnings = _load_and_fit(data, var, kernels, Path(out), batch=None, **options)
    return FitJobResult(result, out, timings, fit_warnings)


def run_batch(
    data: str | Path,
    var: str,
    kernels: Sequence[KernelSpec],
    out: str | Path,
    batch_dims: Sequence[str],
    *,
    shared: bool = False,
    errors: str = "raise",
    **options,
) -> BatchJobResult:
    """Independent fits, one per slice of ``var`` along ``batch_dims`` (``xkron batch``).

    Calls ``xkron.fit(da, kernels, batch_dims=..., shared=..., errors=..., ...)`` and writes
    the batch fit with its ``to_netcdf``. The input is read into memory first (by chunk with
    ``chunks``); the slices then run as tasks on the active dask client, if there is one
    (:mod:`xkron.inference.batch`). With ``shared=True`` the result is one :class:`xkron.KronFit` whose
    hyperparameters all slices share. ``options`` (``likelihood``, ``mask_var``, ``method``, ...)
    and errors as in :func:`run_fit`.
    """
    if not batch_dims:
        raise JobInputError("give at least one --batch-dim", "--batch-dim")
    if len(set(batch_dims)) != len(batch_dims):
        raise JobInputError(f"a batch dim is given twice: {list(batch_dims)}", "--batch-dim")
    if errors not in ERRORS:
        raise JobInputError(f"errors must be one of {ERRORS}, got {errors!r}", "--errors")
    if shared and errors != "raise":
        raise JobInputError("--errors record applies to independent slices; --shared makes one fit", "--errors")
    batch = {"batch_dims": list(batch_dims), "shared": shared, "errors": errors}
    result, out, timings, fit_warnings = _load_and_fit(data, var, kernels, Path(out), batch=batch, **options)
    return BatchJobResult(result, out, timings, fit_warnings, tuple(batch_dims))


def format_fit(result: FitJobResult) -> str:
    """The printed summary of ``xkron fit``: :func:`xkron.cli.app.describe_fit` of the written file."""
    t = result.timings
    return "\n".join(
        [
            describe_fit(result.out),
            *(f"WARNING: {w}" for w in result.warnings),
            "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()),
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
        *(f"  {where}: {message}" for where, message in failures[:10]),
    ]
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more")
    lines.append("parameters (median [min, max] over the batch):")
    width = max((len(str(k)) for k in params.data_vars), default=0)
    for name, v in params.items():
        values = np.asarray(v.values, dtype=float)
        units = v.attrs.get("units", "")
        if not np.isfinite(values).any():
            lines.append(f"  {name!s:<{width}}  all NaN")
            continue
        lo, med, hi = np.nanmin(values), np.nanmedian(values), np.nanmax(values)
        lines.append(f"  {name!s:<{width}}  {med:.4g} [{lo:.4g}, {hi:.4g}] {units}".rstrip())
    if unconverged:
        lines.append(f"WARNING: the MAP optimizer did not converge in {unconverged} of {n_slices} slices")
    lines += [*(f"WARNING: {w}" for w in result.warnings)]
    lines.append("timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in result.timings.items()))
    lines.append(f"wrote {result.out}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------
# predict
# --------------------------------------------------------------------------------------


@dataclass
class PredictJobResult:
    """What :func:`run_predict` made."""

    prediction: Any
    """The prediction (``xarray.Dataset``) as written (lazy when ``chunks`` were given)."""
    out: Path
    timings: dict[str, float]
    """Seconds: ``open``, ``predict`` (building the graph only when lazy), ``write``."""


def grid_values(encoding, spec: GridSpec):
    """The ``num`` coordinate values of ``--grid dim=start:stop:num`` for a dim's encoding.

    Numeric dims take numbers. Time dims take ISO dates (``2000-01-01``,
    ``2000-01-01T06:00``) or numbers, read as days since 1970-01-01 (the units of time
    lengthscales); datetime64 dims get ``datetime64[ns]`` values, cftime dims dates of the
    fit's calendar.

    Examples
    --------
    >>> from xkron.spec.coords import CoordEncoding
    >>> grid_values(CoordEncoding("numeric"), GridSpec("x", "0", "1", 3)).tolist()
    [0.0, 0.5, 1.0]
    >>> enc = CoordEncoding("datetime", "days since 1970-01-01", "proleptic_gregorian")
    >>> grid_values(enc, GridSpec("time", "2000-01-01", "2000-01-03", 3)).astype(str).tolist()
    ['2000-01-01T00:00:00.000000000', '2000-01-02T00:00:00.000000000', '2000-01-03T00:00:00.000000000']
    """
    import numpy as np

    text = f"{spec.dim}={spec.start}:{spec.stop}:{spec.num}"
    if not encoding.is_time:
        try:
            return np.linspace(float(spec.start), float(spec.stop), spec.num)
        except ValueError:
            units = f" (in {encoding.units})" if encoding.units else ""
            raise JobInputError(
                f"{text!r}: {spec.dim!r} is a numeric dim, so start and stop must be numbers{units}", "--grid"
            ) from None
    days = [_days(v, encoding, text) for v in (spec.start, spec.stop)]
    numbers = np.linspace(days[0], days[1], spec.num)
    if encoding.kind == "datetime":
        ns = np.round(numbers * 86400e9).astype(np.int64)
        return np.datetime64(_EPOCH, "ns") + ns.astype("timedelta64[ns]")
    import cftime

    return np.asarray(
        cftime.num2date(numbers, f"days since {_EPOCH}", calendar=encoding.calendar, only_use_cftime_datetimes=True)
    )


def _days(value: str, encoding, text: str) -> float:
    """Days since 1970-01-01 of a number or an ISO date in the encoding's calendar."""
    import numpy as np

    try:
        return float(value)
    except ValueError:
        pass
    match = _ISO_DATE.match(value)
    if match is None:
        raise JobInputError(
            f"{text!r}: {value!r} is neither a number (days since {_EPOCH}) nor an ISO date such as 2000-01-01 or "
            "2000-01-01T12:00",
            "--grid",
        )
    try:
        if encoding.kind == "datetime":
            return float((np.datetime64(value.strip(), "ns") - np.datetime64(_EPOCH, "ns")) / np.timedelta64(1, "D"))
        import cftime

        parts = [int(p) if p is not None else 0 for p in match.groups()]
        date = cftime.datetime(*parts, calendar=encoding.calendar)
        return float(cftime.date2num(date, f"days since {_EPOCH}", calendar=encoding.calendar))
    except ValueError as err:
        raise JobInputError(
            f"{text!r}: {value!r} is not a date of the {encoding.calendar} calendar ({err})", "--grid"
        ) from None


def _request(fit, grids: Sequence[GridSpec], coords_from: str | Path | None) -> dict:
    """New coordinates by dim: from ``--coords-from``, then ``--grid`` (which wins)."""
    import xarray as xr

    request: dict[str, Any] = {}
    if coords_from is not None:
        use_cftime = any(e.kind == "cftime" for e in fit.encodings.values())
        decode = xr.coders.CFDatetimeCoder(use_cftime=use_cftime)
        with open_input(coords_from, decode_times=decode) as other:
            request = {d: other[d].reset_coords(drop=True).load() for d in fit.dims if d in other.variables}
        if not request:
            raise JobInputError(
                f"{coords_from} has none of the fit's coordinates {list(fit.dims)}: nothing to predict at",
                "--coords-from",
            )
    seen = set()
    for spec in grids:
        if spec.dim not in fit.dims:
            raise JobInputError(
                f"{spec.dim!r} is not a dim of the fit; its dims: {', '.join(fit.dims)}",
                "--grid",
            )
        if spec.dim in seen:
            raise JobInputError(f"dim {spec.dim!r} has two --grid options", "--grid")
        seen.add(spec.dim)
        values = grid_values(fit.encodings[spec.dim], spec)
        request[spec.dim] = xr.DataArray(values, dims=(spec.dim,), coords={spec.dim: values})
    return request


def _chunked_request(fit, request: dict, chunks: Mapping[str, int]) -> dict:
    """Dask-backed coordinate arrays: the prediction is then lazy, chunked alike."""
    import numpy as np
    import xarray as xr

    arrays = {}
    for dim in fit.dims:
        if dim in request:
            arrays[dim] = request[dim]
        elif dim in fit.data.coords:
            arrays[dim] = fit.data[dim].reset_coords(drop=True)
        else:
            arrays[dim] = xr.DataArray(np.arange(fit.data.sizes[dim]), dims=(dim,))
    out_dims = list(dict.fromkeys(d for a in arrays.values() for d in a.dims))
    _check_chunk_dims(chunks, [str(d) for d in out_dims], "the prediction")
    chunked = dict(request)
    for dim, arr in arrays.items():
        wanted = {d: chunks[d] for d in arr.dims if d in chunks}
        if wanted:
            # An index coordinate cannot be chunked: chunk a plain copy of its values, labelled by it.
            chunked[dim] = xr.DataArray(arr.variable.to_base_variable().chunk(wanted), coords=arr.coords)
    return chunked


def run_predict(
    fit_path: str | Path,
    out: str | Path,
    *,
    grids: Sequence[GridSpec] = (),
    coords_from: str | Path | None = None,
    quantiles: Sequence[float] = (),
    noise: bool = False,
    mask: bool = False,
    chunks: Mapping[str, int] | None = None,
    command: str = "xkron predict",
    overwrite: bool = False,
) -> PredictJobResult:
    """Predict from a saved fit and write NetCDF or zarr (``xkron predict``).

    Parameters
    ----------
    fit_path : path
        A fit written by :meth:`xkron.KronFit.to_netcdf` (``xkron fit``), or a batch fit
        (``xkron batch``: every slice is predicted, on the batch dims).
    out : path
        NetCDF file, or zarr store when it ends in ``.zarr``.
    grids : sequence of GridSpec
        New 1-D grids by dim (:func:`parse_grid`); other dims keep the training coordinates.
    coords_from : path, optional
        Take the coordinates of the fit's dims that this NetCDF/zarr file has (``--grid``
        overrides them dim by dim). Coordinates on a shared dim give scattered points.
    quantiles, noise : see :meth:`xkron.KronFit.predict`.
    mask : bool
        Re-apply the fit's ``mask=`` (NaN where it is False); training grid only.
    chunks : mapping, optional
        ``{dim: n}``: chunk the coordinate arrays along these output dims, so that the
        prediction is a lazy dask computation, written chunk by chunk.
    command : str
        The command line, recorded in the ``history`` attribute.
    overwrite : bool
        Replace an existing ``out`` (never the fit or ``coords_from``); default: refuse.

    Raises
    ------
    JobInputError
        Bad ``grids``, ``coords_from``, ``chunks``, ``mask``, ``noise`` or output path (checked
        before the fit is read).
    """
    import xkron

    out = check_output(out, [fit_path, coords_from], overwrite=overwrite, zarr_ok=True)
    timings: dict[str, float] = {}
    tick = time.perf_counter()
    try:
        fitted = xkron.open_fit(fit_path)
    except (KeyError, ValueError, OSError) as err:
        raise JobInputError(str(err), "FIT.nc") from err
    timings["open"] = time.perf_counter() - tick
    # A batch fit (xkron batch) predicts every slice alike: check the request on one of them.
    fit = next((f for f in fitted.fits.values() if f is not None), None) if hasattr(fitted, "fits") else fitted
    if fit is None:
        raise JobInputError(f"{fit_path} is a batch fit whose every slice failed: nothing to predict", "FIT.nc")
    request = _request(fit, grids, coords_from)
    if mask:
        if fit.mask is None:
            raise JobInputError(f"--mask re-applies the fit's mask, but {fit_path} was fitted without one", "--mask")
        if request:
            raise JobInputError(
                "--mask re-applies the fit's mask, which lies on the training grid: it cannot be combined with "
                f"new coordinates for {sorted(request)} (--grid, --coords-from)",
                "--mask",
            )
    if noise and fit.spec.likelihood.name != "gaussian":
        raise JobInputError(
            f"--noise adds Gaussian observation noise; this fit's likelihood is {fit.spec.likelihood.name}",
            "--noise",
        )
    if chunks:
        request = _chunked_request(fit, request, chunks)
    tick = time.perf_counter()
    pred = fitted.predict(request, noise=noise, quantiles=tuple(quantiles), mask=True if mask else None)
    timings["predict"] = time.perf_counter() - tick
    _add_provenance(pred, fit, fit_path, command)
    tick = time.perf_counter()
    write_dataset(pred, out)
    timings["write"] = time.perf_counter() - tick
    return PredictJobResult(pred, out, timings)


def _add_provenance(pred, fit, fit_path, command: str) -> None:
    """CF global attributes ``source`` and ``history`` (newest line first)."""
    import xkron

    kernels = " * ".join(f"{f.kernel.name}({', '.join(f.dims)})" for f in fit.spec.factors)
    name = fit.data.name or "data"
    stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    history = f"{stamp}: {command}"
    if fit.data.attrs.get("history"):
        history += "\n" + str(fit.data.attrs["history"])
    pred.attrs.update(
        source=(
            f"xkron {xkron.__version__}: Kronecker Gaussian process ({fit.method} fit, "
            f"{fit.spec.likelihood.name} likelihood, amplitude^2 * {kernels}) of {name!s} from {fit_path}"
        ),
        history=history,
    )


def format_predict(result: PredictJobResult) -> str:
    """The printed summary of ``xkron predict``."""
    pred = result.prediction
    shape = " × ".join(f"{d}: {n}" for d, n in pred["mean"].sizes.items())
    variables = ", ".join(str(v) for v in pred.data_vars)
    t = result.timings
    return "\n".join(
        [
            f"prediction: {variables} on {shape}",
            "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in t.items()),
            f"wrote {result.out}",
        ]
    )


# --------------------------------------------------------------------------------------
# click commands
# --------------------------------------------------------------------------------------


class _RecordingCommand(click.Command):
    """A command that keeps its raw arguments (for the ``history`` attribute)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["xkron.args"] = list(args)
        return super().parse_args(ctx, args)


def _command_line(ctx: click.Context) -> str:
    return shlex.join(["xkron", ctx.info_name or ctx.command.name or "", *ctx.meta.get("xkron.args", [])])


def _to_click(err: Exception, ctx: click.Context) -> click.ClickException:
    if isinstance(err, JobInputError):
        if err.option is None:
            return click.UsageError(str(err), ctx=ctx)
        return click.BadParameter(str(err), ctx=ctx, param_hint=f"'{err.option}'")
    return click.ClickException(str(err))


def _kernel_callback(ctx, param, values):
    try:
        return [parse_kernel(v) for v in values]
    except JobInputError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


def _chunks_callback(ctx, param, values):
    try:
        return parse_chunks(values)
    except JobInputError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


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


def _grid_callback(ctx, param, values):
    try:
        return [parse_grid(v) for v in values]
    except JobInputError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


def _quantiles_callback(ctx, param, value):
    if value is None:
        return ()
    try:
        return parse_quantiles(value)
    except JobInputError as err:
        raise click.BadParameter(str(err), ctx=ctx, param=param) from None


_INPUT = click.argument("data", metavar="DATA.nc|DATA.zarr", type=click.Path(exists=True, path_type=Path))
_CHUNKS_IN = click.option(
    "--chunks",
    "chunks",
    multiple=True,
    metavar="DIM=N",
    callback=_chunks_callback,
    help="Read the input lazily with dask in chunks of N along DIM (repeatable), e.g. --chunks time=100; "
    "with --scheduler or --workers the chunks are read in parallel on the cluster.",
)


_SCHEDULER = click.option(
    "--scheduler",
    metavar="ADDRESS",
    default=None,
    help="Run dask work (reading chunks, lazy predictions) on the dask.distributed scheduler at "
    "ADDRESS, e.g. tcp://10.0.0.1:8786. Not with --workers.",
)
_WORKERS = click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Start a local dask.distributed cluster of N single-threaded worker processes for the "
    "duration of the command. Not with --scheduler. Without either, dask runs in local threads.",
)


def _data_options(function):
    """Options shared by ``fit`` and ``batch``."""
    options = [
        click.option("--var", "var", required=True, metavar="NAME", help="The data variable of the input file to fit."),
        click.option(
            "--kernel",
            "kernels",
            multiple=True,
            required=True,
            metavar="DIMS=KERNEL",
            callback=_kernel_callback,
            help="A kernel factor (repeat once per factor; every dim of --var needs exactly one): a dim, or "
            "several joined by commas for one factor over their product, = a kernel name (ExpQuad, Matern12, "
            "Matern32, Matern52, RatQuad, Cosine, Periodic, Independent; case-insensitive), optionally with fixed "
            "hyperparameters, e.g. time=Matern32, latitude,longitude=ExpQuad, time=Periodic(period=365.25), "
            "x,y=ExpQuad(ls=[5,10]). Unset hyperparameters get xkron's default priors.",
        ),
        click.option(
            "--likelihood",
            type=click.Choice(LIKELIHOOD_NAMES),
            default="gaussian",
            show_default=True,
            help="Observation model. Gaussian data are fitted exactly (marginal likelihood); the others as "
            "a latent GP (see xkron.spec.likelihoods).",
        ),
        click.option(
            "--mask-var",
            metavar="NAME",
            default=None,
            help="A variable of the input file on some or all of the data's dims, nonzero (True) where a cell "
            "is observed: cells where it is 0 or missing leave the likelihood, like NaN cells (e.g. a land "
            "mask on latitude, longitude).",
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
            "--seed",
            type=int,
            default=None,
            help="Random seed of the fit (PyMC's random_seed), for reproducible results.",
        ),
        click.option(
            "--solver",
            type=click.Choice(SOLVERS),
            default="auto",
            show_default=True,
            help="Linear algebra of the Gaussian marginal model: kronecker (complete grid, exact, fastest), "
            "dense (exact, any missing pattern, up to a few thousand cells), iterative (conjugate "
            "gradients, large grids with holes); auto picks the first that applies.",
        ),
        *SELECT_OPTIONS,
        _CHUNKS_IN,
        _SCHEDULER,
        _WORKERS,
        click.option(
            "--out",
            "out",
            required=True,
            type=click.Path(dir_okay=False, path_type=Path),
            metavar="FIT.nc",
            help="Where to write the fit (NetCDF, written atomically; an existing file needs --overwrite); read "
            "it back with xkron.open_fit, `xkron info` or `xkron predict`.",
        ),
        OVERWRITE_OPTION,
    ]
    for option in reversed(options):
        function = option(function)
    return function


@main.command(cls=_RecordingCommand, short_help="Fit a variable of a NetCDF/zarr file; write the fit.")
@_INPUT
@_data_options
def fit(data: Path, out: Path, scheduler: str | None, workers: int | None, **options) -> None:
    """Fit an exact Kronecker GP to a variable of DATA.nc (or DATA.zarr) and write the fit.

    The input is opened with xarray (a zarr store when the path ends in .zarr or is a
    directory). NaN cells, and cells where --mask-var is 0, are unobserved. The fit is
    written to --out with KronFit.to_netcdf, then its summary is printed: grid, kernels,
    every hyperparameter with units and prior, and the optimizer's report.

    \b
    Example:
      xkron fit tas.nc --var tas --kernel time=Matern32 \\
          --kernel latitude,longitude=ExpQuad --restarts 2 --seed 0 --out fit.nc
      xkron predict fit.nc --grid latitude=-60:60:121 --out pred.nc
    """
    ctx = click.get_current_context()
    try:
        with dask_client(scheduler, workers):
            result = run_fit(data, options.pop("var"), options.pop("kernels"), out, **options)
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise _to_click(err, ctx) from err
    click.echo(format_fit(result))


@main.command(cls=_RecordingCommand, short_help="Predict from a saved fit; write NetCDF or zarr.")
@click.argument("fit_path", metavar="FIT.nc", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--grid",
    "grids",
    multiple=True,
    metavar="DIM=START:STOP:NUM",
    callback=_grid_callback,
    help="Predict on NUM evenly spaced points from START to STOP along DIM (repeatable; other dims keep "
    "the training coordinates). Numbers for numeric dims; for time, ISO dates (time=2000-01-01:2009-01-01:10, "
    "2000-01-01T12:00) or numbers (days since 1970-01-01).",
)
@click.option(
    "--coords-from",
    type=click.Path(exists=True, path_type=Path),
    metavar="OTHER.nc",
    default=None,
    help="Predict at the coordinates of the fit's dims found in this NetCDF file (or zarr store); dims it "
    "lacks keep the training coordinates, --grid overrides it dim by dim. Coordinates that share a dim "
    "(e.g. latitude(station), longitude(station)) give scattered points.",
)
@click.option(
    "--quantiles",
    metavar="Q1,Q2,...",
    default=None,
    callback=_quantiles_callback,
    help="Also write these posterior quantiles (probabilities in (0, 1), comma-separated, e.g. 0.05,0.95) "
    "as the variable 'quantiles' on a 'quantile' dim.",
)
@click.option(
    "--noise",
    is_flag=True,
    default=False,
    help="Predict new observations: the sd (and quantiles) include the fitted observation noise. "
    "Gaussian fits only. Default: the latent field.",
)
@click.option(
    "--mask",
    is_flag=True,
    default=False,
    help="Re-apply the fit's --mask-var: NaN where it is 0 (e.g. on land), training grid only. Default: "
    "every cell is predicted, masked and NaN cells filled in.",
)
@click.option(
    "--chunks",
    "chunks",
    multiple=True,
    metavar="DIM=N",
    callback=_chunks_callback,
    help="Chunk the prediction in N points along DIM (repeatable): it is then computed lazily with dask "
    "and written chunk by chunk, so outputs larger than memory stream to disk; with --scheduler or "
    "--workers the chunks run on the cluster.",
)
@_SCHEDULER
@_WORKERS
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    metavar="PRED.nc|PRED.zarr",
    help="Where to write the prediction: NetCDF, or a zarr store when the name ends in .zarr (written "
    "atomically; an existing one needs --overwrite). Variables 'mean' and 'sd' with CF attributes, global "
    "attributes 'source' and 'history'.",
)
@OVERWRITE_OPTION
def predict(
    fit_path: Path,
    grids,
    coords_from: Path | None,
    quantiles,
    noise: bool,
    mask: bool,
    chunks,
    scheduler: str | None,
    workers: int | None,
    out: Path,
    overwrite: bool,
) -> None:
    """Predict the posterior mean and sd from a fit saved by `xkron fit` (FIT.nc).

    By default on the training grid (filling its NaN and masked cells); --grid and
    --coords-from give new coordinates. A batch fit (`xkron batch`) predicts every slice,
    on the batch dims. The output has 'mean' and 'sd' (and 'quantiles')
    with units and long_name from the data, in the data's dim order.

    \b
    Examples:
      xkron predict fit.nc --out pred.nc
      xkron predict fit.nc --grid time=2000-01-01:2000-12-01:12 \\
          --grid latitude=-60:60:241 --quantiles 0.05,0.95 --out pred.nc
      xkron predict fit.nc --coords-from stations.nc --noise --out stations_pred.nc
      xkron predict fit.nc --grid latitude=-90:90:1801 --chunks latitude=100 \\
          --workers 4 --out pred.zarr
    """
    ctx = click.get_current_context()
    try:
        with dask_client(scheduler, workers):
            result = run_predict(
                fit_path,
                out,
                grids=grids,
                coords_from=coords_from,
                quantiles=quantiles,
                noise=noise,
                mask=mask,
                chunks=chunks,
                command=_command_line(ctx),
                overwrite=overwrite,
            )
    except (ValueError, TypeError, OSError) as err:
        raise _to_click(err, ctx) from err
    click.echo(format_predict(result))


@main.command(cls=_RecordingCommand, short_help="Fit one GP per slice along batch dims; write the batch fit.")
@_INPUT
@click.option(
    "--batch-dim",
    "batch_dims",
    multiple=True,
    required=True,
    metavar="DIM",
    help="A dim of --var that indexes independent fits, e.g. member (repeatable: one fit per combination, "
    "e.g. --batch-dim member --batch-dim scenario). Batch dims take no --kernel.",
)
@click.option(
    "--shared/--independent",
    "shared",
    default=False,
    show_default=True,
    help="--shared: one set of hyperparameters for all slices; --independent: each slice has its own.",
)
@click.option(
    "--errors",
    type=click.Choice(ERRORS),
    default="raise",
    show_default=True,
    help="When a slice cannot be fitted: raise stops the command with its error; record keeps going, "
    "stores the message in the batch fit (its params are NaN there) and lists the failures.",
)
@_data_options
def batch(
    data: Path,
    batch_dims: tuple[str, ...],
    shared: bool,
    errors: str,
    out: Path,
    scheduler: str | None,
    workers: int | None,
    **options,
) -> None:
    """Fit one exact Kronecker GP per slice of a variable along --batch-dim (e.g. ensemble members).

    The kernels (--kernel) cover the other dims of --var. The batch fit is written to --out
    (NetCDF; its params have the batch dims), and a summary is printed: the number of fits,
    the failures, and each hyperparameter's median and range over the batch.

    \b
    Example:
      xkron batch ensemble.nc --var tas --batch-dim member --kernel time=Matern32 \\
          --kernel latitude,longitude=ExpQuad --errors record --workers 4 --out fits.nc
    """
    ctx = click.get_current_context()
    try:
        with dask_client(scheduler, workers):
            result = run_batch(
                data,
                options.pop("var"),
                options.pop("kernels"),
                out,
                batch_dims,
                shared=shared,
                errors=errors,
                **options,
            )
    except (ValueError, TypeError, OSError, RuntimeError) as err:
        raise _to_click(err, ctx) from err
    click.echo(format_batch(result))
