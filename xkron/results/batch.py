"""Many fits in one call: one model per slice along batch dims (:class:`BatchFit`).

``fit(da, kernels, batch_dims=["member"])`` fits every slice (ensemble member, scenario,
variable, region) as an independent model (:mod:`xkron.inference.batch` runs them, locally or
on a dask cluster). With ``shared=True`` the slices are instead replicates of one model: they
share every hyperparameter and are independent given them, an
:class:`xkron.spec.kernels.Independent` factor over the batch dims (one exact Kronecker fit).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import xarray as xr

from xkron.errors import BatchError
from xkron.inference.batch import labels_of, prepare_all, run_slices, slice_options
from xkron.inference.options import BATCH_ERRORS, FitOptions
from xkron.io.netcdf import fit_parts, fit_tree, header, write_tree
from xkron.results.fit import KronFit
from xkron.spec.kernels import Independent
from xkron.spec.validation import check_coords, normalize_kernels

__all__ = ["BatchFit", "fit_batch"]


def fit_batch(da: xr.DataArray, kernels: Mapping, options: FitOptions, fit: Callable):
    """Fit every slice along ``options.batch_dims`` with ``fit(data, kernels, options)`` (the pipeline
    of :func:`xkron.fit`, which calls this): one shared fit, or a :class:`BatchFit` of independent ones."""
    batch_dims, errors = options.batch_dims, options.errors
    batch_dims = [batch_dims] if isinstance(batch_dims, str) else list(batch_dims)
    missing = [d for d in batch_dims if d not in da.dims]
    if missing:
        raise ValueError(f"batch_dims {missing} are not dims of the data {list(da.dims)}")
    kernel_dims = {d for key in kernels for d in ((key,) if isinstance(key, str) else key)}
    clash = sorted(kernel_dims & set(batch_dims))
    if clash:
        raise ValueError(f"{clash} cannot be both a batch dim and a kernel dim: drop them from kernels")
    if errors not in BATCH_ERRORS:
        raise ValueError(f"errors={errors!r} is not one of {', '.join(map(repr, BATCH_ERRORS))}")
    with_batch = {**kernels, tuple(batch_dims): Independent()}
    pairs = normalize_kernels(da, with_batch)  # every other dim needs a kernel: checked before any fit
    check_coords(da, [d for dims, k in pairs if not isinstance(k, Independent) for d in dims])
    if options.shared:
        if errors != "raise":
            raise ValueError("errors='record' applies to independent slices; shared=True is one fit")
        return fit(da, with_batch, options.unbatched())

    index = list(itertools.product(*(range(da.sizes[d]) for d in batch_dims)))
    tasks = []
    for k, idx in enumerate(index):
        where = dict(zip(batch_dims, idx, strict=True))
        tasks.append((da.isel(where), slice_options(options, where, k)))
    labels = {d: labels_of(da, d) for d in batch_dims}
    refused = prepare_all(kernels, tasks, index, labels, errors)
    ready = [k for k in range(len(tasks)) if k not in refused]
    slices = run_slices(fit, kernels, [tasks[k] for k in ready], options.progressbar)
    results = dict(zip(ready, slices, strict=True))
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

    def to_netcdf(self, path, *, command: str | None = None, **kwargs) -> None:
        """Write every slice's fit to one NetCDF file (read back with :func:`xkron.open_fit`); ``command``:
        the command line that made it, recorded in ``history``."""
        children, table = {}, []
        for k, (idx, f) in enumerate(self.fits.items()):
            name = f"slice_{k}" if f is not None else None
            if f is not None:
                children[name] = fit_tree(f)
            table.append({"index": list(idx), "node": name, "error": self.failures.get(idx, "")})
        # The labels sit in a sibling node: coordinates of the root would be inherited by every slice.
        children["batch_labels"] = xr.DataTree(xr.Dataset(coords=self.labels))
        meta = {"batch_dims": list(self.batch_dims), "slices": table}
        title = f"xkron batch fit: one fit per slice along {', '.join(self.batch_dims)}"
        attrs = header(
            title, "batch fit", command=command, comment="Open it with xkron.open_fit(path); one group per slice."
        )
        root = xr.DataTree(xr.Dataset(attrs={**attrs, "xkron_batch": json.dumps(meta)}), children=children)
        write_tree(root, path, **kwargs)

    @classmethod
    def from_tree(cls, tree: xr.DataTree) -> BatchFit:
        meta = json.loads(tree.attrs["xkron_batch"])
        labels = {d: tree["batch_labels"].to_dataset()[d].values for d in meta["batch_dims"]}
        fits, failures = {}, {}
        for row in meta["slices"]:
            idx = tuple(row["index"])
            fits[idx] = KronFit(**fit_parts(tree[row["node"]])) if row["node"] else None
            if row["error"]:
                failures[idx] = row["error"]
        return cls(fits, failures, labels)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{d}: {len(v)}" for d, v in self.labels.items())
        done = sum(f is not None for f in self.fits.values())
        return f"<xkron.BatchFit ({sizes}): {done} fitted, {len(self.failures)} failed>"

    def _repr_html_(self) -> str:
        """The notebook display (:func:`xkron.results.display.batch_html`): batch dims, slices, failures."""
        from xkron.results.display import batch_html

        return batch_html(self)
