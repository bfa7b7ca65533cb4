"""The base class of every kernel, and kernel algebra inside one factor: sums, products and weights.

``k1 + k2``, ``k1 * k2`` and ``c * k`` build :class:`Sum`, :class:`Product` and :class:`Scaled`
(``c`` a number, fixing the weight, or a :class:`pymc_extras.prior.Prior`). The factor stays one
Kronecker factor: its matrix is the sum or product of its parts' matrices, so every solver,
gradient and posterior of xkron works on it unchanged, with PyTensor differentiating the
parts' formulas. The kernels themselves are in :mod:`xkron.spec.kernels` (stationary),
:mod:`xkron.spec.trend_kernels` and :mod:`xkron.spec.spectral_mixture`.

**Variance weights.** The amplitude ``η`` multiplies the whole covariance, so in a sum one part
must go without a weight of its own or the two would be one parameter. The first part that is
stationary and has no variance of its own is that reference; every other part without one
(``Scaled``, ``WhiteNoise`` and products holding them have one) gets a free weight ``scale``
with a default prior: ``Periodic() * Matern52() + ExpQuad()`` is
``η² (Periodic·Matern52 + scale · ExpQuad)``. Write ``1.0 * k`` for an unweighted part.

**Names.** Each part keeps its hyperparameters. A kind that occurs once keeps its plain name
(``period_time``); one that occurs more than once is numbered in the order written
(``ls_time_1``, ``ls_time_2``, ``ls_time_3`` for the three lengthscales above, and
``scale_time`` for the single weight).

Examples
--------
>>> from xkron.spec.kernels import ExpQuad, Matern52, Periodic
>>> k = Periodic(period=365.25) * Matern52() + ExpQuad()
>>> k.name
'Periodic*Matern52 + c*ExpQuad'
>>> list(k.param_specs())
['ls_1', 'period', 'ls_2', 'scale', 'ls_3']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from functools import reduce
from typing import Any, ClassVar

import numpy as np

from xkron.spec.prior_types import is_prior, spec_to_json

__all__ = [
    "Combination",
    "Kernel",
    "Product",
    "Scaled",
    "Sum",
    "is_numpy",
    "safe_sqrt",
]

Path = tuple[int, ...]
"""The place of a part in a combined kernel: child indices from the root."""


def is_numpy(xp) -> bool:
    return xp is np


def safe_sqrt(r2, xp):
    """``sqrt(r2)`` whose gradient is finite (and zero) where ``r2 == 0``."""
    if is_numpy(xp):
        return np.sqrt(r2)
    positive = r2 > 0
    return xp.sqrt(xp.switch(positive, r2, 1.0)) * positive


@dataclass(frozen=True)
class Kernel:
    """Base class of a kernel factor (do not use directly).

    Kernels combine inside a factor: ``k1 + k2``, ``k1 * k2`` and ``c * k`` give the
    :class:`Sum`, :class:`Product` and :class:`Scaled`.

    Parameters
    ----------
    ls : float, Prior, sequence, dict or None
        Lengthscale, one per dim of the factor, in the coordinate's units (days for time).
    """

    ls: Any = None

    per_dim: ClassVar[tuple[str, ...]] = ("ls",)
    """Parameters with one value per dim of the factor; the others have one per factor."""

    stationary: ClassVar[bool] = True
    """A function of the coordinate differences alone (:meth:`correlation`); the others
    (:class:`~xkron.spec.trend_kernels.Linear`) need the coordinates themselves (:meth:`evaluate`)."""

    decaying: ClassVar[bool] = True
    """Goes to 0 with distance: its lengthscales can be fitted to a semivariogram for the MAP's start."""

    own_noise: ClassVar[bool] = False
    """Gives the labels of its dim their own noise sd (``Coregion(noise=True)``)."""

    labelled: ClassVar[bool] = False
    """Its dim's coordinates are labels (any values, strings too), taken by position (``Independent``, ``Coregion``)."""

    relative: ClassVar[tuple[str, ...]] = ()
    """Parameters without units, relative to another one (``Periodic``'s lengthscale, relative to its period)."""

    has_variance: ClassVar[bool] = False
    """Carries its own variance (:class:`Scaled`,
    :class:`~xkron.spec.trend_kernels.WhiteNoise`): a sum gives it no variance weight of its own."""

    def correlation(self, diffs: Sequence, params: Mapping[str, Any], xp=np):
        """Kernel values from coordinate differences.

        Parameters
        ----------
        diffs : sequence of arrays
            One array of differences ``x_k − x'_k`` per dim of the factor (all one shape).
        params : mapping
            ``ls`` is a sequence with one value per dim; other parameters are scalars.
        xp : module
            ``numpy`` or ``pytensor.tensor``.
        """
        ls = params["ls"]
        with np.errstate(over="ignore", under="ignore"):  # overflow gives r = inf, which each profile maps to 0
            if len(diffs) == 1:
                r = xp.abs(diffs[0]) / ls[0]
                return self._profile(r, r * r, params, xp)
            r2 = sum((d / ell) ** 2 for d, ell in zip(diffs, ls, strict=True))
            return self._profile(safe_sqrt(r2, xp), r2, params, xp)

    def _profile(self, r, r2, params, xp):
        raise NotImplementedError

    def evaluate(self, left: Sequence, right: Sequence, diffs: Sequence, params: Mapping[str, Any], xp=np):
        """Kernel values from mutually broadcasting coordinates ``left``, ``right`` and ``diffs = left − right``.

        Stationary kernels read ``diffs`` only; the others read the coordinates.
        """
        return self.correlation(diffs, params, xp=xp)

    def matrix(self, left: Sequence, right: Sequence, params: Mapping[str, Any], xp=np):
        """``k(left, right)``, shape ``left shape + right shape`` (one array of coordinates per dim each)."""
        left = [np.asarray(a, dtype=float) for a in left]
        right = [np.asarray(b, dtype=float) for b in right]
        a = [x.reshape(x.shape + (1,) * y.ndim) for x, y in zip(left, right, strict=True)]
        b = [y.reshape((1,) * x.ndim + y.shape) for x, y in zip(left, right, strict=True)]
        with np.errstate(over="ignore"):  # overflowing differences are inf: the kernels handle them
            diffs = [x - y for x, y in zip(a, b, strict=True)]
        return self.evaluate(a, b, diffs, params, xp=xp)

    def diag(self, points: Sequence, params: Mapping[str, Any]) -> np.ndarray:
        """``k(x, x)`` at each point (one array of coordinates per dim, all one shape), with numpy."""
        points = [np.asarray(x, dtype=float) for x in points]
        shape = np.broadcast_shapes(*(x.shape for x in points))
        zeros = [np.zeros(shape) for _ in points]
        return np.broadcast_to(self.evaluate(points, points, zeros, params, xp=np), shape)

    def max_distance(self, params: Mapping[str, Any]) -> list[float] | None:
        """Largest ``|x_k − x'_k|`` per dim at which the kernel is evaluated faithfully.

        ``None`` (no limit) for the kernels that decay: any distance, even an infinite one,
        gives their limit. A list for the periodic ones, whose phase within the period float64
        rounding loses beyond it (see :data:`PHASE_TOLERANCE`).
        """
        return None

    @property
    def name(self) -> str:
        return type(self).__name__

    def param_specs(self) -> dict[str, Any]:
        """Hyperparameter specs as given by the user (``None`` for defaults), by key."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def param_label(self, key: str) -> tuple[str, str]:
        """``(kind, suffix)`` of a parameter key: the kind picks its default prior and units, the
        suffix (``""``, or the part's number inside a combined kernel) ends its model variable name."""
        return key, ""

    def leaves(self) -> list[tuple[Kernel, dict[str, str]]]:
        """The kernel's parts that are not combinations, each with its keys' names in :meth:`param_specs`."""
        return [(self, {key: key for key in self.param_specs()})]

    def relative_keys(self) -> set[str]:
        """Keys of the parameters without units (:attr:`relative`), of every part."""
        return {binding[key] for leaf, binding in self.leaves() for key in leaf.relative}

    def describe(self, key: str) -> str:
        """Which part a parameter belongs to, for labels: ``"Matern52"``, ``"part 2 (ExpQuad)"``."""
        return self.name

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description (priors as ``Prior.to_dict()``)."""
        return {"kernel": self.name, "params": {k: spec_to_json(v) for k, v in self.param_specs().items()}}

    def __add__(self, other: Kernel) -> Kernel:
        if not isinstance(other, Kernel):
            return NotImplemented
        return Sum((self, other))

    def __mul__(self, other) -> Kernel:
        if isinstance(other, Kernel):
            return Product((self, other))
        if _is_scale(other):
            return Scaled(self, other)
        return NotImplemented

    def __rmul__(self, other) -> Kernel:
        return Scaled(self, other) if _is_scale(other) else NotImplemented


def _is_scale(value) -> bool:
    """A number or a Prior (a variance weight ``c`` in ``c * k``)."""
    return (isinstance(value, int | float | np.number) and not isinstance(value, bool)) or is_prior(value)


class Combination(Kernel):
    """Base of :class:`Sum`, :class:`Product` and :class:`Scaled`: a tree of kernels.

    The tree's parameters are numbered once, at construction, walking it depth first; each node
    that owns parameters (a :class:`Scaled` weight, a leaf kernel) gets its binding from its own
    keys to the tree's keys, found by its path of child indices.
    """

    decaying: ClassVar[bool] = False

    def _build(self) -> None:
        owners = list(_walk(self, ()))
        kinds = Counter(base for _, _, local in owners for base in local)
        seen: Counter = Counter()
        bindings, specs, labels, per_dim = {}, {}, {}, []
        for path, node, local in owners:
            binding = {}
            for key, spec in local.items():
                seen[key] += 1
                suffix = str(seen[key]) if kinds[key] > 1 else ""
                name = f"{key}_{suffix}" if suffix else key
                binding[key], specs[name], labels[name] = name, spec, (key, suffix, path)
                if key in node_per_dim(node):
                    per_dim.append(name)
            bindings[path] = binding
        object.__setattr__(self, "_bindings", bindings)
        object.__setattr__(self, "_specs", specs)
        object.__setattr__(self, "_labels", labels)
        object.__setattr__(self, "_per_dim", tuple(per_dim))

    @property
    def per_dim(self) -> tuple[str, ...]:  # type: ignore[override]
        return self._per_dim

    @property
    def stationary(self) -> bool:  # type: ignore[override]
        return all(leaf.stationary for leaf, _ in self.leaves())

    def param_specs(self) -> dict[str, Any]:
        return dict(self._specs)

    def param_label(self, key: str) -> tuple[str, str]:
        base, suffix, _ = self._labels[key]
        return base, suffix

    def leaves(self) -> list[tuple[Kernel, dict[str, str]]]:
        return [(node, self._bindings[path]) for path, node, _ in _walk(self, ()) if not isinstance(node, Scaled)]

    def leaf_paths(self) -> list[tuple[Path, Kernel, dict[str, str]]]:
        """Every leaf with its path and binding (for starting values that depend on a leaf's neighbours)."""
        return [(p, n, self._bindings[p]) for p, n, _ in _walk(self, ()) if not isinstance(n, Scaled)]

    def scale_paths(self) -> list[tuple[str, Path]]:
        """Every variance weight's key and the path of the part it weighs."""
        return [(self._bindings[p]["scale"], (*p, 0)) for p, n, _ in _walk(self, ()) if isinstance(n, Scaled)]

    def node(self, path: Path) -> Kernel:
        """The part of the tree at ``path``."""
        return reduce(lambda node, i: _children(node)[i], path, self)

    def evaluate(self, left, right, diffs, params, xp=np):
        return self.evaluate_part((), left, right, diffs, params, xp)

    def evaluate_part(self, path: Path, left, right, diffs, params, xp=np):
        """The values of the part at ``path`` alone (its weight not applied unless it is inside it)."""
        node = self.node(path)
        if isinstance(node, Scaled):
            inner = self.evaluate_part((*path, 0), left, right, diffs, params, xp)
            return params[self._bindings[path]["scale"]] * inner
        if isinstance(node, Sum | Product):
            values = [self.evaluate_part((*path, i), left, right, diffs, params, xp) for i in range(len(node.parts))]
            return reduce((lambda a, b: a + b) if isinstance(node, Sum) else (lambda a, b: a * b), values)
        return node.evaluate(left, right, diffs, _local(params, self._bindings[path]), xp=xp)

    def correlation(self, diffs, params, xp=np):
        if not self.stationary:
            raise TypeError(f"{self.name} is not a function of coordinate differences alone; use matrix()")
        return self.evaluate(None, None, diffs, params, xp)

    def max_distance(self, params):
        limits = [leaf.max_distance(_local(params, binding)) for leaf, binding in self.leaves()]
        limits = [lim for lim in limits if lim is not None]
        return [min(col) for col in zip(*limits, strict=True)] if limits else None

    def describe(self, key: str) -> str:
        base, _, path = self._labels[key]
        node = self.node(path)
        what = f"weight of {node.kernel.name}" if base == "scale" else node.name
        return f"{what} in {self.name}"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._key()))

    def _key(self):
        raise NotImplementedError


