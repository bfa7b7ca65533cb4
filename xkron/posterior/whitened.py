"""The GP posterior with a noise sd per label of one factor (``Coregion(noise=True)``), by whitening.

With ``τ_v`` the noise sd of label ``v`` (its own noise, with the shared and equal known noise
added in quadrature) and ``S = diag(τ)`` along that factor's axis, the data's covariance is
``S (η² S⁻¹BS⁻¹ ⊗ K + I) S``. So the GP given ``y`` is ``μ + S f̃``, with ``f̃`` the unit-noise GP
with factor ``S⁻¹BS⁻¹`` (:meth:`xkron.spec.coregion.Coregion.whitened`) given ``(y − μ)/τ``: its
mean and sd scale by ``τ`` at each test label, its draws too, and its leave-one-out densities shift
by ``− log τ``. :class:`WhitenedPosterior` wraps the whitened problem's own posterior, exact
Kronecker on complete grids (:class:`~xkron.posterior.conditional.KronPosterior`) or on the observed
cells (:class:`~xkron.posterior.observed.ObservedPosterior`, equal noise: the Schur complement
and its preconditioners), so nothing here solves anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np

from xkron.posterior.conditional import KronPosterior, TestInputs, place_axes
from xkron.posterior.observed import ObservedPosterior
from xkron.spec.grid import Factor
from xkron.spec.solver import Solver

__all__ = ["WhitenedPosterior"]


@dataclass(frozen=True)
class WhitenedPosterior:
    """``μ + S f̃``: the posterior of a GP whose labels along ``axis`` have their own noise sd.

    ``inner`` is the unit-noise posterior of the whitened data, ``factors`` its factors (the one at
    ``axis`` whitened; :func:`xkron.results.components.component_means` swaps the others), ``values``
    the fit's hyperparameters, ``sd`` the total noise sd ``τ`` per label and ``own_var`` the labels'
    own noise variances (what ``noise=True`` adds besides ``σ²``).

    Examples
    --------
    >>> from xkron.spec.coregion import Coregion
    >>> from xkron.spec.kernels import ExpQuad
    >>> k = Coregion(rank=1, noise=True).bind(["a", "b"])
    >>> f = (Factor(("v",), k, (np.arange(2.0),)), Factor(("x",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"W_v_a_1": 1.0, "W_v_b_1": 0.5, "kappa_v_a": 0.1, "kappa_v_b": 0.1, "ls_x": 0.5,
    ...           "amplitude": 1.0, "noise": 0.0, "mean": 0.0}
    >>> y = np.array([[0.5, 0.4, 0.1, -0.2], [1.0, -1.0, 0.3, 0.0]])
    >>> post = WhitenedPosterior.condition(y, f, values, 0, np.array([0.01, 1.0]))
    >>> mean, var = post.moments([TestInputs("v", (np.arange(2.0),)), TestInputs("x", (np.linspace(0, 1, 4),))], "vx")
    >>> bool(var[0, 0] < var[1, 0])   # the noisier variable is known less well
    True
    """

    kind: ClassVar[str] = "whitened"

    inner: KronPosterior | ObservedPosterior
    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    axis: int
    sd: np.ndarray
    own_var: np.ndarray

    @classmethod
    def condition(
        cls,
        y,
        factors: Sequence[Factor],
        values: Mapping[str, float],
        axis: int,
        own_var: np.ndarray,
        known_var: float = 0.0,
        solver: Solver | None = None,
    ) -> WhitenedPosterior:
        """Condition on ``y`` (one axis per factor; dask stays lazy on complete grids) at ``values``.

        ``own_var`` is each label's own noise variance along ``axis``, ``known_var`` an equal known
        noise variance; ``solver`` the fit's (``"kronecker"`` or ``"iterative"``, or ``None``: Kronecker).
        """
        own_var = np.asarray(own_var, dtype=float)
        sd = np.sqrt(own_var + values["noise"] ** 2 + known_var)
        white = list(factors)
        white[axis] = replace(factors[axis], kernel=factors[axis].kernel.whitened(sd))
        along = [-1 if k == axis else 1 for k in range(len(factors))]
        y_white = (y.reshape([f.size for f in factors]) - values["mean"]) / sd.reshape(along)
        unit = {**values, "noise": 1.0, "mean": 0.0}
        if solver is None or solver.name == "kronecker":
            inner = KronPosterior.condition(y_white, white, unit)
        else:
            inner = ObservedPosterior.condition(y_white, white, unit, solver=solver)
        return cls(inner, tuple(white), dict(values), axis, sd, own_var)

    def _inner(self):
        """The whitened posterior with :attr:`factors` (one of them swapped for a component's part)."""
        return self.inner if self.inner.factors == self.factors else replace(self.inner, factors=self.factors)

    def scale_at(self, test: TestInputs, out_order: str) -> np.ndarray:
        """``τ`` at the test labels of the whitened factor, placed along ``out_order``."""
        return place_axes(self.sd[np.asarray(test.values[0]).astype(int)], test.labels, out_order)

    def mean(self, tests: Sequence[TestInputs], out_order: str) -> np.ndarray:
        """Posterior mean ``μ + τ m̃`` at the test inputs."""
        return self.values["mean"] + self.scale_at(tests[self.axis], out_order) * self._inner().mean(tests, out_order)

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Posterior mean and variance; ``noise`` adds ``σ²`` and each label's own noise variance."""
        mean, var = self._inner().moments(tests, out_order)
        scale = self.scale_at(tests[self.axis], out_order)
        var = scale**2 * var
        if noise:
            test = tests[self.axis]
            own = place_axes(self.own_var[np.asarray(test.values[0]).astype(int)], test.labels, out_order)
            var = var + self.values["noise"] ** 2 + own
        return self.values["mean"] + scale * mean, np.broadcast_to(var, np.shape(mean))

    def scale_fields(self, fields, tests: Sequence[Sequence[np.ndarray]]):
        """Draws ``(n, m_1, …, m_D)`` of ``f̃`` made draws of ``f``: ``μ + τ f̃`` at the test labels."""
        labels = np.asarray(tests[self.axis][0]).astype(int)
        shape = [-1 if k == self.axis + 1 else 1 for k in range(np.ndim(fields))]
        return self.values["mean"] + self.sd[labels].reshape(shape) * fields
