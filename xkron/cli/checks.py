"""Checks of the input data against the options, before any fitting (``xkron fit``/``batch``).

The checks here name the command-line options in their messages (``--kernel``,
``--batch-dim``, ``--squeeze``); :func:`xkron.fit` runs the library's own checks
(:mod:`xkron.spec.validation`) again on what they let through.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from xkron.cli.errors import JobInputError
from xkron.cli.parsing import KernelSpec
from xkron.cli.select import check_kernel_dim_sizes, missing_kernel_message

__all__ = ["as_mask", "check_cell_var", "check_chunk_dims", "check_kernels", "check_likelihood_data", "select_var"]


def select_var(ds, var: str, option: str = "--var", path: Any = None):
    """The data variable ``var`` of ``ds``, or an error listing the variables there are."""
    if var not in ds.data_vars:
        names = ", ".join(sorted(map(str, ds.data_vars))) or "none"
        where = f" in {path}" if path is not None else ""
        raise JobInputError(f"no variable {var!r}{where}; its data variables: {names}", option)
    return ds[var]


def check_chunk_dims(chunks: Mapping[str, int], dims: Sequence[str], what: str) -> None:
    """Refuse ``--chunks`` along dims that ``what`` does not have."""
    unknown = [d for d in chunks if d not in dims]
    if unknown:
        raise JobInputError(f"cannot chunk {unknown}: not dims of {what} (dims: {', '.join(dims)})", "--chunks")


def _check_batch_dims(da, batch_dims: Sequence[str]) -> None:
    data_dims = [str(d) for d in da.dims]
    for dim in batch_dims:
        if dim not in data_dims:
            raise JobInputError(f"{dim!r} is not a dim of {da.name!r} (dims: {', '.join(data_dims)})", "--batch-dim")


def _check_kernel_dim(da, dim: str, spec: KernelSpec, batch_dims: Sequence[str], mapped: Mapping[str, str]) -> None:
    data_dims = [str(d) for d in da.dims]
    if dim not in data_dims:
        raise JobInputError(
            f"{dim!r} (in {spec.text!r}) is not a dim of {da.name!r}; its dims: {', '.join(data_dims)}", "--kernel"
        )
    if dim in batch_dims:
        raise JobInputError(
            f"{dim!r} (in {spec.text!r}) is a --batch-dim: batch dims index separate fits and take no kernel",
            "--kernel",
        )
    if dim in mapped:
        raise JobInputError(f"dim {dim!r} has two kernels: {mapped[dim]!r} and {spec.text!r}", "--kernel")


def check_kernels(da, kernels: Sequence[KernelSpec], batch_dims: Sequence[str] = ()) -> dict:
    """The ``kernels`` mapping of :func:`xkron.fit`, checked against the data's dims.

    Every dim of ``da`` that is not a batch dim needs exactly one kernel, and at least two points.
    """
    data_dims = [str(d) for d in da.dims]
    if not kernels:
        example = " ".join(f"--kernel {d}=Matern52" for d in data_dims if d not in batch_dims)
        raise JobInputError(f"give one --kernel per dim (or group of dims), e.g. {example}", "--kernel")
    _check_batch_dims(da, batch_dims)
    mapped: dict[str, str] = {}
    for spec in kernels:
        for dim in spec.dims:
            _check_kernel_dim(da, dim, spec, batch_dims, mapped)
            mapped[dim] = spec.text
        check_kernel_dim_sizes(da, spec.dims, spec.text)
    missing = [d for d in data_dims if d not in mapped and d not in batch_dims]
    if missing:
        raise JobInputError(missing_kernel_message(da, missing, batch=bool(batch_dims)), "--kernel")
    return {spec.key: spec.kernel for spec in kernels}


def check_cell_var(ds, name: str, da, option: str):
    """A variable on some or all of the data's dims (``--mask-var``, ``--noise-sd-var``)."""
    var = select_var(ds, name, option)
    extra = [d for d in var.dims if d not in da.dims]
    if extra:
        raise JobInputError(
            f"{name!r} has dims {extra} that {da.name!r} does not have (its dims: {', '.join(map(str, da.dims))})",
            option,
        )
    return var


def check_likelihood_data(likelihood: str, exposure_var: str | None, trials) -> str | None:
    """Which per-cell likelihood datum the options give (``exposure``, ``trials`` or none).

    The likelihood's own ``data_fields`` (:mod:`xkron.spec.likelihoods`) say which it takes.
    """
    from xkron.spec.likelihoods import resolve_likelihood

    data_fields = resolve_likelihood(likelihood).data_fields
    if exposure_var is not None and "exposure" not in data_fields:
        raise JobInputError(
            f"--exposure-var applies to the poisson and negative_binomial likelihoods, not {likelihood}",
            "--exposure-var",
        )
    if trials is not None and "trials" not in data_fields:
        raise JobInputError(f"--trials applies to the binomial likelihood, not {likelihood}", "--trials")
    if "trials" in data_fields and trials is None:
        raise JobInputError(
            "the binomial likelihood needs --trials: a whole number for every cell, or a variable of the input file",
            "--trials",
        )
    if exposure_var is not None:
        return "exposure"
    return "trials" if trials is not None else None


def as_mask(var):
    """A stored mask (bool, or integers with 1/0, NaN = not observed) as booleans."""
    if var.dtype == bool:
        return var
    return var.fillna(0) != 0
