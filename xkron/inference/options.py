"""Every option of one fit in one object: :class:`FitOptions`.

:func:`xkron.fit` takes its options as keywords (its signature and docstring are the user's
reference); :func:`xkron.inference.arguments.check_call` checks them and returns this object,
with the likelihood, the form (latent or marginal) and the method resolved. From then on the
fit passes the object whole: to :func:`xkron.inference.prepare.prepare`, to the inference
(:func:`xkron.inference.run.run_inference`), and to the two fits that run other fits, on a
subsample (:meth:`FitOptions.thinned`) and per batch slice (:func:`xkron.inference.batch.slice_options`),
so that no option is re-passed by hand, or missed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import xarray as xr

from xkron.spec.likelihoods import Likelihood

__all__ = ["BATCH_ERRORS", "METHODS", "FitOptions", "thin_for_subsample"]

METHODS = ("map", "nuts", "advi", "laplace", "inla")
"""Inference methods of ``fit(method=...)``."""

BATCH_ERRORS = ("raise", "record")
"""What ``fit(batch_dims=..., errors=...)`` does with a failing slice."""


@dataclass(frozen=True)
class FitOptions:
    """The checked options of :func:`xkron.fit`: every keyword but the data and the kernels.

    Fields are named as ``fit``'s keywords and mean the same (see its docstring), except that
    ``likelihood`` is the resolved object, ``latent`` a bool and ``method`` never ``None``.
    ``sample_kwargs`` are the extra keywords for the method's PyMC function or the MAP.
    """

    likelihood: Likelihood
    latent: bool
    collapse: bool | None
    mask: Any
    amplitude: Any
    noise: Any
    noise_sd: Any
    mean: Any
    method: str
    restarts: int
    solver: str
    solver_options: Mapping[str, Any] | None
    subsample: Mapping[str, int] | None
    batch_dims: str | Sequence[str] | None
    shared: bool
    errors: str
    random_seed: int | None
    progressbar: bool
    sample_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def keywords(cls) -> tuple[str, ...]:
        """``fit``'s own keyword names (for "did you mean" on a misspelt one)."""
        return tuple(f.name for f in fields(cls) if f.name != "sample_kwargs")

    @property
    def form(self) -> str:
        """``"latent"`` (the field is sampled) or ``"marginal"`` (it is integrated out)."""
        return "latent" if self.latent else "marginal"

    def thinned(self, steps: Mapping[str, int]) -> FitOptions:
        """The options of the fit on the subsample: no ``subsample``; the mask and the per-cell data
        (``noise_sd``, or the likelihood's ``noise_sd``, ``exposure``, ``trials``) thinned like the data."""
        likelihood = self.likelihood
        fields = likelihood.given_data()
        if fields:  # noise_sd, exposure, trials
            likelihood = replace(likelihood, **{n: thin_for_subsample(v, steps) for n, v in fields.items()})
        return replace(
            self,
            subsample=None,
            likelihood=likelihood,
            mask=thin_for_subsample(self.mask, steps),
            noise_sd=thin_for_subsample(self.noise_sd, steps),
        )

    @property
    def known_noise_sd(self) -> Any:
        """The known per-cell noise sd as given: ``fit(noise_sd=...)`` or the likelihood's (``None`` if neither)."""
        return self.noise_sd if self.noise_sd is not None else getattr(self.likelihood, "noise_sd", None)

    def unbatched(self, **changes) -> FitOptions:
        """The options of one fit of a batch (``shared=True``: the whole batch in one fit)."""
        return replace(self, batch_dims=None, shared=False, errors="raise", **changes)


def thin_for_subsample(value: Any, steps: Mapping[str, int]) -> Any:
    """A per-cell input (a DataArray) thinned along the subsampled dims it has, like the data."""
    if isinstance(value, xr.DataArray):
        return value.isel({d: slice(None, None, int(k)) for d, k in steps.items() if d in value.dims})
    return value
