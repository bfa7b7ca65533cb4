"""Many fits in one call: one model per slice along batch dims, locally or on a dask cluster.

``fit(da, kernels, batch_dims=["member"])`` fits every slice (ensemble member, scenario,
variable, region) as an independent model. With ``shared=True`` the slices are instead
replicates of one model: they share every hyperparameter and are independent given them, an
:class:`xkron.kernels.Independent` factor over the batch dims (one exact Kronecker fit).

Independent slices run as tasks: on the active ``distributed.Client`` when there is one
(``distributed.get_client``; xkron never creates a client or sets dask options), else one
after the other in this process with dask's synchronous scheduler. Progress is shown with
dask's own tools (``distributed.progress``, ``dask.diagnostics.ProgressBar``). A task is a
pure function of its slice, so the cluster reschedules it, with the same result, when a
worker dies.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import fields, replace
from typing import Any

import numpy as np
import xarray as xr

__all__ = ["BatchError", "BatchFit", "fit_batch"]


class BatchError(RuntimeError):
    """A slice of a batch fit failed (``errors="raise"``, the default)."""


def fit_batch(
    da: xr.DataArray,
    kernels: Mapping,
    batch_dims: str | Sequence[str],
    *,
    shared: bool = False,
    errors: str = "raise",
    random_seed: int | None = None,
    progressbar: bool = True,
    **fit_kwargs,
):
    """Fit every slice along ``batch_dims`` (see :func:`xkron.fit`, which calls this)."""
    from xkron.fitting import fit
    from xkron.kernels import Independent
    from xkron.validation import check_coords, normalize_kernels

    batch_dims = [batch_dims] if isinstance(batch_dims, str) else list(batch_dims)
    missing = [d for d in batch_dims if d not in da.dims]
    if missing:
        raise ValueError(f"batch_dims {missing} are not dims of the data {list(da.dims)}")
    kernel_dims = {d for key in kernels for d in ((key,) if isinstance(key, str) else key)}
    clash = sorted(kernel_dims & set(batch_dims))
    if clash:
        raise ValueError(f"{clash} cannot be both a batch dim and a kernel dim: drop them from kernels")
    if errors not in ("raise", "record"):
        raise ValueError(f"errors={errors!r} is not one of 'raise', 'record'")
    with_batch = {**kernels, tuple(batch_dims): Independent()}
    pairs = normalize_kernels(da, with_batch)  # every other dim needs a kernel: checked before any fit
    check_coords(da, [d for dims, k in pairs if not isinstance(k, Independent) for d in dims])
    if shared:
        if errors != "raise":
            raise ValueError("errors='record' applies to independent slices; shared=True is one fit")
        return fit(da, with_batch, random_seed=random_seed, progressbar=progressbar, **fit_kwargs)

    index = list(itertools.product(*(range(da.sizes[d]) for d in batch_dims)))
    tasks = []
    for k, idx in enumerate(index):
        where = dict(zip(batch_dims, idx, strict=True))
        kwargs = {name: _select(value, where) for name, value in fit_kwargs.items()}
        kwargs.update(random_seed=None if random_seed is None else random_seed + k, progressbar=False)
        tasks.append((da.isel(where), kwargs))
    labels = {d: _labels(da, d) for d in batch_dims}
    refused = _prepare_all(kernels, tasks, index, labels, errors)
    ready = [k for k in range(len(tasks)) if k not in refused]
    results = dict(zip(ready, _run(kernels, [tasks[k] for k in ready], progressbar), strict=True))
    results.update({k: (None, message) for k, message in refused.items()})
    fits = {idx: results[k][0] for k, idx in enumerate(index)}
    failures = {idx: results[k][1] for k, idx in enumerate(index) if results[k][1]}
    batch = BatchFit(fits, failures, labels)
    if failures and errors == "raise":
        idx, message = next(iter(failures.items()))
        raise BatchError(
            f"{len(failures)} of {len(index)} slices failed; the first, {batch.describe(idx)}: {message}. "
            "Pass errors='record' to keep the others (failed slices give NaN)."
        )
    return batch


def _prepare_all(kernels, tasks, index, labels, errors: str) -> dict[int, str]:
    """Check every slice's arguments before any slice is fitted (:func:`xkron.prepare.prepare_slice`).

    Every slice refused: the arguments themselves are wrong, and the first refusal is raised
    as it is (``ValueError`` or ``TypeError``, naming the slice). Some refused: with
    ``errors="raise"`` a :class:`BatchError` names the first; with ``"record"`` the refusals
    are returned by task number, and those slices are not run.
    """
    from xkron.prepare import prepare_slice

    refused: dict[int, tuple[str, Exception]] = {}
    for k, (data, kwargs) in enumerate(tasks):
        try:
            prepare_slice(data, kernels, kwargs)
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


def _select(value, where: Mapping[str, int]):
    """A per-slice keyword value: DataArrays (and likelihoods holding them) cut along the batch dims."""
    if isinstance(value, xr.DataArray):
        return value.isel({d: i for d, i in where.items() if d in value.dims})
    if hasattr(value, "__dataclass_fields__"):
        changes = {f.name: _select(getattr(value, f.name), where) for f in fields(value)}
        changes = {k: v for k, v in changes.items() if isinstance(v, xr.DataArray)}
        return replace(value, **changes) if changes else value
    return value


def _labels(da: xr.DataArray, dim: str) -> np.ndarray:
    return da[dim].values if dim in da.coords else np.arange(da.sizes[dim])


def _fit_slice(data: xr.DataArray, kernels: Mapping, kwargs: dict):
    """One slice's fit, or its error message; the fit without its PyMC model (rebuilt on demand)."""
    from xkron.fitting import fit

    if kwargs.get("method") == "nuts":  # fit resolves method before it gets here
        kwargs = {"cores": 1, **kwargs}  # inside a task PyMC must not start its own processes
    try:
        result = fit(data, kernels, **kwargs)
    except Exception as exc:  # recorded per slice; the caller raises unless errors="record"
        return None, f"{type(exc).__name__}: {exc}"
    result.__dict__.pop("model", None)
    result.__dict__.pop("_posterior_cache", None)
    return result, ""


