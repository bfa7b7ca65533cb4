"""PyTensor Ops for the partially centred latent field of :mod:`xkron.linalg.centring`.

:class:`CentredField` maps the factors ``K_i``, the free field ``u`` and ``s = η² w̄`` to
``g = S u`` and ``q = −log N(u; 0, I + sM)`` (without ``N/2 log 2π``); :class:`CentredFieldGrad`
is its exact vector-Jacobian product, which reuses the forward pass's eigendecompositions (extra
outputs of :class:`CentredField`), so a compiled ``logp + dlogp`` decomposes each factor once.
:func:`xkron.models.build.build_centred_model` puts them in a PyMC model.
"""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from xkron.linalg.centring import centred_field, centred_field_vjp
from xkron.models.ops import register_object_mode

__all__ = ["CentredField", "CentredFieldGrad", "centred_latent_field"]


class CentredField(Op):
    """Inputs ``K_1..K_D, u, s``; outputs ``g`` (like ``u``), ``q`` (scalar), the eigenvalues, the eigenvectors."""

    __props__ = ("n_factors",)

    def __init__(self, n_factors: int):
        self.n_factors = int(n_factors)

    def make_node(self, *inputs):
        inputs = [pt.as_tensor_variable(x).astype("float64") for x in inputs]
        D = self.n_factors
        outputs = [inputs[D].type(), pt.dscalar()] + [pt.dvector() for _ in range(D)] + [pt.dmatrix() for _ in range(D)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        D = self.n_factors
        out = centred_field(inputs[:D], inputs[D], float(inputs[D + 1]))
        output_storage[0][0] = out.g
        output_storage[1][0] = np.asarray(out.q)
        for d in range(D):
            output_storage[2 + d][0] = out.eigenvalues[d]
            output_storage[2 + D + d][0] = out.vectors[d]

    def pullback(self, inputs, outputs, cotangents):
        for extra in cotangents[2:]:
            if not isinstance(extra.type, DisconnectedType):
                raise NotImplementedError("the eigendecompositions of CentredField are not differentiable outputs")
        g_bar, q_bar = cotangents[:2]
        if isinstance(g_bar.type, DisconnectedType):
            g_bar = pt.zeros_like(outputs[0])
        if isinstance(q_bar.type, DisconnectedType):
            q_bar = pt.zeros_like(outputs[1])
        D = self.n_factors
        return list(CentredFieldGrad(D)(inputs[D], inputs[D + 1], *outputs[2:], g_bar, q_bar))


class CentredFieldGrad(Op):
    """Inputs ``u, s``, the eigenvalues and eigenvectors, ``ḡ, q̄``; outputs ``K̄_1..K̄_D, ū, s̄``."""

    __props__ = ("n_factors",)

    def __init__(self, n_factors: int):
        self.n_factors = int(n_factors)

    def make_node(self, u, s, *rest):
        inputs = [pt.as_tensor_variable(x).astype("float64") for x in (u, s, *rest)]
        D = self.n_factors
        return Apply(self, inputs, [pt.dmatrix() for _ in range(D)] + [inputs[0].type(), pt.dscalar()])

    def perform(self, node, inputs, output_storage):
        D = self.n_factors
        u, s = inputs[0], float(inputs[1])
        lams, vectors = inputs[2 : 2 + D], inputs[2 + D : 2 + 2 * D]
        k_bars, u_bar, s_bar = centred_field_vjp(u, s, lams, vectors, inputs[2 + 2 * D], float(inputs[3 + 2 * D]))
        for d in range(D):
            output_storage[d][0] = k_bars[d]
        output_storage[D][0] = u_bar
        output_storage[D + 1][0] = np.asarray(s_bar)


register_object_mode(CentredField, CentredFieldGrad)


def centred_latent_field(factors, u, s):
    """Symbolic ``(g, q)`` of :class:`CentredField` (``g = S u``, ``q = −log N(u; 0, I + sM)`` less ``N/2 log 2π``).

    Examples
    --------
    >>> K = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> g, q = centred_latent_field([K], np.array([1.0, 0.0]), 0.0)
    >>> lam, Q = np.linalg.eigh(K)
    >>> bool(np.allclose(g.eval(), Q @ np.diag(np.sqrt(lam)) @ Q.T @ [1.0, 0.0]))
    True
    """
    outputs = CentredField(len(factors))(*factors, u, s)
    return outputs[0], outputs[1]
