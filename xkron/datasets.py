"""Example datasets for xkron.

Two datasets are provided:

* :func:`load_air_temperature` -- real climate-model output: annual
  near-surface air temperature over North America (1860-2099, SRES A1B
  scenario), a 240 x 19 x 25 subset of ``A1B_north_america.nc`` from the
  ``iris-sample-data`` package (British Crown copyright, Open Government
  Licence). See ``datasets/README.md`` in the repository.
* :func:`seed_example` -- the *simulated* 50 x 30 grid of PyMC's
  "Kronecker Structured Covariances" example notebook, regenerated exactly.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr
from threadpoolctl import threadpool_limits

__all__ = [
    "AIR_TEMPERATURE_FILE",
    "DATA_DIR",
    "load_air_temperature",
    "seed_example",
]

AIR_TEMPERATURE_FILE = "a1b_north_america_air_temperature.nc"

# Where the bundled NetCDF files may live, in order of preference:
#  1. a wheel install, where pyproject force-includes ``datasets/`` as
#     ``xkron/_datasets``;
#  2. an editable / in-repo install, where ``datasets/`` sits next to the
#     ``xkron`` package directory.
# The wheel location is tried first: in a regular install ``parents[1]`` is
# ``site-packages`` and ``site-packages/datasets`` may be an unrelated package.
_CANDIDATE_DIRS: tuple[Path, ...] = (
    Path(__file__).parent / "_datasets",
    Path(__file__).resolve().parents[1] / "datasets",
)


def _resolve_data_dir() -> Path:
    """Return the first candidate directory that holds the bundled data file.

    Falls back to the in-repo location when none does; the loaders then raise
    a :class:`FileNotFoundError` naming every candidate.
    """
    for directory in _CANDIDATE_DIRS:
        if (directory / AIR_TEMPERATURE_FILE).is_file():
            return directory
    return _CANDIDATE_DIRS[-1]


DATA_DIR: Path = _resolve_data_dir()
"""Directory holding the bundled NetCDF files."""


def _data_path(filename: str) -> Path:
    """Return the path of a bundled data file or raise ``FileNotFoundError``."""
    for directory in (DATA_DIR, *_CANDIDATE_DIRS):
        path = directory / filename
        if path.is_file():
            return path
    searched = "\n".join(f"  - {d / filename}" for d in _CANDIDATE_DIRS)
    raise FileNotFoundError(
        f"Bundled dataset {filename!r} not found. Looked in:\n{searched}\n"
        "Install xkron from a wheel (which ships it as xkron/_datasets) or use "
        "an editable install of the repository (datasets/); regenerate it with "
        "`python datasets/make_datasets.py` if needed."
    )


def load_air_temperature() -> xr.DataArray:
    """Load annual near-surface air temperature over North America.

    A 240 x 19 x 25 (time x latitude x longitude) subset of the
    ``air_temperature`` variable of ``A1B_north_america.nc`` from the
    ``iris-sample-data`` package: Met Office Unified Model output for the
    SRES A1B scenario, annual means dated June 1st of each year 1860-2099 on
    a 360-day calendar, every second latitude (15N-60N, 2.5 degree step) and
    longitude (225E-315E, 3.75 degree step) of the original grid, in kelvin.

    The data are British Crown copyright and distributed under the Open
    Government Licence (see ``datasets/README.md``).

    Returns
    -------
    xr.DataArray
        ``air_temperature`` (float32, units ``"K"``) with dims
        ``("time", "latitude", "longitude")``. ``time`` holds
        :class:`cftime.Datetime360Day` objects. CF attributes and the NetCDF
        encodings are preserved; the data are fully loaded in memory and the
        file is closed.

    Raises
    ------
    FileNotFoundError
        If the bundled NetCDF file cannot be found.

    Examples
    --------
    >>> from xkron.datasets import load_air_temperature
    >>> da = load_air_temperature()
    >>> da.dims
    ('time', 'latitude', 'longitude')
    >>> da.shape
    (240, 19, 25)
    >>> da.attrs["units"], da["time"].dt.calendar
    ('K', '360_day')
    """
    path = _data_path(AIR_TEMPERATURE_FILE)
    decode_times = xr.coders.CFDatetimeCoder(use_cftime=True)
    with xr.open_dataset(path, decode_times=decode_times) as ds:
        da = ds["air_temperature"].load()
    return da


def seed_example() -> xr.Dataset:
    """Simulate the data of PyMC's "Kronecker Structured Covariances" example.

    Re-runs the data-simulation code of the PyMC example notebook
    ``examples/gaussian_processes/GP-Kron`` (pymc-examples, version updated
    in April 2024): a latent function drawn from a GP with
    covariance ``eta**2 * Matern52(ls=0.8, x1) * Cosine(ls=1.0, x2)`` on a
    50 x 30 grid over ``[0, 5] x [0, 3]``, plus Gaussian noise with standard
    deviation 0.5, using ``np.random.default_rng(sum(map(ord, "gpkron")))``.
    These data are simulated, not observed. The draw goes through
    :meth:`numpy.random.Generator.multivariate_normal`, which factorises the
    1500 x 1500 covariance with an SVD. That covariance is rank-deficient
    (the Cosine factor has rank 2), so the SVD's basis, and with it the draw,
    changes with the number of BLAS threads; the draw therefore runs with one
    BLAS thread (a local ``threadpool_limits``), which makes it independent of
    the machine's thread count and reproduces the optimum quoted in
    ``kronecker-notes.md`` (dense MAP ls1 ≈ 0.894, eta ≈ 0.873). It is still
    not guaranteed to be bit-identical across NumPy/LAPACK builds.

    Requires PyMC (imported lazily).

    Returns
    -------
    xr.Dataset
        Data variables ``y`` (noisy observations) and ``f_true`` (latent
        function), both float64 with dims ``("x1", "x2")`` and shape
        ``(50, 30)``; coordinates ``x1`` (50 points) and ``x2`` (30 points).
        The notebook's flat vectors follow ``pm.math.cartesian`` order
        (``x1`` varies slowest), so ``y.values.ravel()`` equals the notebook's
        ``y``. Attributes hold the true hyperparameters ``ls1_true``,
        ``ls2_true``, ``eta_true`` and ``sigma_true``, the ``seed`` and a
        ``description``.

    Examples
    --------
    >>> from xkron.datasets import seed_example
    >>> ds = seed_example()  # doctest: +SKIP
    >>> ds["y"].dims, ds["y"].shape  # doctest: +SKIP
    (('x1', 'x2'), (50, 30))
    >>> ds.attrs["sigma_true"]  # doctest: +SKIP
    0.5
    """
    import pymc as pm

    # --- verbatim recipe of the PyMC notebook ------------------------------
    seed = sum(map(ord, "gpkron"))
    rng = np.random.default_rng(seed)

    n1, n2 = 50, 30
    x1 = np.linspace(0, 5, n1)
    x2 = np.linspace(0, 3, n2)
    X = pm.math.cartesian(x1[:, None], x2[:, None])

    l1_true = 0.8
    l2_true = 1.0
    eta_true = 1.0
    cov = (
        eta_true**2 * pm.gp.cov.Matern52(2, l1_true, active_dims=[0]) * pm.gp.cov.Cosine(2, ls=l2_true, active_dims=[1])
    )
    K = cov(X).eval()
    with threadpool_limits(limits=1, user_api="blas"):
        f_true = rng.multivariate_normal(np.zeros(X.shape[0]), K, 1).flatten()

    sigma_true = 0.5
    y = f_true + sigma_true * rng.standard_normal(X.shape[0])
    # -----------------------------------------------------------------------

    dims = ("x1", "x2")
    return xr.Dataset(
        data_vars={
            "y": (dims, y.reshape(n1, n2), {"long_name": "noisy observations"}),
            "f_true": (dims, f_true.reshape(n1, n2), {"long_name": "latent GP"}),
        },
        coords={"x1": ("x1", x1), "x2": ("x2", x2)},
        attrs={
            "ls1_true": l1_true,
            "ls2_true": l2_true,
            "eta_true": eta_true,
            "sigma_true": sigma_true,
            "seed": seed,
            "description": (
                "Simulated data of PyMC's 'Kronecker Structured Covariances' "
                "example: f_true ~ GP(0, eta_true**2 * Matern52(ls=ls1_true, "
                "x1) * Cosine(ls=ls2_true, x2)) on a 50 x 30 grid, "
                "y = f_true + Normal(0, sigma_true); "
                'rng = np.random.default_rng(sum(map(ord, "gpkron"))).'
            ),
        },
    )
