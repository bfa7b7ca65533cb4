"""xkron: exact Kronecker-structured Gaussian processes on xarray grids.

Importing xkron registers the ``.kron`` accessor on ``xarray.DataArray`` and
``xarray.Dataset``.
"""

from xkron import accessor as _accessor  # noqa: F401  (registers .kron)
from xkron.batch import BatchError, BatchFit
from xkron.cost import CostError, CostWarning
from xkron.fitting import ConvergenceWarning, fit
from xkron.io import open_fit
from xkron.kernels import Cosine, ExpQuad, Independent, Kernel, Matern12, Matern32, Matern52, Periodic, RatQuad
from xkron.likelihoods import Bernoulli, Binomial, Gamma, Gaussian, Likelihood, NegativeBinomial, Poisson, StudentT
from xkron.result import KronFit

__version__ = "0.1.0"

__all__ = [
    "BatchError",
    "BatchFit",
    "Bernoulli",
    "Binomial",
    "ConvergenceWarning",
    "Cosine",
    "CostError",
    "CostWarning",
    "ExpQuad",
    "Gamma",
    "Gaussian",
    "Independent",
    "Kernel",
    "KronFit",
    "Likelihood",
    "Matern12",
    "Matern32",
    "Matern52",
    "NegativeBinomial",
    "Periodic",
    "Poisson",
    "RatQuad",
    "StudentT",
    "fit",
    "open_fit",
]
