"""Masks on the command line: ``fit --mask [FILE.nc:]VAR`` and ``predict --mask [FILE.nc:VAR]``.

A mask is nonzero (True) where a cell is observed or kept, 0 or missing where it is not (on
land, say). ``xkron fit`` takes it from a variable of the input file (``--mask lsm``) or of
another file (``--mask masks.nc:lsm``); its cells with 0 leave the likelihood, like NaN cells.

``xkron predict --mask`` sets the prediction to NaN where the mask is 0:

* without a value, the fit's own mask; for a fit made without one, whose data are NaN on land
  (sea-surface temperature, say), the cells that are NaN at every time step (never observed
  on the fit's time dims): those are land, the others gaps to fill;
* with ``FILE.nc:VAR``, that variable, on the prediction's coordinates (a new grid too).

A mask's coordinates are matched to the data's or the prediction's by value; numeric ones
within a millionth of their span (a mask stored in float32 matches a float64 grid), others
exactly. A mask that is the same along a dim (a land mask repeated over time) applies on any
grid along that dim, and a mask file's dims of one point (ERA5's ``lsm(time=1, ...)``) are
dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from xkron.cli.checks import as_mask, select_var
from xkron.cli.errors import JobInputError
from xkron.cli.files import open_input
from xkron.cli.select import select_dims

__all__ = ["COORD_TOLERANCE", "fit_mask", "predict_mask", "read_mask", "split_file_var"]

COORD_TOLERANCE = 1e-6
"""How far (as a fraction of a coordinate's span) a mask's numeric coordinate may sit from the grid's
and still match: float32 storage rounds at about 1e-7."""


def split_file_var(text: str, option: str) -> tuple[Path | None, str]:
    """``"FILE.nc:VAR"`` into ``(Path("FILE.nc"), "VAR")``; a bare ``"VAR"`` into ``(None, "VAR")``.

    Examples
    --------
    >>> split_file_var("lsm", "--mask")
    (None, 'lsm')
    >>> split_file_var("no/such.nc:lsm", "--mask")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xkron.cli.errors.JobInputError: no file or zarr store no/such.nc (in 'no/such.nc:lsm'); give FILE.nc:VAR ...
    """
    path, sep, var = text.rpartition(":")
    if not sep:
        return None, text
    if not path or not var:
        raise JobInputError(f"{text!r} is not FILE.nc:VAR, e.g. masks.nc:lsm", option)
    if not Path(path).exists():
        raise JobInputError(
            f"no file or zarr store {path} (in {text!r}); give FILE.nc:VAR with an existing file, or the name "
            "of a variable of the input file",
            option,
        )
    return Path(path), var


def _on_coords(mask, coords: Mapping, option: str, hint: str = "predict on the mask's grid with --grid FILE.nc"):
    """``mask`` at the given 1-D coordinate values of its dims (numeric ones within tolerance)."""
    import numpy as np

    for dim, values in coords.items():
        if dim not in mask.dims or dim not in mask.coords:
            continue
        own = mask[dim].values
        values = np.asarray(values)
        kwargs = {}
        if own.dtype.kind in "iuf" and values.dtype.kind in "iuf":
            span = float(np.ptp(own)) if own.size > 1 else 1.0
            kwargs = {"method": "nearest", "tolerance": COORD_TOLERANCE * (span or 1.0)}
        try:
            mask = mask.sel({dim: values}, **kwargs).assign_coords({dim: values})
        except (KeyError, ValueError, TypeError):
            raise JobInputError(
                f"the mask's {dim!r} coordinate ({own.size} values, {own[0]} .. {own[-1]}) does not hold every "
                f"{dim!r} value needed ({values.size} values, {values[0]} .. {values[-1]}): {hint}",
                option,
            ) from None
    return mask


def _drop_single(var, keep: Mapping[str, int]):
    """``var`` without its dims of one point, except those ``keep`` has at one point too."""
    single = [d for d in var.dims if var.sizes[d] == 1 and keep.get(d) != 1]
    return var.squeeze(single, drop=True) if single else var


def _check_dims(mask, data_dims: Sequence[str], name: str, what: str, option: str) -> None:
    extra = [str(d) for d in mask.dims if d not in data_dims]
    if extra:
        raise JobInputError(
            f"mask {name!r} has dims {extra} that {what} does not have (its dims: {', '.join(map(str, data_dims))})",
            option,
        )


def read_mask(ds, text: str, da, sel: Mapping[str, str], named: Sequence[str], option: str = "--mask"):
    """The mask of ``fit --mask [FILE.nc:]VAR`` for the data ``da`` (of ``ds``), as lazy booleans.

    A variable of ``ds`` is used as it is (``ds`` is already selected); one of another file
    gets the ``--sel`` of the dims it has, loses its dims of one point, and is matched to the
    data's coordinates.
    """
    path, name = split_file_var(text, option)
    if path is None:
        var = select_var(ds, name, option)
        _check_dims(var, [str(d) for d in da.dims], name, repr(da.name), option)
        return as_mask(var)
    with open_input(path) as other:
        var = select_var(other, name, option, path=path)
        other = select_dims(other, name, {d: t for d, t in sel.items() if d in var.dims}, False, named)
        var = _drop_single(other[name], dict(da.sizes)).load()
    _check_dims(var, [str(d) for d in da.dims], name, repr(da.name), option)
    coords = {d: da[d].values for d in var.dims if d in da.coords}
    return _on_coords(as_mask(var), coords, option, "give a mask on the data's grid, or --sel the data to the mask's")


def _constant_along(mask):
    """``mask`` reduced over the dims along which it does not change (a land mask repeated in time)."""
    for dim in list(mask.dims):
        first = mask.isel({dim: 0}, drop=True)
        if bool((mask == first).all()):
            mask = first
    return mask


def fit_mask(fit, fit_path):
    """The mask ``predict --mask`` re-applies: the fit's, else its never-observed cells over time.

    Reduced over the dims along which it is constant, so that it applies on new grids along them.
    """
    if fit.mask is not None:
        return _constant_along(fit.mask)
    time_dims = [d for d, enc in fit.encodings.items() if enc.is_time]
    if not time_dims:
        raise JobInputError(
            f"{fit_path} was fitted without a mask, and without a time dim its NaN cells cannot be told apart "
            "into land (never observed) and gaps: give the mask's file, --mask FILE.nc:VAR",
            "--mask",
        )
    observed = fit.data.notnull().any(time_dims).rename("mask")
    return _constant_along(observed)


def predict_mask(fits: Sequence, fit_path, choice: str, request: Mapping, option: str = "--mask"):
    """The boolean mask of ``predict --mask`` on the prediction's coordinates, or ``None``.

    ``choice``: ``"fit"`` (the fit's mask, see :func:`fit_mask`; for a batch fit, cells kept
    in any slice) or ``"FILE.nc:VAR"``. ``request``: the new coordinates by dim.
    """
    scattered = [d for d, v in request.items() if getattr(v, "dims", (d,)) != (d,)]
    if scattered:
        raise JobInputError(
            f"--mask applies to grids; {scattered} are scattered points (coordinates on a shared dim)", option
        )
    dims = list(fits[0].dims)
    if choice == "fit":
        masks = [fit_mask(f, fit_path) for f in fits]
        mask = masks[0]
        for other in masks[1:]:
            mask = mask | other
        hint = "give a mask on the new grid, --mask FILE.nc:VAR"
        return _on_coords(mask, {d: request[d].values for d in request if d in mask.dims}, option, hint)
    path, name = split_file_var(choice, option)
    if path is None:
        raise JobInputError(f"{choice!r} is not FILE.nc:VAR; --mask alone re-applies the fit's mask", option)
    with open_input(path) as other:
        var = select_var(other, name, option, path=path)
        var = _drop_single(var, {}).load()
    _check_dims(var, dims, name, "the fit", option)
    training = fits[0].data.coords
    coords = {
        d: request[d].values if d in request else training[d].values for d in var.dims if d in request or d in training
    }
    return _on_coords(as_mask(var), coords, option)
