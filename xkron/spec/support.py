"""The support of a hyperparameter's prior, and the check that positive parameters get positive priors.

Lengthscales, periods, ``alpha``, the amplitude, the noise sd and the likelihoods' ``nu``,
``dispersion`` and ``shape`` must be > 0; only the constant mean is real. A prior such as
``Normal(-5, 0.1)`` on a lengthscale gives a MAP at ``ls = -5`` that reports success, so it
is refused up front.

The support comes from PyMC's own description of the distribution, not from a list of family
names: the variable is created in a throwaway model (no compile) and its default transform
read: ``log`` (positive families), ``logodds`` (the unit interval), ``interval`` (bounds
taken from the distribution's own parameters, recursively when those are priors
themselves), ``circular``, or none (the real line). A prior with a ``transform=`` or a
non-centred parameterisation is a deterministic function of other variables; its range is
found by evaluating that function over a grid spanning each input's support.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # PyMC is imported when a prior is built, not with xkron
    from pymc_extras.prior import Prior

__all__ = ["POSITIVE_EXAMPLES", "check_positive_prior", "prior_support"]

POSITIVE_EXAMPLES = "Prior('HalfNormal', sigma=1), Prior('Gamma', alpha=2, beta=1) or Prior('LogNormal', mu=0, sigma=1)"
"""Positive families to suggest in error messages."""

_GRID = np.concatenate([-np.logspace(8, -8, 33), [0.0], np.logspace(-8, 8, 33)])
"""Points spanning the real line (±1e-8 … ±1e8, log-spaced) at which a deterministic prior is evaluated."""

_MAX_GRID_INPUTS = 3
"""Deterministic priors of more random inputs than this are not evaluated (the grid grows as 67^k)."""


def prior_support(prior: Prior) -> tuple[float, float]:
    """``(lower, upper)`` bounds of the values a :class:`~pymc_extras.prior.Prior` can take.

    Examples
    --------
    >>> from pymc_extras.prior import Prior
    >>> prior_support(Prior("Gamma", alpha=2, beta=1))
    (0.0, inf)
    >>> prior_support(Prior("Uniform", lower=-1, upper=2))
    (-1.0, 2.0)
    >>> prior_support(Prior("Normal", mu=5, sigma=0.1))
    (-inf, inf)
    """
    import pymc as pm

    with pm.Model() as model:
        var = prior.create_variable("x")
    return _bounds(model, var)


def _constant(var) -> float | None:
    from pytensor.tensor import get_underlying_scalar_constant_value
    from pytensor.tensor.exceptions import NotScalarConstantError

    try:
        return float(get_underlying_scalar_constant_value(var))
    except (NotScalarConstantError, TypeError, ValueError):
        return None


def _bounds(model, var) -> tuple[float, float]:
    """Support of one variable of ``model``: a constant, a free random variable or a deterministic."""
    from pymc.distributions.transforms import CircularTransform, Interval, LogOddsTransform
    from pymc.logprob.transforms import LogTransform

    value = _constant(var)
    if value is not None:
        return value, value
    if var not in model.free_RVs:
        return _deterministic_bounds(model, var)
    transform = model.rvs_to_transforms.get(var)
    if isinstance(transform, LogTransform):
        return 0.0, np.inf
    if isinstance(transform, LogOddsTransform):
        return 0.0, 1.0
    if isinstance(transform, CircularTransform):
        return -np.pi, np.pi
    if isinstance(transform, Interval):
        lower, upper = transform.args_fn(*var.owner.inputs)
        low = -np.inf if lower is None else _bounds(model, lower)[0]
        high = np.inf if upper is None else _bounds(model, upper)[1]
        return low, high
    return -np.inf, np.inf


def _deterministic_bounds(model, var) -> tuple[float, float]:
    """Range of a function of free random variables, over a grid spanning each one's support."""
    import pytensor
    from pytensor.graph.replace import vectorize_graph
    from pytensor.graph.traversal import ancestors

    inputs = [rv for rv in model.free_RVs if rv in set(ancestors([var]))]
    if not inputs or len(inputs) > _MAX_GRID_INPUTS:
        return -np.inf, np.inf
    grids = []
    for rv in inputs:
        low, high = _bounds(model, rv)
        points = _GRID[(_GRID >= low) & (_GRID <= high)]
        grids.append(np.unique(np.concatenate([points, [v for v in (low, high) if np.isfinite(v)]])))
    combos = np.array(list(itertools.product(*grids)), dtype=float)
    replace = {rv: pytensor.tensor.constant(combos[:, k].astype(rv.dtype)) for k, rv in enumerate(inputs)}
    values = np.asarray(vectorize_graph(var, replace).eval(), dtype=float)
    values = values[~np.isnan(values)]
    return (float(values.min()), float(values.max())) if values.size else (-np.inf, np.inf)


def check_positive_prior(name: str, prior: Prior, what: str) -> None:
    """Refuse a prior for a positive parameter ``name`` that can take values <= 0 (or is discrete).

    Parameters
    ----------
    name : str
        The model variable (``ls_time``, ``noise``, ...), named in the message.
    prior : Prior
        The user's prior.
    what : str
        What the parameter is (``"a lengthscale"``), for the message.

    Raises
    ------
    ValueError
        If the prior's support reaches below 0.
    """
    lower, upper = prior_support(prior)
    if lower >= 0:
        return
    raise ValueError(
        f"{name}={prior} has support [{lower:g}, {upper:g}], but {name} is {what} and must be > 0: "
        f"a prior that allows values <= 0 lets the fit return a meaningless {name} <= 0. Use a positive family "
        f"such as {POSITIVE_EXAMPLES}."
    )
