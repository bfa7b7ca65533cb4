"""What defines a Kronecker GP model apart from its data: :class:`ModelSpec`.

Every layer reads it (the PyMC builders of :mod:`xkron.models.build`, the array-level posteriors, the
results and their NetCDF form), so it lives here, apart from PyMC: building a spec or reading a
saved one imports neither PyMC nor PyTensor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xkron.spec.grid import Factor, restrict
from xkron.spec.likelihoods import Gaussian, Likelihood
from xkron.spec.prior_types import is_prior

__all__ = ["JITTER", "SOLVERS", "ModelSpec", "factor_params", "known_noise_var"]

SOLVERS = ("kronecker", "dense", "iterative")
"""Linear algebra of the Gaussian marginal model: the exact Kronecker eigenbasis (a complete grid
of observed cells with equal noise), exact Cholesky on the observed cells
(:class:`xkron.linalg.dense.DenseSystem`), or conjugate gradients with stochastic log-determinants
(:class:`xkron.linalg.iterative.IterativeSystem`)."""

JITTER = 1e-6
"""Added to the diagonal of each (unit-variance) factor before its Cholesky factor in the
latent model, as in ``pm.gp.LatentKron``: the factors of rank-deficient kernels (Cosine) are
singular. It is part of the model: the latent prior is ``η² ⊗(K_i + JITTER·I)``."""


@dataclass(frozen=True)
class ModelSpec:
    """Everything that defines the model apart from the data.

    Parameters
    ----------
    factors : tuple of Factor
        The Kronecker factors, in the data's axis order.
    priors : dict
        One entry per model variable name (``ls_<dim>``, ``alpha_<factor>``,
        ``period_<factor>``, ``amplitude``, ``mean`` and the likelihood's, e.g. ``noise``): a
        number (fixed) or a :class:`~pymc_extras.prior.Prior`.
    likelihood : Likelihood
        The observation model (default Gaussian); its data arrays (exposure, trials) are numpy
        arrays in factor shape.
    latent : bool
        Whiten and sample the latent field (always for non-Gaussian likelihoods); otherwise the
        Gaussian field is integrated out exactly.
    solver : {"kronecker", "dense", "iterative"}
        Linear algebra of the marginal model (:data:`SOLVERS`).
    solver_options : dict
        ``tol``, ``probes``, ``seed`` of the iterative solver.
    """

    factors: tuple[Factor, ...]
    priors: dict[str, Any]
    likelihood: Likelihood = field(default_factory=Gaussian)
    latent: bool = False
    solver: str = "kronecker"
    solver_options: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for f in self.factors for d in f.dims)

    def free_names(self) -> list[str]:
        return [name for name, p in self.priors.items() if is_prior(p)]

    def fixed(self) -> dict[str, float]:
        return {name: float(p) for name, p in self.priors.items() if not is_prior(p)}


def factor_params(factor: Factor, values: Mapping[str, Any]) -> dict[str, Any]:
    """A factor's kernel parameters, picked by model variable name from ``values``."""
    params = {}
    for key, names in factor.param_names().items():
        params[key] = [values[n] for n in names] if isinstance(names, list) else values[names]
    return params


def known_noise_var(spec: ModelSpec):
    """Known noise variance ``noise_sd²`` over the model's grid (a number when it is not per cell)."""
    sd = getattr(spec.likelihood, "noise_sd", None)
    if sd is None:
        return 0.0
    if np.ndim(sd) == 0:
        return float(sd) ** 2
    return np.square(restrict(np.asarray(sd, dtype=float), spec.factors))
