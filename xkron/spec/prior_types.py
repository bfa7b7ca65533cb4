"""PyMC priors as hyperparameter specs, without importing PyMC until a model needs it.

``pymc_extras.prior`` imports PyMC and PyTensor, which takes seconds; ``import xkron``,
``xkron --help`` and ``xkron info`` need neither. A spec that *is* a
:class:`pymc_extras.prior.Prior` was built by someone who imported that module already, so
:func:`is_prior` looks the class up in ``sys.modules`` instead of importing it, and
:func:`new_prior` imports it only when xkron itself builds a default prior (during a fit, when
PyMC is needed anyway).
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

__all__ = [
    "PRIOR_MODULE",
    "SavedPrior",
    "deferred_priors",
    "is_prior",
    "new_prior",
    "prior_from_dict",
    "spec_from_json",
    "spec_to_json",
]

PRIOR_MODULE = "pymc_extras.prior"
"""Where :class:`~pymc_extras.prior.Prior` lives."""


def is_prior(obj: Any) -> bool:
    """Whether ``obj`` is a :class:`pymc_extras.prior.Prior` (never imports PyMC).

    Examples
    --------
    >>> is_prior(0.5)
    False
    >>> from pymc_extras.prior import Prior
    >>> is_prior(Prior("HalfNormal", sigma=1))
    True
    """
    if isinstance(obj, SavedPrior):
        return True
    module = sys.modules.get(PRIOR_MODULE)
    return module is not None and isinstance(obj, module.Prior)


def new_prior(distribution: str, **parameters: Any):
    """``pymc_extras.prior.Prior(distribution, **parameters)``, importing it on first use.

    Examples
    --------
    >>> new_prior("Gamma", alpha=2, beta=1).distribution
    'Gamma'
    """
    from pymc_extras.prior import Prior

    return Prior(distribution, **parameters)


_DEFER = contextvars.ContextVar("xkron_defer_priors", default=False)


@contextlib.contextmanager
def deferred_priors() -> Iterator[None]:
    """Within this block :func:`prior_from_dict` gives :class:`SavedPrior` stand-ins (no PyMC).

    ``xkron.open_fit(path, defer_priors=True)`` reads a fit this way: what ``xkron info``
    does, where the priors are shown from their stored descriptions and never built.
    """
    token = _DEFER.set(True)
    try:
        yield
    finally:
        _DEFER.reset(token)


def prior_from_dict(data: dict):
    """The prior of a ``Prior.to_dict()`` description: a :class:`~pymc_extras.prior.Prior`, or
    a :class:`SavedPrior` inside :func:`deferred_priors`."""
    if _DEFER.get():
        return SavedPrior(data)
    from pymc_extras.prior import Prior

    return Prior.from_dict(data)


class SavedPrior:
    """A prior read back from a saved fit, with PyMC imported only when it is first used.

    Holds the prior's ``to_dict()`` form; every attribute of the
    :class:`~pymc_extras.prior.Prior` (``create_variable``, ``distribution``, ...) is reached
    through it, building the prior on first access. Reading a fit (``xkron info``) therefore
    needs no PyMC; predicting needs none either, and building the model builds the priors.

    Examples
    --------
    >>> saved = SavedPrior({"dist": "HalfNormal", "kwargs": {"sigma": 2.0}})
    >>> saved.to_dict()["dist"], is_prior(saved)
    ('HalfNormal', True)
    >>> saved.distribution
    'HalfNormal'
    """

    def __init__(self, data: dict):
        self._data = data
        self._prior = None

    @property
    def prior(self):
        """The :class:`~pymc_extras.prior.Prior` itself (imports PyMC)."""
        if self._prior is None:
            from pymc_extras.prior import Prior

            self._prior = Prior.from_dict(self._data)
        return self._prior

    def to_dict(self) -> dict:
        return self._data

    def __getattr__(self, name: str):
        if name.startswith("__") or name in ("_data", "_prior"):
            raise AttributeError(name)
        return getattr(self.prior, name)

    def __eq__(self, other) -> bool:
        if isinstance(other, SavedPrior):
            return self._data == other._data
        return is_prior(other) and self.prior == other

    def __hash__(self) -> int:
        return hash(repr(self._data))

    def __repr__(self) -> str:
        return repr(self.prior)


def spec_to_json(spec):
    """A hyperparameter spec in JSON form: numbers as they are, priors as ``Prior.to_dict()``, per-dim dicts tagged."""
    if spec is None or isinstance(spec, int | float | str):
        return spec
    if isinstance(spec, Mapping):
        return {"__dims__": {k: spec_to_json(v) for k, v in spec.items()}}
    if isinstance(spec, list | tuple | np.ndarray):
        return [spec_to_json(v) for v in spec]
    if hasattr(spec, "to_dict"):
        return {"__prior__": spec.to_dict()}
    raise TypeError(f"cannot serialise hyperparameter spec {spec!r}")


def spec_from_json(obj):
    """Inverse of :func:`spec_to_json`."""
    if isinstance(obj, dict) and "__dims__" in obj:
        return {k: spec_from_json(v) for k, v in obj["__dims__"].items()}
    if isinstance(obj, dict) and "__prior__" in obj:
        return prior_from_dict(obj["__prior__"])
    if isinstance(obj, list):
        return [spec_from_json(v) for v in obj]
    return obj
