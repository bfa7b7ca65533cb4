"""PyTensor Op for the exact Kronecker marginal log-likelihood and its gradient.

PyMC's ``MarginalKron`` differentiates through ``eigh``, whose eigenvector derivatives carry
``1/(λ_a − λ_b)`` terms and go wrong when a factor has repeated eigenvalues (a Cosine factor,
a rank-deficient grid). This Op computes ``∂ log p / ∂K_i`` directly from the trace identities
in :func:`xkron.linalg.kronecker.marginal_loglik`, and PyTensor's autodiff carries it on through each
factor's ``K_i(θ)``. One ``perform`` returns the value and every gradient, so a compiled
``logp + dlogp`` function decomposes each factor once per evaluation.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Iterator

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from xkron.linalg.kronecker import marginal_loglik
from xkron.linalg.loglik import Loglik
from xkron.linalg.systems import make_system
from xkron.spec.solver import Solver

__all__ = [
    "KronMarginalLogp",
    "KronObservedLogp",
    "LogpError",
    "kron_marginal_logp",
    "kron_observed_logp",
    "register_object_mode",
    "track_logp_error",
]


DENSE = Solver("dense")
"""The default solver of :class:`KronObservedLogp`: exact Cholesky on the observed cells."""

_MEMO: list = [None]
"""The last evaluation: ``(inputs, outputs, logp_se)``; one slot, replaced on every new point."""

_TRACKING = threading.local()
"""This thread's open :func:`track_logp_error` tally (``None`` when none): the Ops run in the thread
that calls the compiled function, so fits in other threads keep their own."""


class LogpError:
    """Monte Carlo error of the log-likelihoods computed inside one :func:`track_logp_error` block.

    ``variance`` sums ``logp_se²`` over every evaluation of these Ops (0 for exact solvers), and
    ``evaluations`` counts them.
    """

    def __init__(self) -> None:
        self.variance, self.evaluations = 0.0, 0

    @property
    def se(self) -> float:
        """Standard error of the summed log-likelihoods (their estimates are independent)."""
        return float(np.sqrt(self.variance))


@contextlib.contextmanager
def track_logp_error() -> Iterator[LogpError]:
    """Collect the stated error of every Kronecker log-likelihood this thread computes inside the block.

    The iterative solver's log-likelihood is a stochastic estimate (its
    :attr:`xkron.linalg.loglik.Loglik.logp_se`); a compiled log posterior returns only numbers,
    so an optimiser that must know how precise its objective is evaluates it inside this block.

    Examples
    --------
    >>> import numpy as np
    >>> with track_logp_error() as error:
    ...     _ = kron_marginal_logp(np.zeros((2, 3)), [np.eye(2), np.eye(3)], 1.0, 1.0).eval()
    >>> error.evaluations, error.se
    (1, 0.0)
    """
    outer = getattr(_TRACKING, "tally", None)
    _TRACKING.tally = tally = LogpError()
    try:
        yield tally
    finally:
        _TRACKING.tally = outer


def _record(logp_se: float) -> None:
    tally = getattr(_TRACKING, "tally", None)
    if tally is not None:
        tally.variance += float(logp_se) ** 2
        tally.evaluations += 1


def _outputs(result: Loglik) -> list:
    """The Ops' outputs from a :class:`~xkron.linalg.loglik.Loglik`: the value, then every gradient."""
    return [result.logp, *result.d_factors, result.d_eta2, result.d_sigma2, result.d_mean]


