"""Item 12 of issue 11 (open_fit): files that are not fits get "PATH is not an xkron fit (...)"."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import xarray as xr

import xkron


@pytest.fixture(scope="module")
def fit_file(tmp_path_factory):
    x = np.linspace(0.0, 1.0, 4)
    da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, dims=("a", "b"), name="z")
    fit = xkron.fit(da, {"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)}, amplitude=1.0, noise=0.1,
                    mean=0.0, progressbar=False)  # fmt: skip
    path = tmp_path_factory.mktemp("fit") / "fit.nc"
    fit.to_netcdf(path)
    return path


def _refused(path, reason: str) -> bool:
    """Whether ``open_fit`` refuses ``path`` with ``"PATH is not an xkron fit (... reason ...)"``."""
    with pytest.raises(xkron.NotAFitError) as info:
        xkron.open_fit(path)
    assert isinstance(info.value, ValueError)
    return re.match(rf"^{re.escape(str(path))} is not an xkron fit \(.*{reason}", str(info.value)) is not None


def test_text_file(tmp_path):
    (tmp_path / "notes.nc").write_text("hello\n")
    assert _refused(tmp_path / "notes.nc", "not a readable NetCDF file")


def test_empty_file(tmp_path):
    (tmp_path / "empty.nc").write_bytes(b"")
    assert _refused(tmp_path / "empty.nc", "not a readable NetCDF file")


@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated_file(fit_file, tmp_path, keep):
    data = fit_file.read_bytes()
    (tmp_path / "cut.nc").write_bytes(data[: int(len(data) * keep)])
    assert _refused(tmp_path / "cut.nc", "truncated or damaged")


def test_netcdf_that_is_not_a_fit(tmp_path):
    xr.Dataset({"t": ("x", np.arange(3.0))}).to_netcdf(tmp_path / "data.nc")
    assert _refused(tmp_path / "data.nc", "without the 'xkron_spec' attribute")


def test_fit_missing_its_params_group(fit_file, tmp_path):
    """What a write that failed half-way used to leave (KeyError 'Could not find node at params')."""
    with xr.open_datatree(fit_file) as tree:
        partial = xr.DataTree(tree.to_dataset().load(), children={"data": tree["data"].load().copy()})
    partial.attrs = dict(tree.attrs)
    partial.to_netcdf(tmp_path / "partial.nc")
    assert _refused(tmp_path / "partial.nc", r"group\(s\) \['params'\] are missing")


def test_unknown_format(fit_file, tmp_path):
    with xr.open_datatree(fit_file) as tree:
        tree = tree.load()
    spec = json.loads(tree.attrs["xkron_spec"])
    spec["format"] = "xkron-fit-99"
    tree.attrs["xkron_spec"] = json.dumps(spec)
    tree.to_netcdf(tmp_path / "future.nc")
    assert _refused(tmp_path / "future.nc", "format 'xkron-fit-99'.*upgrade xkron")


def test_directory(tmp_path):
    (tmp_path / "fit.nc").mkdir()
    assert _refused(tmp_path / "fit.nc", "a directory")


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        xkron.open_fit(tmp_path / "nothing.nc")
