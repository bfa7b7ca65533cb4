"""What the iterative solver did at a fit's optimum, for the fit's report: :func:`solver_report`.

The MAP optimiser sees only numbers; which formulation of the iterative solver ran
(:func:`xkron.linalg.systems.choose_formulation`), how many CG iterations it took and how
large the Monte Carlo error of its log-likelihood is are read once more at the optimum, with
the fit's own solver settings, and kept in ``fit.optimizer["solver"]`` (saved with the fit,
shown by ``repr(fit)``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from xkron.linalg.systems import make_system
from xkron.spec.modelspec import ModelSpec, factor_params

__all__ = ["solver_report"]


def solver_report(spec: ModelSpec, y_model: np.ndarray, values: Mapping[str, float]) -> dict | None:
    """The iterative solver's formulation, CG iterations, residual and ``logp`` standard error at ``values``.

    ``None`` for the exact solvers (Kronecker, dense) and for latent models, which have nothing
    to report. ``values`` are the free hyperparameters; the fixed ones come from ``spec``.
    """
    if spec.latent or spec.solver.name != "iterative":
        return None
    values = {**spec.fixed(), **values}
    Ks = [f.covariance(factor_params(f, values)) for f in spec.factors]
    y = np.asarray(y_model, dtype=float).reshape([f.size for f in spec.factors])
    noise, mean = np.broadcast_to(spec.known_noise_var(), y.shape) + values["noise"] ** 2, values["mean"]
    axis = spec.own_noise_axis()
    if axis is not None:  # the system the fit solved: whitened by each label's noise sd, unit noise
        tau = np.sqrt(np.ravel(spec.own_noise_var(values)) + values["noise"] ** 2 + spec.equal_noise_var())
        Ks[axis] = Ks[axis] / np.multiply.outer(tau, tau)
        y, noise, mean = (y - mean) / tau.reshape([-1 if k == axis else 1 for k in range(y.ndim)]), 1.0, 0.0
    observed = np.isfinite(y)
    result = make_system(spec.solver, Ks, values["amplitude"] ** 2, noise, observed).loglik(y, mean)
    return {
        "formulation": result.formulation,
        "preconditioner": result.preconditioner,
        "cg_iterations": int(result.cg.iterations),
        "cg_residual": float(result.cg.residual),
        "cg_converged": bool(result.cg.converged),
        "logp_se": float(result.logp_se),
        "observed_cells": int(observed.sum()),
    }