def _run(kernels, tasks, progressbar: bool) -> list:
    """Run the slice fits on the active dask client, or locally with dask's synchronous scheduler."""
    import dask

    try:
        from distributed import get_client, progress

        client = get_client()
    except (ImportError, ValueError):
        client = None
    if client is not None:
        futures = [client.submit(_fit_slice, data, kernels, kwargs, pure=False) for data, kwargs in tasks]
        if progressbar:
            progress(futures)
        return client.gather(futures)
    delayed = [dask.delayed(_fit_slice)(data, kernels, kwargs) for data, kwargs in tasks]
    if progressbar:
        from dask.diagnostics import ProgressBar

        with ProgressBar():
            return list(dask.compute(*delayed, scheduler="synchronous"))
    return list(dask.compute(*delayed, scheduler="synchronous"))


class BatchFit:
    """Independent fits, one per slice along ``batch_dims``. Made by ``fit(..., batch_dims=...)``.

    Attributes
    ----------
    fits : dict
        ``{index tuple: KronFit or None}`` (None where the slice failed).
    batch_dims : tuple of str
    errors : xarray.DataArray
        The error message per slice (``""`` where it succeeded).
    """

    def __init__(self, fits: Mapping, failures: Mapping, labels: Mapping[str, np.ndarray]):
        self.fits = dict(fits)
        self.failures = dict(failures)
        self.labels = {d: np.asarray(v) for d, v in labels.items()}
        self.batch_dims = tuple(self.labels)

    def describe(self, idx) -> str:
        return ", ".join(f"{d}={self.labels[d][i].item()!r}" for d, i in zip(self.batch_dims, idx, strict=True))

    def fit_at(self, **labels) -> Any:
        """The fit of one slice, by batch coordinate label (``fit_at(member="r2")``)."""
        idx = tuple(int(np.flatnonzero(self.labels[d] == labels[d])[0]) for d in self.batch_dims)
        return self.fits[idx]

    @property
    def errors(self) -> xr.DataArray:
        shape = [len(v) for v in self.labels.values()]
        out = np.full(shape, "", dtype=object)
        for idx, message in self.failures.items():
            out[idx] = message
        return xr.DataArray(out.astype(str), coords=self.labels, dims=self.batch_dims, name="errors")

    @property
    def params(self) -> xr.Dataset:
        """Hyperparameters of every slice, on the batch dims (NaN for failed slices)."""
        return self._combine(lambda f: f.params)

    def predict(self, *args, **kwargs) -> xr.Dataset:
        """:meth:`xkron.KronFit.predict` of every slice, on the batch dims (NaN for failed slices)."""
        return self._combine(lambda f: f.predict(*args, **kwargs))

    def sample(self, *args, **kwargs) -> xr.Dataset:
        """:meth:`xkron.KronFit.sample` of every slice, on the batch dims (NaN for failed slices)."""
        return self._combine(lambda f: f.sample(*args, **kwargs))

    def _combine(self, get) -> xr.Dataset:
        outputs = {idx: get(f) for idx, f in self.fits.items() if f is not None}
        if not outputs:
            raise ValueError(f"every slice failed; see .errors (first: {next(iter(self.failures.values()))})")
        template = next(iter(outputs.values()))
        blank = xr.full_like(template, np.nan, dtype=float) if template.data_vars else template
        nested = np.empty([len(v) for v in self.labels.values()], dtype=object)
        for idx in np.ndindex(nested.shape):
            out = outputs.get(idx, blank)
            coords = {d: [self.labels[d][i]] for d, i in zip(self.batch_dims, idx, strict=True)}
            nested[idx] = out.expand_dims(coords)
        combined = xr.combine_nested(nested.tolist(), concat_dim=list(self.batch_dims), combine_attrs="override")
        return combined.transpose(*self.batch_dims, ...)

    def to_netcdf(self, path, **kwargs) -> None:
        """Write every slice's fit to one NetCDF file (read back with :func:`xkron.open_fit`)."""
        from xkron.io import fit_tree, write_tree

        children, table = {}, []
        for k, (idx, f) in enumerate(self.fits.items()):
            name = f"slice_{k}" if f is not None else None
            if f is not None:
                children[name] = fit_tree(f)
            table.append({"index": list(idx), "node": name, "error": self.failures.get(idx, "")})
        # The labels sit in a sibling node: coordinates of the root would be inherited by every slice.
        children["batch_labels"] = xr.DataTree(xr.Dataset(coords=self.labels))
        meta = {"batch_dims": list(self.batch_dims), "slices": table}
        root = xr.DataTree(xr.Dataset(attrs={"xkron_batch": json.dumps(meta)}), children=children)
        write_tree(root, path, **kwargs)

    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> BatchFit:
        from xkron.io import fit_from_tree

        meta = json.loads(tree.attrs["xkron_batch"])
        labels = {d: tree["batch_labels"].to_dataset()[d].values for d in meta["batch_dims"]}
        fits, failures = {}, {}
        for row in meta["slices"]:
            idx = tuple(row["index"])
            fits[idx] = fit_from_tree(tree[row["node"]]) if row["node"] else None
            if row["error"]:
                failures[idx] = row["error"]
        return cls(fits, failures, labels)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{d}: {len(v)}" for d, v in self.labels.items())
        done = sum(f is not None for f in self.fits.values())
        return f"<xkron.BatchFit ({sizes}): {done} fitted, {len(self.failures)} failed>"
