"""Output paths of ``xkron fit``, ``xkron predict`` and ``xkron batch``, checked before any work.

A command refuses, before it reads or fits anything:

* an output that is one of its inputs (the same file, also through a symbolic or hard link,
  compared with :func:`os.path.samefile`), even with ``--overwrite``;
* an output that exists, unless ``--overwrite`` is given (as CDO's ``-O``);
* an output whose folder does not exist or cannot be written (tried by creating and removing
  a file there, which also catches read-only file systems and permissions that
  :func:`os.access` misjudges).

The outputs themselves are written atomically (:func:`xkron.io.atomic.atomic_write`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

import click

from xkron.cli.errors import JobInputError
from xkron.cli.files import is_zarr, require_zarr

__all__ = ["OVERWRITE_OPTION", "check_output", "check_writable_folder"]

OVERWRITE_OPTION = click.option(
    "--overwrite",
    is_flag=True,
    default=False,
    help="Replace --out if it exists (default: refuse). An output that is one of the inputs is always refused.",
)


def _error(message: str) -> JobInputError:
    return JobInputError(message, "--out")


def _same(out: Path, inputs: Iterable[str | os.PathLike | None]) -> Path | None:
    """The input that ``out`` is (the same file or store), if any."""
    for item in inputs:
        if item is None:
            continue
        try:
            if os.path.samefile(out, item):
                return Path(item)
        except OSError:  # one of them does not exist: not the same file
            continue
    return None


def check_writable_folder(folder: str | os.PathLike, out: str | os.PathLike | None = None) -> None:
    """Refuse a folder where a file cannot be created (``out``: the output named in the message)."""
    folder = Path(folder)
    out = folder if out is None else out
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".xkron-write-check-"):
            pass
    except OSError as err:
        raise _error(f"cannot write {out}: the folder {folder} is not writable ({err.strerror or err})") from None


def check_output(
    out: str | os.PathLike,
    inputs: Iterable[str | os.PathLike | None] = (),
    *,
    overwrite: bool = False,
    zarr_ok: bool = False,
) -> Path:
    """Check an output path before any work; return it as a :class:`~pathlib.Path`.

    Parameters
    ----------
    out : path
        The output file (or zarr store, where ``zarr_ok``).
    inputs : iterable of paths
        The files the command reads (``None`` entries are skipped).
    overwrite : bool
        Allow replacing an existing ``out`` that is not an input.
    zarr_ok : bool
        Whether the output may be a zarr store (a ``.zarr`` name or a directory).

    Raises
    ------
    JobInputError
        (option ``--out``) naming the problem and the fix.
    """
    out = Path(out)
    if not zarr_ok and is_zarr(out):
        raise _error(f"{out}: a fit is written as NetCDF; give a file name such as fit.nc")
    require_zarr(out, "writing", "--out")
    same = _same(out, inputs)
    if same is not None:
        raise _error(f"{out} is the input {same}: writing it would destroy the input; give another --out")
    if os.path.lexists(out) and not overwrite:
        raise _error(f"{out} exists; pass --overwrite to replace it, or give another --out")
    folder = out.absolute().parent
    if not folder.is_dir():
        raise _error(f"the directory of {out} does not exist: create {folder} first")
    check_writable_folder(folder, out)
    return out
