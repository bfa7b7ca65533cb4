"""PyTensor Op for the Laplace log marginal of a latent Kronecker GP and its gradient.

``log q(y | θ)`` (:func:`xkron.linalg.laplace.laplace_loglik`) with its gradient in each factor
matrix, the amplitude, the mean and the likelihood's own parameters
(:func:`xkron.linalg.laplace_grad.laplace_gradient`), so that a PyMC model whose latent field is
integrated out by the Laplace approximation is an ordinary model: ``find_MAP``, xkron's MAP and
NUTS over the hyperparameters (as Stan's embedded Laplace) work on it unchanged. The mode search
starts from the previous evaluation's mode (successive evaluations are nearby), which is the
same mode to its tolerance in a few Newton steps instead of a dozen.

The gradient costs about as much again as the value (Hutchinson probes through ``H⁻¹``). Where
only values are needed (INLA's design, :mod:`xkron.inference.inla`), :func:`value_only` swaps
each Op of a graph for its twin that skips it.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import applys_between

from xkron.linalg.kronecker import KronEigen
from xkron.linalg.laplace import laplace_loglik, newton_mode
from xkron.linalg.laplace_grad import laplace_gradient
from xkron.models.ops import _record, register_object_mode
from xkron.settings import LAPLACE_DENSE_MAX, LAPLACE_PROBES
from xkron.spec.pointwise import pointwise, pointwise_params

__all__ = ["KronLaplaceLogp", "kron_laplace_logp", "value_only"]


class KronLaplaceLogp(Op):
    """``log q(y | θ)`` of ``y ~ p(y | f)``, ``f ~ GP(mean, eta2 ⊗K_i)``, the field integrated out by Laplace.

    Inputs: ``y`` (D-way, any value at unobserved cells), ``observed`` (D-way, 1.0 where
    observed), one D-way array per name in ``data_names`` (``exposure``, ``trials``,
    ``noise_sd``), ``K_1 ... K_D``, ``eta2``, ``mean``, then one scalar per name in
    ``param_names`` (the likelihood's ``noise``, ``nu``, ``dispersion``, ``shape``). Outputs:
    ``log q``, then its gradient in every input from ``K_1`` on. Grids of at most
    :data:`~xkron.settings.LAPLACE_DENSE_MAX` cells take the exact log-determinant and gradient;
    larger ones stochastic Lanczos quadrature and :data:`~xkron.settings.LAPLACE_PROBES` Hutchinson
    probes, with the Monte Carlo error stated (:func:`xkron.models.ops.track_logp_error`).
    ``value_only``: the gradient outputs are left at 0 and not computed (:func:`value_only`); such an Op
    has no gradient.
    """

    __props__ = ("n_factors", "likelihood", "data_names", "param_names", "value_only")

    def __init__(
        self, n_factors: int, likelihood: str, data_names: tuple = (), param_names: tuple = (), value_only: bool = False
    ):
        self.n_factors, self.likelihood = n_factors, likelihood
        self.data_names, self.param_names = tuple(data_names), tuple(param_names)
        self.value_only = bool(value_only)

    def make_node(self, y, observed, *args):
        n_data, n = len(self.data_names), self.n_factors
        if len(args) != n_data + n + 2 + len(self.param_names):
            n_params = len(self.param_names)
            raise TypeError(f"expected {n_data} data arrays, {n} factors, eta2, mean and {n_params} params")
        arrays = [pt.as_tensor_variable(a, dtype="float64") for a in (y, observed, *args[:n_data])]
        factors = [pt.as_tensor_variable(k, dtype="float64") for k in args[n_data : n_data + n]]
        scalars = [pt.as_tensor_variable(s, dtype="float64") for s in args[n_data + n :]]
        if any(k.ndim != 2 for k in factors) or any(s.ndim != 0 for s in scalars):
            raise TypeError("factors must be matrices, eta2, mean and the likelihood's parameters scalars")
        outputs = [pt.dscalar()] + [pt.dmatrix() for _ in factors] + [pt.dscalar() for _ in scalars]
        return Apply(self, [*arrays, *factors, *scalars], outputs)

    def evaluate(self, inputs) -> list:
        """``[log q, ∂/∂K_1, ..., ∂/∂K_D, ∂/∂eta2, ∂/∂mean, ∂/∂params...]`` at numeric ``inputs``."""
        n_data, n = len(self.data_names), self.n_factors
        y, observed = inputs[0], inputs[1] > 0
        data = dict(zip(self.data_names, inputs[2 : 2 + n_data], strict=True))
        factors = inputs[2 + n_data : 2 + n_data + n]
        eta2, mean, *params = (float(s) for s in inputs[2 + n_data + n :])
        values = dict(zip(self.param_names, params, strict=True))
        eigen = KronEigen.from_factors(factors)

        def terms(f):
            return pointwise(self.likelihood, f, y, values, data)

        previous = getattr(self, "_mode", None)
        v0 = previous if previous is not None and previous.shape == y.shape else None
        mode = self._mode_search(terms, eigen, eta2, mean, observed, v0)
        zeros = [*(np.zeros_like(k) for k in factors), 0.0, 0.0, *(0.0 for _ in self.param_names)]
        if mode is None:  # no mode here (an optimiser's wild trial point): minus infinity, as PyMC's logp does
            return [-np.inf, *zeros]
        self._mode = mode.v
        small = y.size <= LAPLACE_DENSE_MAX
        result = laplace_loglik(mode, eigen, eta2, "dense" if small else "slq", probes=LAPLACE_PROBES)
        _record(result.logp_se)
        if self.value_only:
            return [result.logp, *zeros]
        # Σ (or its estimate) from the log-determinant's own factorisation or probe solves; above
        # LAPLACE_DENSE_MAX the trace by its own probes.
        grad = laplace_gradient(
            mode, factors, eigen, eta2, pointwise_params(self.likelihood, mode.f, y, values, data),
            pairs=result.pairs, trace_probes=None if small else LAPLACE_PROBES,
        )  # fmt: skip
        return [result.logp, *grad.d_factors, grad.d_eta2, grad.d_mean, *(grad.d_params[p] for p in self.param_names)]

    @staticmethod
    def _mode_search(terms, eigen, eta2, mean, observed, v0):
        """The mode from the previous one, else from the prior mean; ``None`` where both fail (overflow at
        extreme hyperparameters)."""
        for start in (v0, None) if v0 is not None else (None,):
            try:
                with np.errstate(over="ignore", invalid="ignore"):
                    return newton_mode(terms, eigen, eta2, mean, observed, start)
            except (RuntimeError, ValueError, FloatingPointError):
                continue
        return None

    def perform(self, node, inputs, output_storage):
        for storage, value in zip(output_storage, self.evaluate(inputs), strict=True):
            storage[0] = np.asarray(value, dtype="float64")

    def pullback(self, inputs, outputs, cotangents):
        if self.value_only:
            raise NotImplementedError("a value_only Laplace log marginal has no gradient: differentiate the original")
        for extra in cotangents[1:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("second derivatives of the Laplace log marginal are not implemented")
        g = cotangents[0]
        fixed = 2 + len(self.data_names)
        data = [grad_not_implemented(self, i, inputs[i], "the data, mask and per-cell data") for i in range(fixed)]
        return data + [g * d for d in outputs[1:]]


def kron_laplace_logp(likelihood: str, y, observed, factors, eta2, mean, data=None, params=None):
    """Symbolic Laplace log marginal (see :class:`KronLaplaceLogp`); ``data`` and ``params`` are dicts by name.

    Examples
    --------
    >>> x = np.linspace(0, 2, 4)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2)
    >>> y = np.array([[0.0, 1, 2, 1]] * 3)
    >>> logq = kron_laplace_logp("poisson", y, np.ones((3, 4)), [np.eye(3), K], 1.0, 0.0)
    >>> bool(np.isfinite(logq.eval()))
    True
    """
    data, params = dict(data or {}), dict(params or {})
    op = KronLaplaceLogp(len(factors), likelihood, tuple(data), tuple(params))
    return op(y, observed, *data.values(), *factors, eta2, mean, *params.values())[0]


def value_only(outputs: list) -> list:
    """``outputs`` (symbolic) with every :class:`KronLaplaceLogp` replaced by its ``value_only`` twin.

    The same values (the mode search and log-determinant are the same computation) at about half
    the cost, for graphs that are evaluated but not differentiated; a graph without the Op comes
    back unchanged.

    Examples
    --------
    >>> x = np.linspace(0, 2, 4)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2)
    >>> logq = kron_laplace_logp("poisson", np.ones((3, 4)), np.ones((3, 4)), [np.eye(3), K], 1.0, 0.0)
    >>> [cheap] = value_only([logq])
    >>> cheap.owner.op.value_only, bool(np.isclose(cheap.eval(), logq.eval()))
    (True, True)
    """
    nodes = [n for n in applys_between([], outputs) if isinstance(n.op, KronLaplaceLogp) and not n.op.value_only]
    if not nodes:
        return list(outputs)
    swap = {}
    for node in nodes:
        op = node.op
        twin = KronLaplaceLogp(op.n_factors, op.likelihood, op.data_names, op.param_names, value_only=True)
        swap[node.outputs[0]] = twin(*node.inputs)[0]
    return list(graph_replace(outputs, swap, strict=False))


register_object_mode(KronLaplaceLogp)
