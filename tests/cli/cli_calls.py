"""Running ``xkron`` commands in-process for the CLI tests (imported by them, not collected)."""

from __future__ import annotations

import xarray as xr
from click.testing import CliRunner

from xkron.cli.app import main

FAST = ["--restarts", "0", "--seed", "0", "--quiet"]
"""One MAP start, a fixed seed, no progress lines."""


def run(*args):
    """The command's click result (its exit code and output), whatever they are."""
    return CliRunner().invoke(main, [str(a) for a in args])


def ok(*args):
    """The command's result, which must succeed; an exception other than an exit is re-raised with its traceback."""
    result = run(*args)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == 0, result.output
    return result


def open_loaded(path, **kwargs) -> xr.Dataset:
    """A NetCDF file's Dataset, loaded and closed."""
    with xr.open_dataset(path, **kwargs) as ds:
        return ds.load()
