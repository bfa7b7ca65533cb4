"""Several variables on one grid: the intrinsic coregionalisation model as one Kronecker factor.

A ``Coregion`` factor over a labelled dim (``variable`` = [sst, chl, wind], or ``member``) has the
free between-variable covariance ``B = W Wᵀ + diag(κ)`` (Bonilla, Chai & Williams 2007; GPy's
``Coregionalize``, ``pm.gp.cov.Coregion``): ``W`` of shape (variables, ``rank``) correlates them,
``κ`` lets each vary on its own. The field is ``f ~ GP(0, B ⊗ K_2 ⊗ …)``: every variable has the
same space-time structure, and they covary through ``B``. It is one factor like any other, so the
fit is exact on a complete grid, and a variable missing where others are observed (each product
with its own gaps) is predicted from them by the gappy solvers.

``B`` carries the variables' scales, so with a ``Coregion`` factor the amplitude is fixed at 1
unless given. Its parameters are named by label: ``W_<dim>_<label>_<k>`` and
``kappa_<dim>_<label>``. Default priors: ``W ~ Normal(0, sd(y))``, ``κ ~ HalfNormal(var(y))``;
the MAP starts with half of each variable's variance shared (``W``) and half its own (``κ``).
The noise is one ``σ`` shared by every variable, or with ``Coregion(noise=True)`` one per
variable (the likelihood's noise along that dim, fitted with the rest). Dividing each variable's
data by its noise sd leaves a model with unit noise and the factor ``S⁻¹BS⁻¹``
(:meth:`Coregion.whitened`), so every solver fits it: exact Kronecker on complete grids, the
iterative one on large gappy grids. ``fit.between(dim)`` gives ``B`` and the correlations, labelled.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from xkron.spec.kernel_base import Kernel
from xkron.spec.prior_types import spec_to_json

__all__ = ["Coregion"]


def _safe(label) -> str:
    """A label as part of a variable name (letters, digits and ``_``)."""
    return re.sub(r"\W+", "_", str(label)).strip("_") or "x"


class Coregion(Kernel):
    """Between-variable covariance ``B = W Wᵀ + diag(κ)`` over a labelled dim (the intrinsic coregionalisation model).

    Parameters
    ----------
    rank : int
        Columns of ``W``: 1 gives each pair of variables a correlation of one sign pattern plus
        their own parts; ``rank = number of variables`` a free covariance.
    W, kappa : float, Prior or None
        Specs for every entry of ``W`` and of ``κ`` (``None``: the default priors).
    labels : sequence, optional
        The dim's labels; bound from the data's coordinate when the fit starts.
    noise : bool, float or Prior
        Give each label its own noise sd, ``noise_<dim>_<label>``, in place of the shared
        ``noise``: ``True`` with the default prior ``HalfNormal(sd(y))``, a number (fixed) or a
        Prior for every label. Gaussian marginal fits, on any solver (whitened by these sds;
        with known ``noise_sd`` per cell as well, the dense solver only).

    Examples
    --------
    >>> import numpy as np
    >>> k = Coregion(rank=1).bind(["sst", "chl"])
    >>> list(k.param_specs())
    ['W_sst_1', 'W_chl_1', 'kappa_sst', 'kappa_chl']
    >>> p = {"W_sst_1": 2.0, "W_chl_1": -1.0, "kappa_sst": 0.5, "kappa_chl": 1.0}
    >>> k.matrix([np.arange(2.0)], [np.arange(2.0)], p).tolist()
    [[4.5, -2.0], [-2.0, 2.0]]
    """

    per_dim: ClassVar[tuple[str, ...]] = ()
    stationary: ClassVar[bool] = False
    decaying: ClassVar[bool] = False
    labelled: ClassVar[bool] = True
    has_variance: ClassVar[bool] = True

    def __init__(
        self, rank: int = 1, W: Any = None, kappa: Any = None, labels: Sequence | None = None, noise: Any = False
    ) -> None:
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
            raise ValueError(f"Coregion's rank={rank!r} must be a positive integer")
        object.__setattr__(self, "rank", int(rank))
        object.__setattr__(self, "W", W)
        object.__setattr__(self, "kappa", kappa)
        object.__setattr__(self, "labels", None if labels is None else tuple(str(v) for v in labels))
        object.__setattr__(self, "own_noise", noise is not False and noise is not None)
        object.__setattr__(self, "noise", None if noise is True else noise)
        if self.labels is not None:
            names = [_safe(v) for v in self.labels]
            if len(set(names)) != len(names):
                raise ValueError(f"Coregion's labels {list(self.labels)} are not distinct as names ({names})")

    def bind(self, labels: Sequence) -> Coregion:
        """The same kernel for the dim's ``labels`` (its parameters are named by them)."""
        return Coregion(self.rank, self.W, self.kappa, labels, self.noise_arg)

    @property
    def noise_arg(self) -> Any:
        """The ``noise`` argument this kernel was made with: ``False``, ``True`` or a spec for every label."""
        if not self.own_noise:
            return False
        return True if self.noise is None else self.noise

    def _names(self) -> list[str]:
        if self.labels is None:
            raise ValueError("Coregion's labels are bound from the data's coordinate when a fit starts")
        return [_safe(v) for v in self.labels]

    def param_specs(self) -> dict[str, Any]:
        if self.labels is None:
            return {}
        w = {f"W_{n}_{k + 1}": self.W for n in self._names() for k in range(self.rank)}
        noise = {f"noise_{n}": self.noise for n in self._names()} if self.own_noise else {}
        return {**w, **{f"kappa_{n}": self.kappa for n in self._names()}, **noise}

    def noise_variances(self, params, xp=np):
        """Each label's own noise variance ``σ_v²``, in label order (``noise=True``)."""
        values = [params[f"noise_{n}"] ** 2 for n in self._names()]
        return np.asarray(values, dtype=float) if xp is np else xp.stack([xp.as_tensor_variable(v) for v in values])

    def param_label(self, key: str) -> tuple[str, str]:
        base, _, suffix = key.partition("_")
        return base, suffix

    def loading_starts(self, scale: float) -> dict[str, float]:
        """MAP starting values of ``W`` by parameter key: ``W Wᵀ`` holds half the variance ``scale²`` on average.

        The columns start orthogonal over the labels (a cosine basis, the first constant): equal
        columns get equal gradients and would stay equal, leaving a ``rank=2`` fit a rank-1 one.

        Examples
        --------
        >>> starts = Coregion(rank=2).bind(["a", "b"]).loading_starts(2.0)
        >>> [round(float(starts[k]), 3) for k in ("W_a_1", "W_b_1", "W_a_2", "W_b_2")]
        [1.0, 1.0, 1.0, -1.0]
        """
        names = self._names()
        v = np.arange(len(names))
        starts = {}
        for k in range(self.rank):
            column = np.cos(np.pi * (v + 0.5) * (k % len(names)) / len(names)) * 0.5 ** (k // len(names))
            column = column / np.sqrt(np.mean(column**2)) if np.any(np.abs(column) > 1e-12) else np.ones(len(v))
            share = scale * np.sqrt(0.5 / self.rank)
            starts.update({f"W_{n}_{k + 1}": share * c for n, c in zip(names, column, strict=True)})
        return starts

    def whitened(self, sd) -> Coregion:
        """``S⁻¹ B S⁻¹`` with ``S = diag(sd)``: this factor in a model whitened by each label's noise sd.

        The GP with a noise sd per label is a unit-noise GP with this factor, in data divided by
        the sd (:func:`xkron.models.build.build_marginal_model`); its posterior conditions on that
        (:mod:`xkron.posterior.whitened`).

        Examples
        --------
        >>> k = Coregion(rank=1, noise=True).bind(["a", "b"])
        >>> p = {"W_a_1": 1.0, "W_b_1": 2.0, "kappa_a": 1.0, "kappa_b": 0.0, "noise_a": 0.5, "noise_b": 2.0}
        >>> k.whitened([0.5, 2.0]).between(p).tolist()
        [[8.0, 2.0], [2.0, 1.0]]
        """
        k = Coregion(self.rank, self.W, self.kappa, self.labels, self.noise_arg)
        object.__setattr__(k, "own_noise", False)  # the noise is whitened away: unit noise, shared
        object.__setattr__(k, "scale", tuple(1.0 / np.asarray(sd, dtype=float)))
        return k

    def between(self, params) -> Any:
        """``B`` from the parameters by key (numbers: a numpy array; tensors: a PyTensor matrix)."""
        scale = getattr(self, "scale", None)
        if scale is not None:
            return Coregion.bind(self, self.labels).between(params) * np.multiply.outer(scale, scale)
        names = self._names()
        values = [params[f"W_{n}_{k + 1}"] for n in names for k in range(self.rank)]
        kappa = [params[f"kappa_{n}"] for n in names]
        if all(np.ndim(v) == 0 and not hasattr(v, "owner") for v in [*values, *kappa]):
            W = np.asarray(values, dtype=float).reshape(len(names), self.rank)
            return W @ W.T + np.diag(np.asarray(kappa, dtype=float))
        import pytensor.tensor as pt

        W = pt.stack([pt.as_tensor_variable(v) for v in values]).reshape((len(names), self.rank))
        return W @ W.T + pt.diag(pt.stack([pt.as_tensor_variable(v) for v in kappa]))

    def evaluate(self, left, right, diffs, params, xp=np):
        i, j = (np.asarray(x).astype(int) for x in (left[0], right[0]))
        B = self.between(params)
        return B[i, j]

    @property
    def name(self) -> str:
        return f"Coregion(rank={self.rank})"

    def _key(self):
        scale = getattr(self, "scale", None)
        return (self.rank, repr(self.W), repr(self.kappa), self.labels, self.own_noise, repr(self.noise), scale)

    def __eq__(self, other) -> bool:
        return isinstance(other, Coregion) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(("Coregion", self._key()))

    def __repr__(self) -> str:
        return (
            f"Coregion(rank={self.rank}, W={self.W!r}, kappa={self.kappa!r}, labels={self.labels!r}, "
            f"noise={self.noise_arg!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": "Coregion", "rank": self.rank, "W": spec_to_json(self.W), "kappa": spec_to_json(self.kappa),
                "labels": None if self.labels is None else list(self.labels),
                "noise": self.noise_arg if isinstance(self.noise_arg, bool) else spec_to_json(self.noise)}  # fmt: skip
