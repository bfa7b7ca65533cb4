"""xkron: exact Kronecker-structured Gaussian processes on xarray grids.

Importing xkron registers the ``.kron`` accessor on ``xarray.DataArray`` and
``xarray.Dataset``; everything else (and PyMC with it) is imported on first use.
"""

from typing import TYPE_CHECKING

from xkron import accessor as _accessor  # noqa: F401  (registers .kron)

if TYPE_CHECKING:
    from xkron.batch import BatchError, BatchFit
    from xkron.cost import CostError, CostWarning
    from xkron.fitting import fit
    from xkron.io import open_fit
    from xkron.kernels import Cosine, ExpQuad, Independent, Kernel, Matern12, Matern32, Matern52, Periodic, RatQuad
    from xkron.likelihoods import Bernoulli, Binomial, Gamma, Gaussian, Likelihood, NegativeBinomial, Poisson, StudentT
    from xkron.optimize import ConvergenceWarning
    from xkron.result import KronFit

_WHERE = {
    "BatchError": "batch",
    "BatchFit": "batch",
    "CostError": "cost",
    "CostWarning": "cost",
    "ConvergenceWarning": "optimize",
    "fit": "fitting",
    "open_fit": "io",
    "KronFit": "result",
    **dict.fromkeys(
        ["Cosine", "ExpQuad", "Independent", "Kernel", "Matern12", "Matern32", "Matern52", "Periodic", "RatQuad"],
        "kernels",
    ),
    **dict.fromkeys(
        ["Bernoulli", "Binomial", "Gamma", "Gaussian", "Likelihood", "NegativeBinomial", "Poisson", "StudentT"],
        "likelihoods",
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
