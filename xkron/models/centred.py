"""PyTensor Ops for the partially centred latent field of :mod:`xkron.linalg.centring`.

:class:`CentredField` maps the factors ``K_i``, the free field ``u``, ``s = η² w̄`` and a shift ``c`` to
``g = S ũ`` and ``q = −log N(ũ; 0, I + sM)`` (without ``N/2 log 2π``), ``ũ = u − c S1``
(:func:`xkron.linalg.centring.centred_field`); :class:`CentredFieldGrad`
is its exact vector-Jacobian product, which reuses the forward pass's eigendecompositions (extra
outputs of :class:`CentredField`), so a compiled ``logp + dlogp`` decomposes each factor once.
:func:`xkron.models.build.build_centred_model` puts them in a PyMC model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from xkron.linalg import centring
from xkron.linalg.centring import backward_entry, centred_field, centred_field_vjp, forward_entry

__all__ = ["CentredField", "CentredFieldGrad", "centred_latent_field"]


class CentredField(Op):
    """Inputs ``K_1..K_D, u, s, c``; outputs ``g`` (like ``u``), ``q`` (scalar), the eigenvalues, the eigenvectors."""

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
        out = centred_field(inputs[:D], inputs[D], float(inputs[D + 1]), float(inputs[D + 2]))
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
        return list(CentredFieldGrad(D)(*inputs[D:], *outputs[2:], g_bar, q_bar))


class CentredFieldGrad(Op):
    """Inputs ``u, s, c``, the eigenvalues and eigenvectors, ``ḡ, q̄``; outputs ``K̄_1..K̄_D, ū, s̄, c̄``."""

    __props__ = ("n_factors",)

    def __init__(self, n_factors: int):
        self.n_factors = int(n_factors)

    def make_node(self, u, s, c, *rest):
        inputs = [pt.as_tensor_variable(x).astype("float64") for x in (u, s, c, *rest)]
        D = self.n_factors
        return Apply(self, inputs, [pt.dmatrix() for _ in range(D)] + [inputs[0].type(), pt.dscalar(), pt.dscalar()])

    def perform(self, node, inputs, output_storage):
        D = self.n_factors
        u, s, c = inputs[0], float(inputs[1]), float(inputs[2])
        lams, vectors = inputs[3 : 3 + D], inputs[3 + D : 3 + 2 * D]
        g_bar, q_bar = inputs[3 + 2 * D], float(inputs[4 + 2 * D])
        k_bars, u_bar, s_bar, c_bar = centred_field_vjp(u, s, lams, vectors, g_bar, q_bar, c)
        for d in range(D):
            output_storage[d][0] = k_bars[d]
        output_storage[D][0] = u_bar
        output_storage[D + 1][0] = np.asarray(s_bar)
        output_storage[D + 2][0] = np.asarray(c_bar)


def _register_numba() -> None:
    """Compile both Ops into PyTensor's Numba graphs (no object mode: no boxing of the factors per call).

    The generated wrappers pack the Ops' inputs into flat buffers and call the compiled C functions
    :data:`xkron.linalg.centring.forward_entry` and :data:`~xkron.linalg.centring.backward_entry`
    (the code :meth:`CentredField.perform` runs) by their symbols; the cache key is the number of
    factors and the source of both modules.
    """
    try:
        from pytensor.link.numba.cache import compile_numba_function_src
        from pytensor.link.numba.dispatch.basic import numba_njit, register_funcify_default_op_cache_key
    except ImportError:  # numba not installed: PyTensor uses its C or Python backends
        return
    # The key of PyTensor's on-disk cache: a change to the compiled code must change it, or a stale build would run.
    source = Path(centring.__file__).read_bytes() + Path(__file__).read_bytes()
    version = int(hashlib.sha256(source).hexdigest()[:15], 16)

    def generated(name: str, src: str, **env):
        return numba_njit(compile_numba_function_src(src, name, {"np": np, **env}))

    def packing(names: list[str]) -> str:
        return (
            f"    sizes = np.array([{', '.join(f'{x}.shape[0]' for x in names)}], dtype=np.int64)\n"
            f"    ends = np.cumsum(sizes)\n    ends2 = np.cumsum(sizes * sizes)\n"
        )

    def blocks(name: str, D: int, square: bool) -> str:
        ends = "ends2" if square else "ends"
        parts = []
        for d in range(D):
            start = "0" if d == 0 else f"{ends}[{d - 1}]"
            block = f"{name}[{start}:{ends}[{d}]]"
            parts.append(f"{block}.reshape(sizes[{d}], sizes[{d}])" if square else block)
        return ", ".join(parts)

    @register_funcify_default_op_cache_key(CentredField)
    def _forward(op, node=None, **kwargs):
        D = op.n_factors
        ks = [f"k{d}" for d in range(D)]
        flat = ", ".join(f"k{d}.copy().reshape(-1)" for d in range(D))  # a constant factor is read-only
        src = (
            f"def centred_forward({', '.join(ks)}, u, s, c):\n"
            + packing(ks)
            + f"    factors = np.concatenate(({flat},))\n"
            f"    flat_u = u.copy().reshape(-1)\n"
            f"    g, q = np.empty(flat_u.size), np.empty(1)\n"
            f"    lams, vectors = np.empty(ends[-1]), np.empty(ends2[-1])\n"
            f"    entry({D}, sizes.ctypes, factors.ctypes, flat_u.ctypes, s.item(), c.item(), g.ctypes, q.ctypes,\n"
            f"          lams.ctypes, vectors.ctypes)\n"
            f"    return g.reshape(u.shape), np.array(q[0]), {blocks('lams', D, False)}, {blocks('vectors', D, True)}\n"
        )
        return generated("centred_forward", src, entry=forward_entry), version

    @register_funcify_default_op_cache_key(CentredFieldGrad)
    def _backward(op, node=None, **kwargs):
        D = op.n_factors
        lams, qs = [f"l{d}" for d in range(D)], [f"q{d}" for d in range(D)]
        src = (
            f"def centred_backward(u, s, c, {', '.join(lams)}, {', '.join(qs)}, g_bar, q_bar):\n"
            + packing(lams)
            + f"    flat_l = np.concatenate(({', '.join(f'{x}.copy()' for x in lams)},))\n"
            f"    flat_q = np.concatenate(({', '.join(f'{x}.copy().reshape(-1)' for x in qs)},))\n"
            f"    flat_u, flat_g = u.copy().reshape(-1), g_bar.copy().reshape(-1)\n"
            f"    k_bars, u_bar, scalars = np.empty(ends2[-1]), np.empty(flat_u.size), np.empty(2)\n"
            f"    entry({D}, sizes.ctypes, flat_u.ctypes, s.item(), c.item(), flat_l.ctypes, flat_q.ctypes,\n"
            f"          flat_g.ctypes, q_bar.item(), k_bars.ctypes, u_bar.ctypes, scalars.ctypes)\n"
            f"    s_bar, c_bar = np.array(scalars[0]), np.array(scalars[1])\n"
            f"    return {blocks('k_bars', D, True)}, u_bar.reshape(u.shape), s_bar, c_bar\n"
        )
        return generated("centred_backward", src, entry=backward_entry), version


_register_numba()


def centred_latent_field(factors, u, s, shift=0.0):
    """Symbolic ``(g, q)`` of :class:`CentredField`: ``g = S ũ``, ``q = −log N(ũ; 0, I + sM)`` less ``N/2 log 2π``.

    ``ũ = u − shift · S1`` (:func:`xkron.linalg.centring.centred_field`).

    Examples
    --------
    >>> K = np.array([[1.0, 0.5], [0.5, 1.0]])
    >>> g, q = centred_latent_field([K], np.array([1.0, 0.0]), 0.0)
    >>> lam, Q = np.linalg.eigh(K)
    >>> bool(np.allclose(g.eval(), Q @ np.diag(np.sqrt(lam)) @ Q.T @ [1.0, 0.0]))
    True
    """
    outputs = CentredField(len(factors))(*factors, u, s, shift)
    return outputs[0], outputs[1]
