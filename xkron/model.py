"""PyMC model building for Kronecker GPs (MarginalKron-style graphs).

Input: numeric arrays and a :class:`ModelSpec`; output: a :class:`pymc.Model` whose
observed variable's log-density is the exact Kronecker marginal likelihood
(:class:`xkron.ops.KronMarginalLogp`). Nothing here knows of xarray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from pymc_extras.prior import Prior

from xkron.grid import Factor
from xkron.ops import kron_marginal_logp

__all__ = ["ModelSpec", "build_marginal_model", "factor_params"]


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the model apart from the data.

    Parameters
    ----------
    factors : tuple of Factor
        The Kronecker factors, in the data's axis order.
    priors : dict
        One entry per model variable name (``ls_<dim>``, ``alpha_<factor>``,
        ``period_<factor>``, ``amplitude``, ``noise``, ``mean``): a number (fixed) or a
        :class:`~pymc_extras.prior.Prior`.
    """

    factors: tuple[Factor, ...]
    priors: dict[str, Any]

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for f in self.factors for d in f.dims)

    def free_names(self) -> list[str]:
        return [name for name, p in self.priors.items() if isinstance(p, Prior)]

    def fixed(self) -> dict[str, float]:
        return {name: float(p) for name, p in self.priors.items() if not isinstance(p, Prior)}


def factor_params(factor: Factor, values: Mapping[str, Any]) -> dict[str, Any]:
    """A factor's kernel parameters, picked by model variable name from ``values``."""
    params = {}
    for key, names in factor.param_names().items():
        params[key] = [values[n] for n in names] if isinstance(names, list) else values[names]
    return params


def _variable(name: str, spec):
    if isinstance(spec, Prior):
        return spec.create_variable(name)
    return pt.as_tensor_variable(np.float64(spec))


def build_marginal_model(y: np.ndarray, spec: ModelSpec) -> pm.Model:
    """PyMC model of ``y = mean + f + ε``, ``f ~ GP(0, η² ⊗k_i)``, ``ε ~ N(0, σ²)``.

    Parameters
    ----------
    y : ndarray
        Data tensor, one axis per grid dim in ``spec.dims`` order, all finite. It is
        reshaped to one axis per factor.
    spec : ModelSpec
        Factors and priors.

    Returns
    -------
    pymc.Model
        Free variables are the hyperparameters with priors; ``y`` is observed with the
        exact Kronecker log-likelihood.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.kernels import ExpQuad
    >>> f1 = Factor(("a",), ExpQuad(), (np.linspace(0, 1, 4),))
    >>> f2 = Factor(("b",), ExpQuad(), (np.linspace(0, 1, 3),))
    >>> spec = ModelSpec((f1, f2), {"ls_a": 0.5, "ls_b": 0.5, "amplitude": Prior("HalfNormal"),
    ...                             "noise": 0.1, "mean": 0.0})
    >>> model = build_marginal_model(np.zeros((4, 3)), spec)
    >>> [v.name for v in model.free_RVs]
    ['amplitude']
    """
    with pm.Model() as model:
        values = {name: _variable(name, p) for name, p in spec.priors.items()}
        factors = [f.covariance(factor_params(f, values), xp=pt) for f in spec.factors]
        eta, sigma = values["amplitude"], values["noise"]

        def logp(value, eta2, sigma2, mean, *factors):
            return kron_marginal_logp(value, factors, eta2, sigma2, mean)

        n = len(factors)
        signature = "(),(),()," + ",".join(f"(n{i},n{i})" for i in range(n))
        signature += "->(" + ",".join(f"n{i}" for i in range(n)) + ")"
        pm.CustomDist(
            "y",
            eta**2,
            sigma**2,
            values["mean"],
            *factors,
            logp=logp,
            signature=signature,
            observed=np.asarray(y, dtype=float).reshape([f.size for f in spec.factors]),
        )
    return model
