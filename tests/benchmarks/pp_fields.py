"""Read the global fields of iris-sample-data's Met Office PP files with numpy only (benchmark support).

The sphere benchmark (``bench_sphere.py --field global``) needs a global field; the package data
that has one stores it as UM post-processing (PP) files, which only iris reads. Those files are
*unpacked* (``LBPACK = 0``), so a few lines of numpy read them without iris.

A PP field is two Fortran unformatted sequential records, big-endian, each framed by its length
in bytes (int32) before and after (UM documentation paper F3, "Input and output file formats"):

1. a 256-byte header of 64 words: 45 int32 (words 1-45) then 19 float32 (words 46-64);
2. ``LBROW · LBNPT`` float32 values, row by row.

The words read here, numbered from 1 over the whole header as F3 (and iris' ``UM_HEADER_2``) do:

========  ====  ==============================================================
word      name  meaning
========  ====  ==============================================================
1-6       T1    validity time: year, month, day, hour, minute, day number
7-12      T2    data time (the end of a meaning period)
16        LBCODE  grid code: 1 is a regular latitude-longitude grid
18, 19    LBROW, LBNPT  rows (latitudes) and points per row (longitudes)
20        LBEXT   length of extra data after the field: 0 here
21        LBPACK  packing: 0 is unpacked 32-bit IEEE reals
39        LBUSER(1)  data type: 1 is real
42        LBUSER(4)  STASH code (3236: temperature at 1.5 m)
50        BDATUM  a constant to add to every value: 0 here
56, 57    BPLAT, BPLON  the grid's pole: (90, 0) is the true North Pole, no rotation
59, 60    BZY, BDY  latitude of row ``j`` is ``BZY + BDY · j`` (``j = 1..LBROW``)
61, 62    BZX, BDX  longitude of column ``i`` is ``BZX + BDX · i`` (``i = 1..LBNPT``)
63        BMDI    the missing-data value (read as NaN)
========  ====  ==============================================================

Any field this reader cannot take at face value (packed, rotated pole, irregular or non-lat-lon
grid, extra data, integer data, an offset datum, truncated records) is refused with an error that
names the file and the header word.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

__all__ = ["read_pp", "sample_path"]

_HEADER_BYTES = 256
_N_INT = 45

# One-based word numbers of F3's header (ints 1-45, reals 46-64).
LBCODE, LBROW, LBNPT, LBEXT, LBPACK, LBUSER1, LBUSER4 = 16, 18, 19, 20, 21, 39, 42
BDATUM, BPLAT, BPLON, BZY, BDY, BZX, BDX, BMDI = 50, 56, 57, 59, 60, 61, 62, 63


def sample_path(name: str) -> Path:
    """The path of ``name`` in iris-sample-data (e.g. ``"A1B.2098.pp"``)."""
    import iris_sample_data

    return Path(iris_sample_data.path) / name


def _record(raw: bytes, offset: int, path: Path, what: str) -> tuple[bytes, int]:
    """The Fortran record at ``offset``: its bytes and the offset of the next record."""
    if offset + 4 > len(raw):
        raise ValueError(f"{path}: the file ends before the {what} record (offset {offset}): a truncated PP file")
    n = int(np.frombuffer(raw, ">i4", 1, offset)[0])
    end = offset + 4 + n
    if n < 0 or end + 4 > len(raw) or int(np.frombuffer(raw, ">i4", 1, end)[0]) != n:
        raise ValueError(
            f"{path}: the {what} record at offset {offset} is not framed by two equal big-endian lengths "
            f"(leading length {n}): not a big-endian 32-bit PP file, or truncated"
        )
    return raw[offset + 4 : end], end + 4


def _check_header(words: dict[int, float], path: Path) -> None:
    """Refuse a field whose header this reader cannot take at face value, naming the word."""
    w = words
    checks = [
        (w[LBPACK] == 0, f"LBPACK (word 21) = {w[LBPACK]:g}: the field is packed; only unpacked fields "
         "(LBPACK = 0) are read here, use iris for packed ones"),
        (w[LBCODE] == 1, f"LBCODE (word 16) = {w[LBCODE]:g}: not a regular latitude-longitude grid (1)"),
        (w[LBEXT] == 0, f"LBEXT (word 20) = {w[LBEXT]:g}: the field carries extra data, not read here"),
        (w[LBUSER1] == 1, f"LBUSER(1) (word 39) = {w[LBUSER1]:g}: the data are not reals (1)"),
        (w[BDATUM] == 0, f"BDATUM (word 50) = {w[BDATUM]:g}: an offset datum is not applied here"),
        (w[BPLAT] == 90 and w[BPLON] == 0, f"BPLAT, BPLON (words 56, 57) = {w[BPLAT]:g}, {w[BPLON]:g}: a rotated "
         "pole; the coordinates would not be true latitude and longitude"),
        (w[BDY] != 0 and w[BDX] != 0, f"BDY, BDX (words 60, 62) = {w[BDY]:g}, {w[BDX]:g}: an irregular grid "
         "(its coordinates are in extra data, not read here)"),
    ]  # fmt: skip
    for ok, message in checks:
        if not ok:
            raise ValueError(f"{path}: {message}")


def read_pp(path: str | Path, name: str = "air_temperature", units: str = "K") -> xr.DataArray:
    """The first field of an unpacked PP file as a ``(latitude, longitude)`` DataArray, NaN where missing.

    Parameters
    ----------
    path : str or Path
        A PP file whose first field is unpacked 32-bit reals on a regular latitude-longitude grid
        (iris-sample-data's ``A1B.2098.pp``, ``E1.2098.pp``, ``pre-industrial.pp``, ``air_temp.pp``).
    name, units : str
        The variable's name and units (a PP header holds its STASH code, not these; kept in attrs).

    Returns
    -------
    xarray.DataArray
        Dims ``("latitude", "longitude")``, latitude increasing, in ``degrees_north`` and
        ``degrees_east``; attrs ``stash``, ``t1`` and ``t2`` (the header's two times, as text).

    Examples
    --------
    >>> da = read_pp(sample_path("air_temp.pp"))
    >>> da.shape, float(da.latitude[0]), float(da.latitude[-1]), float(da.longitude[-1])
    ((73, 96), -90.0, 90.0, 356.25)
    """
    path = Path(path)
    raw = path.read_bytes()
    header, offset = _record(raw, 0, path, "header")
    if len(header) != _HEADER_BYTES:
        raise ValueError(f"{path}: the header record has {len(header)} bytes, a PP header has {_HEADER_BYTES}")
    ints = np.frombuffer(header, ">i4", _N_INT).astype(int)
    reals = np.frombuffer(header, ">f4", 64 - _N_INT, 4 * _N_INT).astype(float)
    words = {k + 1: float(v) for k, v in enumerate(ints)} | {k + 1 + _N_INT: float(v) for k, v in enumerate(reals)}
    _check_header(words, path)
    nrow, npt = int(words[LBROW]), int(words[LBNPT])
    data, _ = _record(raw, offset, path, "data")
    if len(data) != 4 * nrow * npt:
        raise ValueError(f"{path}: the data record has {len(data)} bytes, LBROW × LBNPT = {nrow} × {npt} needs "
                         f"{4 * nrow * npt}")  # fmt: skip
    values = np.frombuffer(data, ">f4").astype(float).reshape(nrow, npt)
    values[values == np.float32(words[BMDI])] = np.nan
    lat = words[BZY] + words[BDY] * np.arange(1, nrow + 1)
    lon = words[BZX] + words[BDX] * np.arange(1, npt + 1)
    if np.abs(lat).max() > 90 + 1e-3:
        raise ValueError(f"{path}: latitudes BZY + BDY·j run from {lat.min()} to {lat.max()}, beyond ±90")
    # float32 steps (air_temp.pp: BDY = -2.4999990) drift by 1e-4° over a row: keep 1e-3° (111 m)
    lat, lon = np.round(lat, 3) + 0.0, np.round(lon, 3) + 0.0
    da = xr.DataArray(values, coords={"latitude": lat, "longitude": lon}, dims=("latitude", "longitude"), name=name)
    da["latitude"].attrs = {"units": "degrees_north", "standard_name": "latitude"}
    da["longitude"].attrs = {"units": "degrees_east", "standard_name": "longitude"}
    t1, t2 = ("{:04d}-{:02d}-{:02d}".format(*ints[k : k + 3]) for k in (0, 6))
    da.attrs = {"units": units, "source": path.name, "stash": int(words[LBUSER4]), "t1": t1, "t2": t2}
    return da.sortby("latitude")