class KronMarginalLogp(Op):
    """``log N(y | mean, eta2 ⊗K_i + sigma2 I)`` for a D-way data tensor ``y``.

    Inputs: ``y`` (D-way), ``K_1 ... K_D`` (matrices), ``eta2``, ``sigma2``, ``mean``
    (scalars). Outputs: the log-likelihood, then its gradients with respect to each ``K_i``,
    ``eta2``, ``sigma2`` and ``mean``, and with ``data_gradient`` the gradient with respect to
    ``y``, ``−α`` (0 at unobserved cells): data that depend on parameters, as whitened by a noise
    sd per label (:func:`xkron.models.build.build_marginal_model`). Only the first output is meant
    for users; the others feed :meth:`pullback`. Second derivatives are not implemented.
    """

    __props__ = ("n_factors", "data_gradient")

    def __init__(self, n_factors: int, data_gradient: bool = False):
        self.n_factors, self.data_gradient = n_factors, bool(data_gradient)

    def make_node(self, y, *args):
        if len(args) != self.n_factors + 3:
            raise TypeError(f"expected {self.n_factors} factors and eta2, sigma2, mean")
        y = pt.as_tensor_variable(y, dtype="float64")
        factors = [pt.as_tensor_variable(k, dtype="float64") for k in args[: self.n_factors]]
        scalars = [pt.as_tensor_variable(s, dtype="float64") for s in args[self.n_factors :]]
        if y.ndim != self.n_factors or any(k.ndim != 2 for k in factors) or any(s.ndim != 0 for s in scalars):
            raise TypeError("y must have one axis per factor, factors must be matrices, the rest scalars")
        outputs = [pt.dscalar()] + [pt.dmatrix() for _ in factors] + [pt.dscalar() for _ in scalars]
        if self.data_gradient:
            outputs.append(y.type())
        return Apply(self, [y, *factors, *scalars], outputs)

    def loglik(self, inputs) -> Loglik:
        """The log-likelihood and its gradients at numeric ``inputs``."""
        y, *rest = inputs
        factors, (eta2, sigma2, mean) = rest[: self.n_factors], rest[self.n_factors :]
        return marginal_loglik(y, factors, float(eta2), float(sigma2), float(mean), gradient=True)

    def evaluate(self, inputs) -> list:
        """``[logp, ∂/∂K_1, ..., ∂/∂K_D, ∂/∂eta2, ∂/∂sigma2, ∂/∂mean]`` at numeric ``inputs``."""
        return self._output_values(self.loglik(inputs))

    def _output_values(self, result: Loglik) -> list:
        return _outputs(result) + self._data_gradient(result)

    def _data_gradient(self, result: Loglik) -> list:
        """``[−α]`` on the grid when the data gradient is asked for, else ``[]``."""
        if not self.data_gradient:
            return []
        alpha = result.alpha if result.alpha is not None else result.eigen.from_eigenbasis(result.alpha_tilde)
        return [-alpha]

    def perform(self, node, inputs, output_storage):
        memo = self._memo_lookup(inputs)
        if memo is None:
            result = self.loglik(inputs)
            memo = ([np.asarray(v, dtype="float64") for v in self._output_values(result)], float(result.logp_se))
            _MEMO[0] = (self, [np.array(x, copy=True) for x in inputs], *memo)
        values, logp_se = memo
        _record(logp_se)
        for storage, value in zip(output_storage, values, strict=True):
            storage[0] = value.copy()

    def _memo_lookup(self, inputs):
        """Outputs of the last call if its inputs were the same.

        Optimisers such as ``pm.find_MAP`` evaluate the log-density and its gradient in
        two compiled functions at the same point; both run this Op (PyTensor may hold a
        copy of the Op in each function, so the memo lives at module level), and the second
        call reuses the first one's decompositions instead of repeating them.
        """
        memo = _MEMO[0]
        if memo is None:
            return None
        op, previous, values, logp_se = memo
        if op != self or len(previous) != len(inputs):
            return None
        same = all(a.shape == np.shape(b) and np.array_equal(a, b) for a, b in zip(previous, inputs, strict=True))
        return (values, logp_se) if same else None

    def pullback(self, inputs, outputs, cotangents):
        for extra in cotangents[1:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("second derivatives of the Kronecker log-likelihood are not implemented")
        g = cotangents[0]
        n = 1 + self.n_factors + 3
        if self.data_gradient:
            data = g * outputs[n]
        else:
            data = grad_not_implemented(self, 0, inputs[0], "gradient with respect to the data is not asked for")
        return [data] + [g * d for d in outputs[1:n]]


class KronObservedLogp(KronMarginalLogp):
    """``log N(y_o | mean, (eta2 ⊗K_i + diag(sigma2 + known_var))_oo)`` on the observed cells ``o``.

    Inputs: ``y`` (D-way, any value at unobserved cells), ``observed`` (D-way, 1.0 where
    observed), ``known_var`` (D-way known noise variance per cell), then as
    :class:`KronMarginalLogp`. ``solver`` is the model's :class:`~xkron.spec.solver.Solver`,
    ``"dense"`` (exact) or ``"iterative"``; :func:`xkron.linalg.systems.make_system` builds its system.
    """

    __props__ = ("n_factors", "solver", "noise_gradient", "data_gradient")

    def __init__(
        self, n_factors: int, solver: Solver = DENSE, noise_gradient: bool = False, data_gradient: bool = False
    ):
        super().__init__(n_factors, data_gradient)
        self.solver, self.noise_gradient = solver, bool(noise_gradient)

    def make_node(self, y, observed, known_var, *args):
        node = super().make_node(y, *args)
        extra = [pt.as_tensor_variable(a, dtype="float64") for a in (observed, known_var)]
        outputs = [o.type() for o in node.outputs]
        if self.noise_gradient:  # ∂ logp / ∂ known_var per cell: the noise is a free parameter (dense solver)
            outputs.insert(len(outputs) - self.data_gradient, node.inputs[0].type())
        return Apply(self, [node.inputs[0], *extra, *node.inputs[1:]], outputs)

    def _output_values(self, result: Loglik) -> list:
        if not self.noise_gradient:
            return _outputs(result) + self._data_gradient(result)
        if result.d_noise is None:
            raise NotImplementedError(f"the {self.solver.name} solver gives no gradient per cell of the noise")
        return [*_outputs(result), result.d_noise, *self._data_gradient(result)]

    def loglik(self, inputs) -> Loglik:
        y, observed, known_var, *rest = inputs
        factors, (eta2, sigma2, mean) = rest[: self.n_factors], rest[self.n_factors :]
        system = make_system(self.solver, factors, float(eta2), known_var + float(sigma2), observed > 0)
        return system.loglik(y, float(mean), gradient=True)

    def pullback(self, inputs, outputs, cotangents):
        n = 1 + self.n_factors + 3
        data = outputs[-1:] if self.data_gradient else []
        grads = super().pullback(
            [inputs[0], *inputs[3:]], outputs[:n] + data, cotangents[:n] + cotangents[-1:][: len(data)]
        )
        mask = grad_not_implemented(self, 1, inputs[1], "the mask is data")
        if self.noise_gradient:
            known = cotangents[0] * outputs[n]
        else:
            known = grad_not_implemented(self, 2, inputs[2], "the known noise is data")
        return [grads[0], mask, known, *grads[1:]]


def kron_observed_logp(
    y,
    observed,
    known_var,
    factors,
    eta2,
    sigma2,
    mean=0.0,
    solver: Solver = DENSE,
    noise_gradient: bool = False,
    data_gradient: bool = False,
):
    """Symbolic log-likelihood of the observed cells (see :class:`KronObservedLogp`).

    Examples
    --------
    >>> import numpy as np
    >>> observed = np.array([[1.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    >>> ll = kron_observed_logp(np.zeros((2, 3)), observed, np.zeros((2, 3)), [np.eye(2), np.eye(3)], 1.0, 1.0)
    >>> bool(np.isclose(ll.eval(), -0.5 * 5 * np.log(2 * np.pi * 2.0)))
    True
    """
    op = KronObservedLogp(len(factors), solver, noise_gradient, data_gradient)
    return op(y, observed, known_var, *factors, eta2, sigma2, mean)[0]


def kron_marginal_logp(y, factors, eta2, sigma2, mean=0.0, data_gradient: bool = False):
    """Symbolic exact Kronecker log marginal likelihood (see :class:`KronMarginalLogp`).

    Examples
    --------
    >>> import numpy as np, pytensor.tensor as pt
    >>> K1, K2 = np.eye(2), np.eye(3)
    >>> ll = kron_marginal_logp(np.zeros((2, 3)), [K1, K2], 1.0, 1.0)
    >>> bool(np.isclose(ll.eval(), -0.5 * 6 * np.log(2 * np.pi * 2.0)))
    True
    """
    return KronMarginalLogp(len(factors), data_gradient)(y, *factors, eta2, sigma2, mean)[0]


def register_object_mode(*op_types) -> None:
    """Run these Ops in Numba's object mode (they call LAPACK through scipy) without a warning.

    PyTensor's Numba backend falls back to object mode for Ops it cannot compile and warns
    each time; for these Ops that is the intended path, so say so once here instead.
    """
    try:
        from pytensor.link.numba.dispatch.basic import generate_fallback_impl, numba_funcify
    except ImportError:  # numba not installed: PyTensor uses its C or Python backends
        return

    def _funcify(op, node=None, storage_map=None, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Numba will use object mode", category=UserWarning)
            return generate_fallback_impl(op, node, storage_map, **kwargs)

    for op_type in op_types:
        numba_funcify.register(op_type)(_funcify)


register_object_mode(KronMarginalLogp, KronObservedLogp)