def node_per_dim(node: Kernel) -> tuple[str, ...]:
    """Per-dim keys of a node that owns parameters (a weight has none)."""
    return () if isinstance(node, Scaled) else tuple(node.per_dim)


def _children(node: Kernel) -> tuple[Kernel, ...]:
    if isinstance(node, Scaled):
        return (node.kernel,)
    return node.parts if isinstance(node, Sum | Product) else ()


def _walk(node: Kernel, path: Path):
    """``(path, node, own parameter specs)`` of every node that owns parameters, depth first."""
    if isinstance(node, Scaled):
        yield path, node, {"scale": node.scale}
    elif not isinstance(node, Sum | Product):
        yield path, node, node.param_specs()
        return
    for i, child in enumerate(_children(node)):
        yield from _walk(child, (*path, i))


def _local(params: Mapping[str, Any], binding: Mapping[str, str]) -> dict[str, Any]:
    return {key: params[name] for key, name in binding.items()}


def _check_parts(parts: Sequence, what: str) -> tuple[Kernel, ...]:
    parts = tuple(parts)
    for part in parts:
        if not isinstance(part, Kernel) or type(part) is Kernel:
            raise TypeError(f"a {what} combines kernels, got {part!r} ({type(part).__name__})")
    if len(parts) < 2:
        raise ValueError(f"a {what} needs at least two kernels, got {len(parts)}")
    return parts


