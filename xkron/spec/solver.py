"""Which linear algebra the Gaussian marginal model uses, and with what settings: :class:`Solver`.

The solver is chosen once, when a fit is prepared (:func:`xkron.inference.prepare.prepare`),
and travels in :attr:`xkron.spec.modelspec.ModelSpec.solver` to every place that conditions
or evaluates the model: the PyMC Op (:mod:`xkron.models.ops`), the per-draw posteriors of a
result, and the saved file (as ``solver`` and ``solver_options``, :meth:`Solver.options`).
:func:`xkron.linalg.systems.make_system` builds the matching linear system.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from xkron.settings import CG_MAX_ITER, CG_TOL, DENSE_MAX_CELLS, LANCZOS_AUTO_CELLS, VARIANCE_SAMPLES, VARIANCE_TOL
from xkron.spec.grid import restrict

__all__ = ["FORMULATIONS", "SOLVERS", "VARIANCES", "Solver", "choose_solver", "variance_method"]

SOLVERS = ("kronecker", "dense", "iterative")
"""Linear algebra of the Gaussian marginal model: the exact Kronecker eigenbasis (a complete grid
of observed cells with equal noise), exact Cholesky on the observed cells
(:class:`xkron.linalg.dense.DenseSystem`), or conjugate gradients with stochastic log-determinants
(:class:`xkron.linalg.iterative.IterativeSystem`)."""


FORMULATIONS = ("auto", "missing", "observed")
"""How the iterative solver handles missing cells: the Schur complement on the *missing* cells
(few missing), conjugate gradients on the *observed* cells (most of the grid missing: land plus
clouds), or ``"auto"``: the cheaper one for the data (:func:`xkron.linalg.systems.make_system`)."""

VARIANCES = ("auto", "sampled", "lanczos")
"""How the iterative solver's predicted variance is computed: Monte Carlo draws with a Kronecker
control variate, Lanczos (LOVE) with a rigorous error bracket, stopped when the sd is within
``variance_tol`` (:func:`xkron.linalg.love.lanczos_variance`), or ``"auto"`` (the default): Lanczos
up to :data:`~xkron.settings.LANCZOS_AUTO_CELLS` observed cells, Monte Carlo above. Its steps grow
with the number of smooth directions the observed field has: it closes within a few hundred steps
on a few thousand observed cells, and spends its budget before the bracket closes on tens of
thousands (tutorial 4's OSTIA window; ``tests/benchmarks/README.md``)."""


def variance_method(requested: str, n_observed: int) -> str:
    """The predicted-variance method that runs: ``requested``, or for ``"auto"`` Lanczos on small grids.

    Examples
    --------
    >>> variance_method("auto", 3_000), variance_method("auto", 30_000), variance_method("sampled", 10)
    ('lanczos', 'sampled', 'sampled')
    """
    if requested != "auto":
        return requested
    return "lanczos" if n_observed <= LANCZOS_AUTO_CELLS else "sampled"


@dataclass(frozen=True, eq=False)
class Solver:
    """A solver by name, with the settings the iterative one reads (``fit(solver_options=...)``).

    A ``Solver`` compares equal to another with the same name and settings, and to its name
    as a string (``spec.solver == "dense"``), so that code and tests may ask which solver a
    fit uses without caring for its settings. It is hashable (a PyTensor Op keeps it as a prop).

    Parameters
    ----------
    name : {"kronecker", "dense", "iterative"}
        See :data:`SOLVERS`.
    tol : float
        Relative residual at which every CG solve stops.
    probes : int or None
        Probes per stochastic estimate (log-determinant and its gradient); ``None``: the
        formulation's default (:data:`~xkron.settings.CG_PROBES` for the Schur complement on the
        missing cells, :data:`~xkron.settings.OBSERVED_PROBES` for CG on the observed cells).
    seed : int
        Seed of the probes and of the Monte Carlo variance draws: fits are reproducible.
    max_iter : int
        CG iteration cap.
    variance_samples : int
        Monte Carlo draws behind a predicted sd (:func:`xkron.posterior.observed.sampled_variance`).
    formulation : {"auto", "missing", "observed"}
        See :data:`FORMULATIONS`.
    variance : {"auto", "sampled", "lanczos"}
        See :data:`VARIANCES` and :func:`variance_method`.
    variance_tol : float
        With ``variance="lanczos"``: the bound on the relative error of the predicted sd at every
        cell at which Lanczos stops (:func:`xkron.linalg.love.lanczos_variance`; its bracket is rigorous).
    variance_steps : int or None
        With ``variance="lanczos"``: the most Lanczos steps (None: as many as
        :data:`xkron.settings.LANCZOS_MAX_BYTES` of basis allow, at most
        :data:`xkron.settings.LANCZOS_MAX_STEPS`); spending them warns with the bound reached.

    Examples
    --------
    >>> solver = Solver.from_options("iterative", {"probes": 16})
    >>> solver.probes, solver == "iterative", solver.options()
    (16, True, {'probes': 16})
    """

    name: str = "kronecker"
    tol: float = CG_TOL
    probes: int | None = None
    seed: int = 0
    max_iter: int = CG_MAX_ITER
    variance_samples: int = VARIANCE_SAMPLES
    formulation: str = "auto"
    variance: str = "auto"
    variance_tol: float = VARIANCE_TOL
    variance_steps: int | None = None

    def __post_init__(self) -> None:
        if self.name not in SOLVERS:
            raise ValueError(f"solver={self.name!r} is not one of {SOLVERS}")
        if self.formulation not in FORMULATIONS:
            raise ValueError(f"solver_options formulation={self.formulation!r} is not one of {FORMULATIONS}")
        if self.variance not in VARIANCES:
            raise ValueError(f"solver_options variance={self.variance!r} is not one of {VARIANCES}")
        if not (isinstance(self.variance_tol, int | float) and self.variance_tol > 0):
            raise ValueError(f"solver_options variance_tol={self.variance_tol!r} must be a positive number, e.g. 0.01")
        steps = self.variance_steps
        if steps is not None and not (
            isinstance(steps, int | np.integer) and not isinstance(steps, bool) and steps > 0
        ):
            raise ValueError(f"solver_options variance_steps={steps!r} must be a positive integer or None")

    @classmethod
    def from_options(cls, name: str, options: Mapping[str, Any] | None = None) -> Solver:
        """The solver ``name`` with ``solver_options`` (as given to ``fit`` or read from a file)."""
        return cls(name, **dict(options or {}))

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """The ``solver_options`` keys (every setting but the name)."""
        return tuple(f.name for f in fields(cls) if f.name != "name")

    def options(self) -> dict[str, Any]:
        """The settings that differ from the defaults: ``solver_options`` as a fit file stores them."""
        settings = {f.name: (getattr(self, f.name), f.default) for f in fields(self) if f.name != "name"}
        return {name: value for name, (value, default) in settings.items() if value != default}

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            return self.name == other
        if isinstance(other, Solver):
            return self._key() == other._key()
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.name)  # equal to its name, so hashed as it

    def __str__(self) -> str:
        return self.name


