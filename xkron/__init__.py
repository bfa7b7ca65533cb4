"""xkron: exact Kronecker-structured Gaussian processes on xarray grids.

Importing xkron registers the ``.kron`` accessor on ``xarray.DataArray`` and
``xarray.Dataset``, and loads ``scipy.linalg`` (whose LAPACK does xkron's decompositions): its
own OpenBLAS, separate from numpy's, is then loaded when a user's ``threadpool_limits(...)``
after ``import xkron`` runs, so the limit reaches it (a library loaded later keeps all its
threads). Everything else (and PyMC with it) is imported on first use.
"""

from typing import TYPE_CHECKING

import scipy.linalg  # noqa: F401  (see the module docstring)

from xkron import accessor as _accessor  # noqa: F401  (registers .kron)

if TYPE_CHECKING:
    from xkron.api import fit
    from xkron.crossval.run import cross_validate
    from xkron.errors import (
        BatchError,
        ConvergenceWarning,
        CostError,
        CostWarning,
        ExtrapolationWarning,
        NotAFitError,
    )
    from xkron.results.batch import BatchFit
    from xkron.results.fit import KronFit
    from xkron.results.saved import open_fit
    from xkron.spec.coregion import Coregion
    from xkron.spec.kernel_base import Product, Scaled, Sum
    from xkron.spec.kernels import Cosine, ExpQuad, Independent, Kernel, Matern12, Matern32, Matern52, Periodic, RatQuad
    from xkron.spec.latitude_kernels import Meridional, PolarWeight
    from xkron.spec.likelihoods import (
        Bernoulli,
        Binomial,
        Gamma,
        Gaussian,
        Likelihood,
        NegativeBinomial,
        Poisson,
        StudentT,
    )
    from xkron.spec.seasonal import seasonal_kernel, year_length
    from xkron.spec.spectral_mixture import SpectralMixture
    from xkron.spec.sphere_kernels import Circular, Spherical
    from xkron.spec.trend_kernels import Linear, Polynomial, WhiteNoise

_WHERE = {
    "fit": "api",
    "cross_validate": "crossval.run",
    "open_fit": "results.saved",
    "KronFit": "results.fit",
    "BatchFit": "results.batch",
    **dict.fromkeys(
        ["BatchError", "ConvergenceWarning", "CostError", "CostWarning", "ExtrapolationWarning", "NotAFitError"],
        "errors",
    ),
    **dict.fromkeys(
        ["Cosine", "ExpQuad", "Independent", "Kernel", "Matern12", "Matern32", "Matern52", "Periodic", "RatQuad"],
        "spec.kernels",
    ),
    **dict.fromkeys(["Product", "Scaled", "Sum"], "spec.kernel_base"),
    "SpectralMixture": "spec.spectral_mixture",
    **dict.fromkeys(["Circular", "Spherical"], "spec.sphere_kernels"),
    **dict.fromkeys(["Meridional", "PolarWeight"], "spec.latitude_kernels"),
    "Coregion": "spec.coregion",
    **dict.fromkeys(["seasonal_kernel", "year_length"], "spec.seasonal"),
    **dict.fromkeys(["Linear", "Polynomial", "WhiteNoise"], "spec.trend_kernels"),
    **dict.fromkeys(
        ["Bernoulli", "Binomial", "Gamma", "Gaussian", "Likelihood", "NegativeBinomial", "Poisson", "StudentT"],
        "spec.likelihoods",
    ),
}
"""Module of each public name. They are imported on first use (PEP 562), so ``import xkron``
and the CLI's ``--help`` load neither PyMC nor PyTensor; a fit loads them."""


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f"xkron.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xkron' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "BatchFit",
    "Bernoulli",
    "Binomial",
    "Circular",
    "ConvergenceWarning",
    "Coregion",
    "Cosine",
    "CostError",
    "CostWarning",
    "ExpQuad",
    "ExtrapolationWarning",
    "Gamma",
    "Gaussian",
    "Independent",
    "Kernel",
    "KronFit",
    "Likelihood",
    "Linear",
    "Matern12",
    "Matern32",
    "Matern52",
    "Meridional",
    "NegativeBinomial",
    "NotAFitError",
    "Periodic",
    "Poisson",
    "PolarWeight",
    "Polynomial",
    "Product",
    "RatQuad",
    "Scaled",
    "SpectralMixture",
    "Spherical",
    "StudentT",
    "Sum",
    "WhiteNoise",
    "cross_validate",
    "fit",
    "open_fit",
    "seasonal_kernel",
    "year_length",
]
