"""What defines a Kronecker GP model apart from its data: :class:`ModelSpec`.

Every layer reads it (the PyMC builders of :mod:`xkron.models.build`, the array-level posteriors, the
results and their NetCDF form), so it lives here, apart from PyMC: building a spec or reading a
saved one imports neither PyMC nor PyTensor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from xkron.spec.coords import CoordEncoding
from xkron.spec.grid import Factor, restrict
from xkron.spec.likelihoods import Gaussian, Likelihood
from xkron.spec.prior_types import is_prior
from xkron.spec.solver import Solver

__all__ = ["JITTER", "ModelSpec", "coord_factors", "factor_params"]

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
    solver : Solver
        Linear algebra of the marginal model and its settings (:data:`xkron.spec.solver.SOLVERS`), decided once
        when the fit is prepared; a latent model always uses the Kronecker one.
    """

    factors: tuple[Factor, ...]
    priors: dict[str, Any]
    likelihood: Likelihood = field(default_factory=Gaussian)
    latent: bool = False
    solver: Solver = field(default_factory=Solver)

    def __post_init__(self) -> None:
        if not isinstance(self.solver, Solver):
            raise TypeError(f"solver must be a Solver (Solver.from_options(name, options)), not {self.solver!r}")
        if self.latent and self.solver.name != "kronecker":
            raise ValueError(f"a latent model uses the Kronecker factorisation of its prior, not solver={self.solver}")

    @property
    def dims(self) -> tuple[str, ...]:
        return tuple(d for f in self.factors for d in f.dims)

    def free_names(self) -> list[str]:
        return [name for name, p in self.priors.items() if is_prior(p)]

    def fixed(self) -> dict[str, float]:
        return {name: float(p) for name, p in self.priors.items() if not is_prior(p)}

    @property
    def known_noise_sd(self) -> Any:
        """The known measurement-error sd (``fit(noise_sd=...)``): ``None``, a number, or an array
        in factor shape; only the Gaussian likelihood has one."""
        return getattr(self.likelihood, "noise_sd", None)

    @property
    def per_cell_noise(self) -> bool:
        """Whether the known noise differs between cells (an array, not one number): the
        Kronecker eigenbasis then no longer diagonalises the covariance."""
        return np.ndim(self.known_noise_sd) > 0

    def known_noise_var(self):
        """Known noise variance ``noise_sd²`` over the model's grid (a number when it is not per cell)."""
        sd = self.known_noise_sd
        if sd is None:
            return 0.0
        if np.ndim(sd) == 0:
            return float(sd) ** 2
        return np.square(restrict(np.asarray(sd, dtype=float), self.factors))

    def cell_data(self) -> dict[str, Any]:
        """The likelihood's per-cell data (``exposure``, ``trials``, ``noise_sd``) in factor shape, or numbers."""
        shape = [f.size for f in self.factors]
        out = {}
        for name in self.likelihood.data_fields:
            value = getattr(self.likelihood, name)
            if value is not None:
                out[name] = np.asarray(value, dtype=float).reshape(shape) if np.ndim(value) else float(value)
        return out

    def own_noise_axis(self) -> int | None:
        """The axis of the factor whose labels have their own noise sd (``Coregion(noise=True)``), or ``None``."""
        return next((i for i, f in enumerate(self.factors) if f.kernel.own_noise), None)

    def own_noise_var(self, values, xp=np):
        """Each cell's own noise variance along :meth:`own_noise_axis`, shaped to broadcast over the grid."""
        axis = self.own_noise_axis()
        factor = self.factors[axis]
        var = factor.kernel.noise_variances(factor_params(factor, values), xp=xp)
        return var.reshape([-1 if k == axis else 1 for k in range(len(self.factors))])

    def equal_noise_var(self) -> float:
        """The known noise variance added to every cell where it is equal (the Kronecker solver)."""
        return float(np.max(self.known_noise_var()))


def factor_params(factor: Factor, values: Mapping[str, Any]) -> dict[str, Any]:
    """A factor's kernel parameters, picked by model variable name from ``values``."""
    params = {}
    for key, names in factor.param_names().items():
        params[key] = [values[n] for n in names] if isinstance(names, list) else values[names]
    return params


def coord_factors(
    layout: Iterable[tuple[tuple[str, ...], Any, Any]],
    data,
    encodings: Mapping[str, CoordEncoding],
    positions: Iterable[str] = (),
) -> tuple[Factor, ...]:
    """Factors whose inputs are the data's coordinates through their encodings.

    Fitting, conditioning on other data and reading a saved fit all turn labelled coordinates
    into a factor's numeric inputs this one way. ``layout`` gives ``(dims, kernel, subset)``
    per factor; a dim in ``positions`` (an :class:`~xkron.spec.kernels.Independent` factor's
    replicate labels) or without a coordinate takes its positions ``0..n-1``.
    """
    positions = set(positions)

    def inputs(dim: str) -> np.ndarray:
        if dim in positions or dim not in data.coords:
            return np.arange(data.sizes[dim], dtype=np.float64)
        return encodings[dim].encode(data[dim].values, dim=dim)

    return tuple(Factor(tuple(dims), kernel, tuple(inputs(d) for d in dims), subset) for dims, kernel, subset in layout)
