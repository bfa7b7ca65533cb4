"""Atomic writes: a file (or zarr store) appears whole at its path, or not at all.

:func:`atomic_write` yields a temporary path in the destination's folder; the caller writes
there, and only when that succeeds is the result flushed to disk and renamed onto the
destination (``os.replace``, atomic on POSIX and Windows within one file system). A write that
fails half-way, or is interrupted, removes its temporary file and leaves whatever was at the
destination before untouched: a failed ``to_netcdf`` can no longer destroy a previous fit.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import stat
from collections.abc import Iterator
from pathlib import Path

__all__ = ["TEMP_MARKER", "atomic_write"]

TEMP_MARKER = ".xkron-tmp-"
"""Part of the temporary names (``.NAME.xkron-tmp-XXXXXXXX.SUFFIX``), so a leftover is recognisable."""


def _temporary_sibling(path: Path) -> Path:
    """A fresh name next to ``path``, hidden, keeping its suffix (writers pick formats by it)."""
    while True:
        candidate = path.with_name(f".{path.stem}{TEMP_MARKER}{secrets.token_hex(4)}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate


def _fsync(path: Path) -> None:
    """Flush a written file, or every file of a written directory and the directory, to disk."""
    if path.is_dir():
        for root, _, files in os.walk(path):
            for name in files:
                _fsync(Path(root) / name)
        _fsync_dir(path)
        return
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(path: Path) -> None:
    """Flush a directory's entries (the rename) where the platform allows it."""
    with contextlib.suppress(OSError):  # Windows cannot open directories; the rename is durable there anyway
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _install(tmp: Path, path: Path) -> None:
    """Move the finished ``tmp`` onto ``path``; an existing directory (zarr store) is replaced too.

    ``os.replace`` cannot replace a non-empty directory: the old store is first renamed aside,
    and put back if the rename of the new one fails.
    """
    if path.is_dir() and not path.is_symlink():
        aside = _temporary_sibling(path)
        os.replace(path, aside)
        try:
            os.replace(tmp, path)
        except BaseException:
            os.replace(aside, path)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[Path]:
    """Write to a temporary sibling of ``path``, then rename it onto ``path`` on success.

    Parameters
    ----------
    path : path-like
        The destination: a file, or a directory such as a zarr store. Its folder must exist.

    Yields
    ------
    pathlib.Path
        Where to write: a new name in the same folder (so the final rename stays on one file
        system) with the same suffix. Nothing exists there yet.

    Notes
    -----
    On success the data are flushed (``fsync``) before the rename, the rename is flushed after
    it, and an existing destination file's permission bits are kept. On any exception,
    ``KeyboardInterrupt`` included, the temporary is removed, the destination is left as it
    was, and the exception propagates.

    Examples
    --------
    >>> import os, tempfile
    >>> target = os.path.join(tempfile.mkdtemp(), "out.txt")
    >>> with atomic_write(target) as tmp:
    ...     _ = tmp.write_text("done")
    >>> open(target).read()
    'done'
    """
    path = Path(path)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        if not os.path.lexists(tmp):
            raise FileNotFoundError(f"nothing was written to the temporary file {tmp} for {path}")
        _fsync(tmp)
        if path.is_file():
            with contextlib.suppress(OSError):
                os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
        _install(tmp, path)
    except BaseException:
        _remove(tmp)
        raise
    _fsync_dir(path.absolute().parent)