def choose_solver(requested: str, seen: np.ndarray, noise_sd, factors, where) -> str:
    """The marginal model's solver: ``requested``, or by cost for ``"auto"`` (see :func:`xkron.fit`).

    ``seen`` marks the observed cells over the whole grid, ``noise_sd`` is the known per-cell sd
    over it (or ``None``), ``factors`` are already cut to the inputs observed somewhere
    (:func:`xkron.spec.grid.hull_factors`) and ``where`` names cells in errors
    (:func:`xkron.spec.validation.cell_locator`). A fit chooses here, and so does
    :meth:`xkron.KronFit.condition` for the grid it conditions on.
    """
    inside = restrict(seen, factors)
    sd = None if noise_sd is None or np.ndim(noise_sd) == 0 else restrict(noise_sd, factors)[inside]
    equal_noise = sd is None or bool(np.all(sd == sd.flat[0]))
    kronecker = bool(inside.all()) and equal_noise
    if requested == "kronecker" and not kronecker:
        kept = [np.isin(np.arange(f.full_size), f.subset) if f.subset is not None else None for f in factors]
        hull = np.ones([f.full_size for f in factors], dtype=bool)
        for axis, k in enumerate(kept):
            if k is not None:
                hull &= k.reshape([-1 if a == axis else 1 for a in range(len(kept))])
        holes = hull.reshape(seen.shape) & ~seen
        reason = (
            f"data has {int(holes.sum())} NaN or masked cell(s) inside the grid of observed inputs, at {where(holes)}"
            if holes.any()
            else "noise_sd differs between cells"
        )
        raise ValueError(
            f"solver='kronecker' needs a complete grid of observed cells with equal noise, but {reason}. "
            "Use solver='auto' (dense or iterative, both handle any pattern), or fill the cells "
            "(da.interpolate_na(dim))."
        )
    if requested != "auto":
        return requested
    if kronecker:
        return "kronecker"
    return "dense" if int(inside.sum()) <= DENSE_MAX_CELLS else "iterative"
