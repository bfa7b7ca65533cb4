"""The PP reader behind the global sphere benchmark (``tests/benchmarks/pp_fields.py``).

Reference: iris-sample-data's NetCDF files ``A1B_north_america.nc`` and ``E1_north_america.nc``
were written by iris from the same model runs; their last year (Dec 2098-Nov 2099) must equal the
PP fields of that year cell for cell, at the same latitudes and longitudes, which checks the
header words, the orientation of rows and columns and the coordinates at once. Headers that the
reader cannot take at face value are refused.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import xarray as xr

pytest.importorskip("iris_sample_data")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "benchmarks"))

import pp_fields as pp


@pytest.mark.parametrize("name", ["A1B.2098.pp", "E1.2098.pp", "pre-industrial.pp"])
def test_a_global_field_spans_the_globe_on_its_grid_in_kelvin(name):
    da = pp.read_pp(pp.sample_path(name))
    assert da.dims == ("latitude", "longitude") and da.shape == (145, 192)
    np.testing.assert_array_equal(da["latitude"], np.linspace(-90, 90, 145))  # 1.25°, both poles
    np.testing.assert_array_equal(da["longitude"], 1.875 * np.arange(192))  # 0° to 358.125°
    assert da["latitude"].attrs["units"] == "degrees_north" and da.attrs["units"] == "K"
    assert da.attrs["stash"] == 3236  # 1.5 m temperature
    assert 200 < float(da.min()) and float(da.max()) < 320 and not da.isnull().any()
    polar, tropics = float(da.sel(latitude=slice(-90, -70)).mean()), float(da.sel(latitude=slice(-20, 20)).mean())
    assert polar < 250 < 290 < tropics  # the south polar cap is cold, the tropics warm: rows not flipped
    assert float(da.isel(latitude=0).std()) == 0.0  # the pole row is one point


@pytest.mark.parametrize(
    ("nc", "name"), [("A1B_north_america.nc", "A1B.2098.pp"), ("E1_north_america.nc", "E1.2098.pp")]
)
def test_the_field_equals_iris_netcdf_of_the_same_year(nc, name):
    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(pp.sample_path(nc), decode_times=coder) as ds:
        region = ds["air_temperature"].isel(time=-1).load()
    assert str(region["time"].values) == "2099-06-01 00:00:00"  # the mean of Dec 2098-Nov 2099
    da = pp.read_pp(pp.sample_path(name))
    assert (da.attrs["t1"], da.attrs["t2"]) == ("2098-12-01", "2099-12-01")
    same = da.sel(latitude=region["latitude"].astype(float), longitude=region["longitude"].astype(float))
    np.testing.assert_array_equal(same.values, region.values)


def test_a_coarse_field_runs_north_to_south_in_the_file_and_comes_back_sorted():
    da = pp.read_pp(pp.sample_path("air_temp.pp"))  # BDY < 0: its rows start at 90°N
    assert da.shape == (73, 96)
    np.testing.assert_array_equal(da["latitude"], np.linspace(-90, 90, 73))
    np.testing.assert_array_equal(da["longitude"], 3.75 * np.arange(96))
    assert 230 < float(da.min()) and float(da.max()) < 315


def _patched(tmp_path, word: int, value) -> str:
    """A copy of ``A1B.2098.pp`` with header word ``word`` (from 1) set to ``value``."""
    raw = bytearray(pp.sample_path("A1B.2098.pp").read_bytes())
    kind = ">i4" if word <= 45 else ">f4"
    raw[4 * word : 4 * word + 4] = np.array([value], kind).tobytes()  # 4 bytes of record length first
    path = tmp_path / "patched.pp"
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    ("word", "value", "message"),
    [
        (pp.LBPACK, 1, r"LBPACK \(word 21\) = 1: the field is packed; .* use iris"),
        (pp.LBCODE, 101, r"LBCODE \(word 16\) = 101: not a regular latitude-longitude grid"),
        (pp.BPLAT, 37.5, r"BPLAT, BPLON \(words 56, 57\) = 37.5, 0: a rotated pole"),
        (pp.BDY, 0.0, r"BDY, BDX \(words 60, 62\) = 0, 1.875: an irregular grid"),
        (pp.LBROW, 144, r"the data record has 111360 bytes, LBROW × LBNPT = 144 × 192 needs 110592"),
        (pp.BZY, 0.0, r"latitudes BZY \+ BDY·j run from 1.25 to 181.25, beyond ±90"),
    ],
)
def test_headers_it_cannot_read_as_they_are_are_refused(tmp_path, word, value, message):
    path = _patched(tmp_path, word, value)
    with pytest.raises(ValueError, match=message) as err:
        pp.read_pp(path)
    assert "patched.pp" in str(err.value)


def test_a_truncated_file_is_refused(tmp_path):
    path = tmp_path / "short.pp"
    path.write_bytes(pp.sample_path("A1B.2098.pp").read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"short.pp: the data record at offset 264 is not framed .* truncated"):
        pp.read_pp(path)