class Sum(Combination):
    """The sum of kernels on one factor, each part but one with its own variance weight (see the module docstring)."""

    has_variance: ClassVar[bool] = True

    def __init__(self, parts: Sequence[Kernel]) -> None:
        flat = []
        for part in _check_parts(parts, "sum"):
            flat.extend(part.parts if type(part) is Sum else (part,))
        reference = next((i for i, p in enumerate(flat) if p.stationary and not p.has_variance), 0)
        weighted = tuple(p if i == reference or p.has_variance else Scaled(p, None) for i, p in enumerate(flat))
        object.__setattr__(self, "parts", weighted)
        self._build()

    @property
    def name(self) -> str:
        return " + ".join(p.name for p in self.parts)

    def _key(self):
        return self.parts

    def __repr__(self) -> str:
        return " + ".join(repr(p) for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": "Sum", "parts": [p.to_dict() for p in self.parts]}


class Product(Combination):
    """The product of kernels on one factor: ``Periodic() * Matern52()`` is a quasi-periodic factor."""

    def __init__(self, parts: Sequence[Kernel]) -> None:
        flat = []
        for part in _check_parts(parts, "product"):
            flat.extend(part.parts if type(part) is Product else (part,))
        object.__setattr__(self, "parts", tuple(flat))
        self._build()

    @property
    def has_variance(self) -> bool:  # type: ignore[override]
        return any(p.has_variance for p in self.parts)

    @property
    def name(self) -> str:
        return "*".join(f"({p.name})" if isinstance(p, Sum) else p.name for p in self.parts)

    def _key(self):
        return self.parts

    def __repr__(self) -> str:
        return " * ".join(f"({p!r})" if isinstance(p, Sum) else repr(p) for p in self.parts)

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": "Product", "parts": [p.to_dict() for p in self.parts]}


class Scaled(Combination):
    """``c * k``: a kernel with a variance weight ``c`` (a number: fixed; a Prior; ``None``: the default prior).

    The default prior is ``LogNormal`` with 98% of its mass between 1% and 100 times the ratio
    of the reference part's variance to this part's (both 1 for stationary kernels; a
    :class:`~xkron.spec.trend_kernels.Linear` part's is the coordinate's variance about its pivot).
    """

    has_variance: ClassVar[bool] = True

    def __init__(self, kernel: Kernel, scale: Any = None) -> None:
        if not isinstance(kernel, Kernel) or type(kernel) is Kernel:
            raise TypeError(f"Scaled weighs a kernel, got {kernel!r} ({type(kernel).__name__})")
        if scale is not None and not is_prior(scale):
            scale = float(scale)
            if not np.isfinite(scale) or scale <= 0:
                raise ValueError(f"the weight c={scale} in c * {kernel.name} must be a finite number > 0")
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "scale", scale)
        self._build()

    @property
    def name(self) -> str:
        weight = f"{self.scale:g}" if isinstance(self.scale, float) else "c"
        inner = f"({self.kernel.name})" if isinstance(self.kernel, Sum) else self.kernel.name
        return f"{weight}*{inner}"

    def _key(self):
        return (self.kernel, repr(self.scale))

    def __repr__(self) -> str:
        return f"Scaled({self.kernel!r}, scale={self.scale!r})"

    def to_dict(self) -> dict[str, Any]:
        return {"kernel": "Scaled", "scale": spec_to_json(self.scale), "part": self.kernel.to_dict()}
