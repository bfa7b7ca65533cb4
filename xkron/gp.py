"""Array-level Kronecker GP posterior at fixed hyperparameters: conditioning and prediction.

Prediction never forms an N×M or N×N matrix. With ``A_i = K*_i Q_i`` (test-by-train
cross-covariance of factor ``i`` rotated into its eigenbasis):

- ``mean = μ + η² (α̃ ×_1 A_1 ... ×_D A_D)``
- ``var(f*) = η² ∏ k**_i − η⁴ (W ×_1 (A_1∘A_1) ... ×_D (A_D∘A_D))``, using
  ``(⊗A_i)∘(⊗A_i) = ⊗(A_i∘A_i)``; observation noise adds ``σ²``.

Test inputs are described per factor by output-axis labels (see
:func:`xkron.kronecker.kron_contract`): a factor whose test inputs vary along its own
labels gives a grid; factors that share a label give scattered points.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xkron.grid import Factor
from xkron.kronecker import KronEigen, kron_contract, marginal_loglik
from xkron.model import factor_params

__all__ = ["KronPosterior", "TestInputs", "place_axes"]


@dataclass(frozen=True)
class TestInputs:
    """Test inputs of one factor.

    Parameters
    ----------
    labels : str
        Output-axis labels (one character each) along which the inputs vary.
    values : tuple of ndarray
        One array per dim of the factor, each of shape ``[sizes of labels]``.
    """

    labels: str
    values: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class KronPosterior:
    """A Gaussian-noise Kronecker GP conditioned on complete grid data.

    Build it with :meth:`condition`; then :meth:`moments` predicts anywhere.

    Examples
    --------
    >>> import numpy as np
    >>> from xkron.kernels import ExpQuad
    >>> f = (Factor(("a",), ExpQuad(), (np.linspace(0, 1, 5),)),
    ...      Factor(("b",), ExpQuad(), (np.linspace(0, 1, 4),)))
    >>> values = {"ls_a": 0.3, "ls_b": 0.5, "amplitude": 1.0, "noise": 0.1, "mean": 0.0}
    >>> post = KronPosterior.condition(np.zeros((5, 4)), f, values)
    >>> mean, var = post.moments([TestInputs("p", (np.array([0.5]),)),
    ...                           TestInputs("p", (np.array([0.5]),))], "p")
    >>> float(mean[0]), bool(var[0] < 0.01)
    (0.0, True)
    """

    factors: tuple[Factor, ...]
    values: Mapping[str, float]
    eigen: KronEigen
    alpha_tilde: np.ndarray
    inv_diag: np.ndarray

    @classmethod
    def condition(cls, y: np.ndarray, factors: Sequence[Factor], values: Mapping[str, float]) -> KronPosterior:
        """Condition on ``y`` (one axis per grid dim) at hyperparameter ``values``."""
        Ks = [f.covariance(factor_params(f, values)) for f in factors]
        y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
        eta2, sigma2 = values["amplitude"] ** 2, values["noise"] ** 2
        ll = marginal_loglik(y, Ks, eta2, sigma2, values["mean"])
        return cls(tuple(factors), dict(values), ll.eigen, ll.alpha_tilde, ll.inv_diag)

    def moments(self, tests: Sequence[TestInputs], out_order: str, noise: bool = False):
        """Posterior mean and variance at the test inputs, as arrays over ``out_order``.

        Parameters
        ----------
        tests : sequence of TestInputs
            One per factor.
        out_order : str
            Output-axis labels in the order of the result's axes.
        noise : bool
            Add the observation noise ``σ²`` to the variance (predictive of ``y``).
        """
        eta2 = self.values["amplitude"] ** 2
        cross, prior_var = [], eta2
        for factor, test, Q in zip(self.factors, tests, self.eigen.vectors, strict=True):
            params = factor_params(factor, self.values)
            cross.append(factor.covariance(params, test=test.values) @ Q)
            shape = np.broadcast_shapes(*(np.shape(v) for v in test.values))
            prior_var = prior_var * place_axes(factor.variance(params, shape), test.labels, out_order)
        labels = [t.labels for t in tests]
        mean = self.values["mean"] + eta2 * kron_contract(self.alpha_tilde, cross, labels, out_order)
        explained = eta2**2 * kron_contract(self.inv_diag, [a * a for a in cross], labels, out_order)
        var = np.clip(prior_var - explained, 0.0, None)
        if noise:
            var = var + self.values["noise"] ** 2
        return mean, np.broadcast_to(var, mean.shape)


def place_axes(array: np.ndarray, labels: str, out_order: str) -> np.ndarray:
    """Place an array over ``labels`` into the axes of ``out_order`` (size 1 elsewhere)."""
    sizes = dict(zip(labels, np.shape(array), strict=True))
    array = np.transpose(array, [labels.index(c) for c in out_order if c in labels])
    return array.reshape([sizes.get(c, 1) for c in out_order])
