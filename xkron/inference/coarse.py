"""A coarser copy of a problem, whose optimum starts the MAP on the whole grid.

Every evaluation of the Laplace marginal, or of the Gaussian marginal by the iterative solver,
costs Kronecker products over the whole grid (CG iterations and probes), and the MAP from
data-driven starts takes tens of them (several starts), some far from the optimum where the
solver converges slowly. On a grid thinned by 2 along every one-dimensional factor the same
hyperparameters (lengthscales in coordinate units, the amplitude, the mean, the likelihood's
own) fit at an eighth of the cost per evaluation for three factors, or on the exact dense solver
once few cells are left; one start on the whole grid from that optimum then needs only the last
few steps.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from xkron.settings import LAPLACE_COARSE_CELLS, LAPLACE_COARSE_MIN_SIZE
from xkron.spec.modelspec import ModelSpec

__all__ = ["coarse_problem"]


def coarse_problem(spec: ModelSpec, y: np.ndarray, cells: dict, max_cells: int = LAPLACE_COARSE_CELLS):
    """``(spec, y, cells)`` thinned by 2 along one-dimensional factors until at most ``max_cells`` cells,
    or ``None`` where the grid is already that small or nothing can be thinned.

    Factors over several dims or over labels (``Coregion``, ``Independent``) are kept whole, and
    so is a factor that would fall below :data:`~xkron.settings.LAPLACE_COARSE_MIN_SIZE` inputs; a
    one-dimensional factor cut to the inputs observed somewhere keeps every other one of those.

    Examples
    --------
    >>> from xkron.spec.grid import Factor
    >>> from xkron.spec.kernels import ExpQuad
    >>> f = tuple(Factor((d,), ExpQuad(), (np.arange(40.0),)) for d in "abc")
    >>> spec = ModelSpec(f, {}, latent=True)
    >>> coarse = coarse_problem(spec, np.zeros((40, 40, 40)), {}, max_cells=10_000)
    >>> [g.size for g in coarse[0].factors], coarse[1].shape
    ([20, 20, 20], (20, 20, 20))
    """
    factors, slices = list(spec.factors), [slice(None)] * len(spec.factors)
    while int(np.prod([f.size for f in factors])) > max_cells:
        thinnable = [
            i for i, f in enumerate(factors)
            if len(f.dims) == 1 and not f.kernel.labelled and (f.size + 1) // 2 >= LAPLACE_COARSE_MIN_SIZE
        ]  # fmt: skip
        if not thinnable:
            break
        for i in thinnable:  # every other input (of the kept ones, where a subset of the grid's is kept)
            f = factors[i]
            factors[i] = (
                replace(f, coords=(f.coords[0][::2],)) if f.subset is None else replace(f, subset=f.subset[::2])
            )
            step = (slices[i].step or 1) * 2
            slices[i] = slice(None, None, step)
    if all(s == slice(None) for s in slices):
        return None
    index = tuple(slices)
    data = {k: v[index] for k, v in spec.cell_data().items() if np.ndim(v)}
    likelihood = spec.likelihood.with_data(**data)
    thinned = {k: np.asarray(v)[index] if np.ndim(v) else v for k, v in cells.items()}
    return replace(spec, factors=tuple(factors), likelihood=likelihood), np.asarray(y)[index], thinned
