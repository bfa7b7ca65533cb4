"""Observation models of latent Kronecker GPs: link, PyMC distribution, data checks, priors.

A likelihood ties the latent field ``f`` (one value per grid cell) to the data through an
inverse link ``g⁻¹``. Its extra hyperparameters (``noise``, ``nu``, ``dispersion``,
``shape``) are, like kernel hyperparameters, ``None`` (the default prior below), a number
(fixed) or a :class:`pymc_extras.prior.Prior`.

==================  =======  ==========================================  ===========================
name                link     observation                                 extra (default prior)
==================  =======  ==========================================  ===========================
gaussian            identity ``Normal(f, noise)``                        noise ``HalfNormal(sd(y))``
student_t           identity ``StudentT(nu, f, noise)``                  noise ``HalfNormal(sd(y))``,
                                                                         nu ``Gamma(2, 0.1)``
poisson             log      ``Poisson(exposure · e^f)``                 —
negative_binomial   log      ``NegativeBinomial(exposure · e^f,          dispersion
                             dispersion)``, var ``μ + μ²/dispersion``    ``LogNormal(log 5, 1.5)``
bernoulli           logit    ``Bernoulli(logit_p=f)``                    —
binomial            logit    ``Binomial(trials, logit_p=f)``             —
gamma               log      ``Gamma`` with mean ``e^f``, var            shape ``LogNormal(log 2, 1.5)``
                             ``e^{2f}/shape``
==================  =======  ==========================================  ===========================

Reasoning for the defaults: ``nu ~ Gamma(2, 0.1)`` is Juárez & Steel's (2010) prior (mean 20,
it keeps heavy tails possible without favouring them). ``dispersion`` and ``shape`` are
LogNormal with 90% of their mass over two orders of magnitude (about 0.4-60 and 0.2-24), from
strong overdispersion (skewed amounts) to nearly Poisson (nearly symmetric). The scale priors
of the latent GP on the link scale are in :func:`latent_scale_priors`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:  # PyMC is imported when a prior is built, not with xkron
    from pymc_extras.prior import Prior

from xkron.spec.prior_types import new_prior
from xkron.spec.priors import data_priors


def _special():
    """``scipy.special``, imported on first use (the CLI's option parsing needs none of it)."""
    import scipy.special

    return scipy.special


__all__ = [
    "LIKELIHOODS",
    "Bernoulli",
    "Binomial",
    "Gamma",
    "Gaussian",
    "Likelihood",
    "NegativeBinomial",
    "Poisson",
    "StudentT",
    "latent_scale_priors",
    "resolve_likelihood",
]


@dataclass(frozen=True)
class Likelihood:
    """Base class: subclasses set ``name``, ``link`` and, if any, extra hyperparameters."""

    name: ClassVar[str] = ""
    link: ClassVar[str] = "identity"
    params: ClassVar[tuple[str, ...]] = ()
    data_fields: ClassVar[tuple[str, ...]] = ()
    log_density_max: ClassVar[float | None] = None
    """An upper bound of ``log p(y | f)`` per cell whatever ``f`` and the hyperparameters: 0 for a
    probability mass function (counts, yes/no), ``None`` for a density, which has none."""

    def param_specs(self) -> dict[str, Any]:
        return {p: getattr(self, p) for p in self.params}

    def default_priors(self, y: np.ndarray) -> dict[str, Prior]:
        return {}

    def check(self, y: np.ndarray, where: Callable[[np.ndarray], str], data: Mapping[str, Any]) -> None:
        """Raise ``ValueError`` for data the distribution cannot produce (``where(mask)`` names cells).

        NaN cells are unobserved and pass.
        """

    def location(self, y: np.ndarray, data: Mapping[str, np.ndarray]) -> float:
        """A typical value of ``f`` (link scale), to centre the mean's default prior."""
        return float(np.mean(y))

    def rough_field(self, y: np.ndarray, data: Mapping[str, Any]) -> np.ndarray:
        """A crude estimate of ``f`` from the data (link of a shrunk rate), for starting values."""
        if self.link == "log":
            return np.log((y + 0.5) / np.asarray(data.get("exposure", 1.0)))
        if self.link == "logit":
            trials = np.asarray(data.get("trials", 1.0))
            return _special().logit((y + 0.5) / (trials + 1.0))
        return np.asarray(y, dtype=float)

    def observe(self, f, values: Mapping[str, Any], data: Mapping[str, np.ndarray], observed):
        """Create the observed PyMC variable ``y`` (inside a model context)."""
        raise NotImplementedError

    def draw(self, f: np.ndarray, values, data, rng: np.random.Generator) -> np.ndarray:
        """Draw observations given the latent field ``f``."""
        raise NotImplementedError

    def with_data(self, **arrays) -> Likelihood:
        return replace(self, **arrays)

    def given_data(self) -> dict[str, Any]:
        """The per-cell data given (``noise_sd``, ``exposure``, ``trials``: numbers or arrays), by name."""
        return {n: getattr(self, n) for n in self.data_fields if getattr(self, n) is not None}

    def to_dict(self) -> dict:
        from xkron.spec.prior_types import spec_to_json

        out: dict[str, Any] = {"likelihood": self.name}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.data_fields and np.ndim(value) > 0:
                out[f.name] = "__data__"
            else:
                out[f.name] = spec_to_json(value)
        return out


def _where(mask: np.ndarray, where, what: str) -> str:
    return f"{int(mask.sum())} of {mask.size} values are {what}, first at {where(mask)}"


def _check_counts(y, where, name):
    frac = (y != np.round(y)) & ~np.isnan(y)
    if np.any(y < 0) or np.any(frac):
        bad = (y < 0) | frac
        raise ValueError(
            f"{name} data must be non-negative integer counts: {_where(bad, where, 'negative or not whole')}. "
            "Use likelihood='gaussian' or 'gamma' for continuous data."
        )


def _check_exposure(data, where):
    bad = ~(np.asarray(data.get("exposure", 1.0)) > 0)
    if bad.any():
        raise ValueError(f"exposure must be > 0: {_where(bad, where, '<= 0')}")


def _log_rate(y, exposure) -> float:
    rate = float(np.sum(y) / np.sum(np.broadcast_to(exposure, y.shape)))
    return float(np.log(max(rate, 0.5 / y.size)))


@dataclass(frozen=True)
class Gaussian(Likelihood):
    """``y ~ Normal(f, √(noise² + noise_sd²))``. Fitted marginally (f integrated out) unless ``latent=True``.

    ``noise`` is the fitted (or fixed) sd shared by all cells; ``noise_sd`` is a known
    measurement-error sd per cell (a DataArray on some or all of the data's dims, or a
    number), added in variance: a retrieval uncertainty, say.
    """

    noise: Any = None
    noise_sd: Any = None
    name: ClassVar[str] = "gaussian"
    params: ClassVar[tuple[str, ...]] = ("noise",)
    data_fields: ClassVar[tuple[str, ...]] = ("noise_sd",)

    def check(self, y, where, data):
        if "noise_sd" not in data:
            return
        sd = np.broadcast_to(np.asarray(data["noise_sd"], dtype=float), np.shape(y))
        bad = ~np.isnan(y) & ~(sd >= 0)
        if bad.any():
            raise ValueError(
                f"noise_sd must be a finite sd >= 0 at every observed cell: {_where(bad, where, 'negative or NaN')}. "
                "Mask those cells (mask=) or give them a value."
            )

    def default_priors(self, y):
        return {"noise": data_priors(float(np.mean(y)), _scale(y))["noise"]}

    def total_sd(self, values, data, xp=np):
        """``√(noise² + noise_sd²)`` per cell (just ``noise`` without known noise)."""
        if "noise_sd" not in data:
            return values["noise"]
        return xp.sqrt(values["noise"] ** 2 + np.square(data["noise_sd"]))

    def observe(self, f, values, data, observed):
        import pymc as pm
        import pytensor.tensor as pt

        return pm.Normal("y", mu=f, sigma=self.total_sd(values, data, xp=pt), observed=observed)

    def draw(self, f, values, data, rng):
        return f + self.total_sd(values, data) * rng.standard_normal(f.shape)


@dataclass(frozen=True)
class StudentT(Likelihood):
    """``y ~ StudentT(nu, f, noise)``: Gaussian-like with heavy tails for outliers."""

    noise: Any = None
    nu: Any = None
    name: ClassVar[str] = "student_t"
    params: ClassVar[tuple[str, ...]] = ("noise", "nu")

    def default_priors(self, y):
        return {"noise": new_prior("HalfNormal", sigma=_scale(y)), "nu": new_prior("Gamma", alpha=2, beta=0.1)}

    def observe(self, f, values, data, observed):
        import pymc as pm

        return pm.StudentT("y", nu=values["nu"], mu=f, sigma=values["noise"], observed=observed)

    def draw(self, f, values, data, rng):
        return f + values["noise"] * rng.standard_t(values["nu"], size=f.shape)


@dataclass(frozen=True)
class _Counts(Likelihood):
    """Counts with mean ``exposure · exp(f)``; ``exposure`` (> 0) is a number or a DataArray."""

    exposure: Any = None
    link: ClassVar[str] = "log"
    data_fields: ClassVar[tuple[str, ...]] = ("exposure",)
    log_density_max: ClassVar[float | None] = 0.0

    def check(self, y, where, data):
        _check_exposure(data, where)
        _check_counts(y, where, self.name)

    def location(self, y, data):
        return _log_rate(y, data.get("exposure", 1.0))

    @staticmethod
    def expected(f, data, exp=np.exp):
        return data.get("exposure", 1.0) * exp(f)


@dataclass(frozen=True)
class Poisson(_Counts):
    """``y ~ Poisson(exposure · exp(f))``; ``exposure`` (> 0) is a number or a DataArray."""

    name: ClassVar[str] = "poisson"

    def observe(self, f, values, data, observed):
        import pymc as pm
        import pytensor.tensor as pt

        return pm.Poisson("y", mu=self.expected(f, data, pt.exp), observed=observed)

    def draw(self, f, values, data, rng):
        return rng.poisson(self.expected(f, data)).astype(float)


@dataclass(frozen=True)
class NegativeBinomial(_Counts):
    """``y ~ NegativeBinomial(mu=exposure · exp(f), alpha=dispersion)``: overdispersed counts."""

    dispersion: Any = None
    name: ClassVar[str] = "negative_binomial"
    params: ClassVar[tuple[str, ...]] = ("dispersion",)

    def default_priors(self, y):
        return {"dispersion": new_prior("LogNormal", mu=float(np.log(5.0)), sigma=1.5)}

    def observe(self, f, values, data, observed):
        import pymc as pm
        import pytensor.tensor as pt

        mu = self.expected(f, data, pt.exp)
        return pm.NegativeBinomial("y", mu=mu, alpha=values["dispersion"], observed=observed)

    def draw(self, f, values, data, rng):
        mu, alpha = self.expected(f, data), values["dispersion"]
        return rng.negative_binomial(alpha, alpha / (alpha + mu)).astype(float)


@dataclass(frozen=True)
class Bernoulli(Likelihood):
    """``y ~ Bernoulli(logit_p=f)``: presence/absence, exceedances (0/1 or bool data)."""

    name: ClassVar[str] = "bernoulli"
    link: ClassVar[str] = "logit"
    log_density_max: ClassVar[float | None] = 0.0

    def check(self, y, where, data):
        bad = (y != 0) & (y != 1) & ~np.isnan(y)
        if bad.any():
            raise ValueError(f"bernoulli data must be 0 or 1: {_where(bad, where, 'neither 0 nor 1')}.")

    def location(self, y, data):
        return float(_special().logit(np.clip(np.mean(y), 0.01, 0.99)))

    def observe(self, f, values, data, observed):
        import pymc as pm

        return pm.Bernoulli("y", logit_p=f, observed=observed)

    def draw(self, f, values, data, rng):
        return (rng.random(f.shape) < _special().expit(f)).astype(float)


@dataclass(frozen=True)
class Binomial(Likelihood):
    """``y ~ Binomial(trials, logit_p=f)``; ``trials`` is a whole number or a DataArray."""

    trials: Any = None
    name: ClassVar[str] = "binomial"
    link: ClassVar[str] = "logit"
    data_fields: ClassVar[tuple[str, ...]] = ("trials",)
    log_density_max: ClassVar[float | None] = 0.0

    def check(self, y, where, data):
        if "trials" not in data:
            raise ValueError("binomial needs trials: xkron.Binomial(trials=n) with a number or a DataArray")
        _check_counts(np.broadcast_to(data["trials"], y.shape), where, "binomial trials")
        _check_counts(y, where, self.name)
        above = y > data["trials"]
        if above.any():
            raise ValueError(f"binomial counts exceed their trials: {_where(above, where, 'above trials')}.")

    def location(self, y, data):
        p = np.sum(y) / np.sum(np.broadcast_to(data["trials"], y.shape))
        return float(_special().logit(np.clip(p, 0.01, 0.99)))

    def observe(self, f, values, data, observed):
        import pymc as pm

        return pm.Binomial("y", n=data["trials"], logit_p=f, observed=observed)

    def draw(self, f, values, data, rng):
        return rng.binomial(np.asarray(data["trials"], dtype=np.int64), _special().expit(f)).astype(float)


@dataclass(frozen=True)
class Gamma(Likelihood):
    """``y ~ Gamma`` with mean ``exp(f)`` and shape ``shape`` (sd ``exp(f)/√shape``): positive amounts."""

    shape: Any = None
    name: ClassVar[str] = "gamma"
    link: ClassVar[str] = "log"
    params: ClassVar[tuple[str, ...]] = ("shape",)

    def default_priors(self, y):
        return {"shape": new_prior("LogNormal", mu=float(np.log(2.0)), sigma=1.5)}

    def check(self, y, where, data):
        bad = ~(y > 0) & ~np.isnan(y)
        if bad.any():
            raise ValueError(
                f"gamma data must be > 0: {_where(bad, where, '<= 0')}. "
                "For amounts with exact zeros, model occurrence (bernoulli) and amount separately."
            )

    def location(self, y, data):
        return float(np.log(np.mean(y)))

    def observe(self, f, values, data, observed):
        import pymc as pm
        import pytensor.tensor as pt

        shape = values["shape"]
        return pm.Gamma("y", alpha=shape, beta=shape * pt.exp(-f), observed=observed)

    def draw(self, f, values, data, rng):
        shape = values["shape"]
        return rng.gamma(shape, np.exp(f) / shape)


LIKELIHOODS: dict[str, type[Likelihood]] = {
    cls.name: cls for cls in (Gaussian, StudentT, Poisson, NegativeBinomial, Bernoulli, Binomial, Gamma)
}


def _scale(y: np.ndarray) -> float:
    sd = float(np.std(y))
    return sd if np.isfinite(sd) and sd > 0 else 1.0


def latent_scale_priors(likelihood: Likelihood, y: np.ndarray, data: Mapping[str, np.ndarray]) -> dict[str, Prior]:
    """Default priors of the latent GP's amplitude and constant mean, on the link scale.

    Identity link: as the marginal model (:func:`xkron.spec.priors.data_priors`). Log and logit links:
    ``amplitude ~ HalfNormal(1.5)`` (one sd is a factor e^1.5 ≈ 4.5 in a rate, or a swing
    from 0.18 to 0.82 in a probability) and ``mean ~ Normal(g(ȳ), 2)`` centred on the
    link of the pooled rate or proportion.
    """
    if likelihood.link == "identity":
        defaults = data_priors(float(np.mean(y)), _scale(y))
        return {"amplitude": defaults["amplitude"], "mean": defaults["mean"]}
    return {
        "amplitude": new_prior("HalfNormal", sigma=1.5),
        "mean": new_prior("Normal", mu=likelihood.location(y, data), sigma=2.0),
    }


def resolve_likelihood(likelihood) -> Likelihood:
    """A likelihood given by name or as an object, checked."""
    if isinstance(likelihood, Likelihood):
        return likelihood
    if isinstance(likelihood, type) and issubclass(likelihood, Likelihood) and likelihood.name:
        return likelihood()
    if isinstance(likelihood, str):
        key = likelihood.lower().replace("-", "_")
        key = {"normal": "gaussian", "studentt": "student_t", "negbin": "negative_binomial"}.get(key, key)
        if key in LIKELIHOODS:
            return LIKELIHOODS[key]()
    raise ValueError(
        f"likelihood={likelihood!r} is not known: use one of {sorted(LIKELIHOODS)} "
        "or an object such as xkron.Poisson(exposure=...)"
    )


def likelihood_from_dict(d: Mapping, data: Mapping[str, Any] | None = None) -> Likelihood:
    """Inverse of :meth:`Likelihood.to_dict`; ``data`` supplies the DataArray fields."""
    from xkron.spec.prior_types import spec_from_json

    cls = LIKELIHOODS[d["likelihood"]]
    kwargs = {}
    for f in fields(cls):
        value = d.get(f.name)
        kwargs[f.name] = (data or {})[f.name] if value == "__data__" else spec_from_json(value)
    return cls(**kwargs)
