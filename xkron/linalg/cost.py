"""Cost estimates of fits, predictions and sample fields, checked before the heavy work starts.

The costs of a Kronecker GP follow from sizes alone: an eigendecomposition per factor (``n³``
time, ``n²`` memory; a factor over several dims has as many inputs as the product of their
lengths), mode products over the grid (``N Σ n_i``), and, for sample fields on new coordinates,
eigendecompositions of each factor's union of training and new inputs. The estimates below are
orders of magnitude, not timings: a request estimated to take longer than :data:`WARN_SECONDS`
or more than :data:`WARN_MEMORY_FRACTION` of the available memory gets a :class:`CostWarning`
saying what is costly and how to avoid it; one estimated to need more memory than is available
is refused with a :class:`CostError` (a ``MemoryError``) before anything is allocated.
Silence the warnings with ``warnings.filterwarnings("ignore", category=xkron.CostWarning)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from xkron.errors import CostError, CostWarning
from xkron.settings import (
    EIGH_RATE,
    FLOP_RATE,
    LAPLACE_EVALUATIONS,
    LAPLACE_MATVECS_PER_EVALUATION,
    MAP_EVALUATIONS,
    NUTS_EVALUATIONS_PER_DRAW,
    REFUSE_MEMORY_FRACTION,
    WARN_MEMORY_FRACTION,
    WARN_SECONDS,
)

__all__ = [
    "Estimate",
    "available_memory",
    "check",
    "check_fit_cost",
    "eigh_seconds",
    "fit_estimate",
    "predict_estimate",
    "sample_estimate",
]


BYTES = 8
"""float64."""


@dataclass
class Estimate:
    """What a request costs, and what would make it cheaper.

    Attributes
    ----------
    what : str
        The request, e.g. ``"sample()"``.
    seconds : float
        Estimated time (order of magnitude).
    nbytes : float
        Estimated peak memory of the request's own arrays.
    reasons : list of str
        The costly parts, e.g. ``"an eigendecomposition of 11,789 union inputs of the factor ..."``.
    ways_out : list of str
        Cheaper ways to get the result.
    """

    what: str
    seconds: float = 0.0
    nbytes: float = 0.0
    reasons: list[str] = field(default_factory=list)
    ways_out: list[str] = field(default_factory=list)

    def message(self, memory: float | None) -> str:
        mem = f"{_size(self.nbytes)} of memory" + (f" ({_size(memory)} available)" if memory else "")
        text = f"{self.what} is estimated to take {_duration(self.seconds)} and {mem}"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        if self.ways_out:
            text += ". Cheaper: " + "; or ".join(self.ways_out)
        return text + "."


def eigh_seconds(n: int) -> float:
    """Estimated seconds of one eigendecomposition of an ``n × n`` symmetric matrix."""
    return float(n) ** 3 / EIGH_RATE


def available_memory() -> float | None:
    """Bytes of memory available to this process now (``None`` where psutil is not installed)."""
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil comes with dask.distributed
        return None
    return float(psutil.virtual_memory().available)


def check(estimate: Estimate, stacklevel: int = 3) -> None:
    """Refuse (:class:`CostError`) or warn (:class:`CostWarning`) about a costly request; silent otherwise."""
    memory = available_memory()
    if memory is not None and estimate.nbytes > REFUSE_MEMORY_FRACTION * memory:
        raise CostError(estimate.message(memory).replace("is estimated to", "would", 1) + " Nothing was computed.")
    if estimate.seconds > WARN_SECONDS or (memory is not None and estimate.nbytes > WARN_MEMORY_FRACTION * memory):
        warnings.warn(estimate.message(memory), CostWarning, stacklevel=stacklevel)


def factor_label(factor) -> str:
    """``('latitude', 'longitude') factor (1,421 inputs)``."""
    dims = factor.dims[0] if len(factor.dims) == 1 else factor.dims
    return f"{dims!r} factor ({factor.size:,} inputs)"


def split_advice(factors) -> list[str]:
    """Advice for costly multi-dim factors: split them into one factor per dim."""
    out = []
    for f in factors:
        if len(f.dims) > 1 and f.size > 500:
            product = f.kernel.name in ("ExpQuad", "Cosine") and f.subset is None
            same = f" (the same model: {f.kernel.name} is a product over dims)" if product else ""
            out.append(f"one factor per dim instead of {f.dims!r}{same}")
    return out


def fit_estimate(spec, n_observed: int, method: str = "map", sample_kwargs: Mapping | None = None) -> Estimate:
    """Cost of fitting ``spec`` to ``n_observed`` cells with ``method`` (see :func:`check_fit_cost`)."""
    sizes = [f.size for f in spec.factors]
    n = int(np.prod(sizes))
    kwargs = dict(sample_kwargs or {})
    per_eval = 0.0
    if method == "map":
        evaluations = MAP_EVALUATIONS
    elif method in ("laplace", "inla"):
        evaluations = LAPLACE_EVALUATIONS * (2 if method == "inla" else 1)
        per_eval = LAPLACE_MATVECS_PER_EVALUATION * 2 * n * sum(sizes) / FLOP_RATE
    else:
        draws = kwargs.get("draws", 1000) + kwargs.get("tune", 1000)
        evaluations = MAP_EVALUATIONS + NUTS_EVALUATIONS_PER_DRAW * draws * kwargs.get("chains", 4)
    per_eval += sum(eigh_seconds(s) + 2 * s**3 / FLOP_RATE for s in sizes) + 4 * n * sum(sizes) / FLOP_RATE
    nbytes = BYTES * (6 * sum(s * s for s in sizes) + 8 * n)
    est = Estimate(f"fit(method={method!r})")
    big = max(spec.factors, key=lambda f: f.size)
    if spec.solver.name == "dense" and not spec.latent:
        per_eval += 2 * n_observed**3 / FLOP_RATE
        nbytes += BYTES * 4 * n_observed**2
        est.reasons.append(f"the dense solver factorises {n_observed:,} observed cells at each evaluation")
        est.ways_out.append("solver='iterative'")
    if eigh_seconds(big.size) > 0.01:
        est.reasons.append(f"each of about {evaluations:,} evaluations decomposes the {factor_label(big)}")
    est.seconds, est.nbytes = evaluations * per_eval, nbytes
    est.ways_out += split_advice(spec.factors)
    est.ways_out.append("subsample={dim: k} to fit the hyperparameters on every k-th cell (then condition())")
    return est


def check_fit_cost(
    spec, n_observed: int, method: str = "map", sample_kwargs: Mapping | None = None, stacklevel: int = 4
) -> None:
    """Warn or refuse before a fit whose factor sizes make it slow or larger than memory.

    Call it once the model's factors are known and before the model is built.

    Parameters
    ----------
    spec : xkron.spec.modelspec.ModelSpec
        Factors (their sizes), solver and whether the model is latent.
    n_observed : int
        Observed cells.
    method : str
        ``"map"``, ``"laplace"``, ``"nuts"`` or ``"advi"``.
    sample_kwargs : mapping, optional
        ``draws``, ``tune``, ``chains`` of a sampling fit.
    stacklevel : int
        Of the warning, counted from :func:`check`.
    """
    check(fit_estimate(spec, n_observed, method, sample_kwargs), stacklevel=stacklevel)


def grid_estimate(
    what: str,
    factors: Sequence,
    test_sizes: Sequence[int],
    draws: int,
    conditioned: bool,
) -> Estimate:
    """Time and memory common to predictions and sample fields: conditioning and cross-covariances.

    ``test_sizes[i]`` is the number of new inputs of factor ``i``; ``conditioned`` says whether
    the posteriors are already conditioned (cached): their eigendecompositions are then already paid.
    """
    sizes = [f.size for f in factors]
    est = Estimate(what)
    if not conditioned:
        est.seconds += draws * sum(eigh_seconds(s) for s in sizes)
    est.seconds += draws * sum(m * n * n for m, n in zip(test_sizes, sizes, strict=True)) / FLOP_RATE
    est.nbytes += BYTES * (
        3 * sum(s * s for s in sizes) + 2 * sum(m * n for m, n in zip(test_sizes, sizes, strict=True))
    )
    if draws > 1 and not conditioned:
        est.reasons.append(f"it conditions the GP at each of {draws:,} posterior draws")
    return est


def n_posteriors(fit) -> int:
    """Hyperparameter draws of a fit (1 for MAP)."""
    return int(np.prod([fit.params.sizes[d] for d in ("chain", "draw") if d in fit.params.dims]))


def predict_estimate(fit, test_sizes: Sequence[int], out_cells: int, n_out: int, per_draw: bool, lazy: bool):
    """Cost of :meth:`xkron.KronFit.predict`: ``test_sizes`` new inputs per factor, ``out_cells`` output cells.

    ``n_out`` counts the summaries per cell (mean, variance and quantiles); ``lazy`` (dask-backed
    coordinates) leaves the output to dask's chunks.
    """
    draws = n_posteriors(fit)
    factors = fit.spec.factors
    est = grid_estimate("predict()", factors, test_sizes, draws, "_posterior_cache" in fit.__dict__)
    est.seconds += draws * 2 * out_cells * sum(f.size for f in factors) / FLOP_RATE
    if fit.spec.solver.name == "dense" and not fit.spec.latent:
        n_o = int(np.prod([f.size for f in factors]))
        est.seconds += draws * out_cells * n_o * n_o / FLOP_RATE
        est.reasons.append(f"the exact variance solves against {n_o:,} observed cells for each of {out_cells:,} cells")
    if not lazy:
        kept = n_out * (draws if per_draw else 1) + (2 * draws if n_out > 2 and not per_draw else 0)
        est.nbytes += BYTES * out_cells * (kept + 6)
        if BYTES * out_cells * kept > 1e8:
            est.reasons.append(f"the result holds {kept} values for each of {out_cells:,} cells")
        est.ways_out.append(
            "dask-backed coordinates (xr.DataArray(values, dims=dim).chunk(n)) to compute and write the result "
            "chunk by chunk"
        )
    if per_draw and draws > 1:
        est.ways_out.append("per_draw=False")
    return est


def sample_estimate(fit, tests: Sequence, out_cells: int, n_fields: int, draws: int, observed: bool) -> Estimate:
    """Cost of :meth:`xkron.KronFit.sample`: ``n_fields`` fields at ``draws`` posterior draws.

    ``tests[i]`` holds the new inputs of factor ``i`` (one flat array per dim); each draw
    decomposes, per factor, the distinct inputs among its training and new inputs (at most
    :data:`~xkron.settings.SAMPLE_EXACT_UNION` anchors of the largest union, :mod:`xkron.posterior.anchored`).
    """
    from xkron.settings import SAMPLE_EXACT_UNION
    from xkron.spec.grid import union_size

    factors = fit.spec.factors
    sizes = [f.size for f in factors]
    unions = [union_size(f.inputs(), t) for f, t in zip(factors, tests, strict=True)]
    # Above SAMPLE_EXACT_UNION the largest union is anchored on that many inputs, unless the posterior is a
    # whitened latent draw (NUTS, ADVI), whose update needs the exact root.
    whitened = fit.spec.latent and getattr(fit, "method", "") not in ("laplace", "inla")
    big_union = int(np.argmax(unions))
    anchored = [i == big_union and u > SAMPLE_EXACT_UNION and not whitened for i, u in enumerate(unions)]
    roots = [SAMPLE_EXACT_UNION if q else u for q, u in zip(anchored, unions, strict=True)]  # columns; also the eighs
    est = grid_estimate("sample()", factors, [len(t[0]) for t in tests], draws, True)
    if "_posterior_cache" not in fit.__dict__:
        est.seconds += min(draws, n_posteriors(fit)) * sum(eigh_seconds(s) for s in sizes)
    est.seconds += draws * sum(eigh_seconds(r) for r in roots)
    grid = int(np.prod(roots))
    est.seconds += n_fields * 4 * grid * sum(roots) / FLOP_RATE
    batch = min(n_fields, max(1, 2**23 // grid))
    fields = n_fields * out_cells * (2 if observed else 1)
    square = [u * r for u, r in zip(unions, roots, strict=True)]
    est.nbytes += BYTES * (2 * sum(square) + 3 * max(r * r for r in roots) + 4 * batch * grid)
    est.nbytes += BYTES * 2 * fields
    big = max(range(len(unions)), key=lambda i: roots[i])
    if eigh_seconds(roots[big]) * draws > 1.0 or roots[big] ** 2 * BYTES > 1e8:
        times = f"{draws:,} times " if draws > 1 else ""
        what = f"{roots[big]:,} anchors among the" if anchored[big] else "the"
        est.reasons.append(
            f"it decomposes {times}{what} {unions[big]:,} training and new inputs of the {factor_label(factors[big])}"
        )
    if fields * BYTES > 1e8:
        est.reasons.append(f"the fields hold {fields:,} values")
    if any(u > s for u, s in zip(unions, sizes, strict=True)):
        est.ways_out.append("sample on the training grid (no new coordinates) and interpolate the fields (.interp)")
    est.ways_out += split_advice(factors)
    if n_fields > 1:
        est.ways_out.append("fewer fields (n=...)")
    est.ways_out.append("predict() for the mean and sd alone (it decomposes no union of inputs)")
    return est


def _size(nbytes: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(nbytes) < 1000 or unit == "TB":
            return f"{nbytes:.3g} {unit}"
        nbytes /= 1000
    raise AssertionError  # pragma: no cover


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.2g} s"
    if seconds < 3600:
        return f"{seconds / 60:.2g} min"
    return f"{seconds / 3600:.2g} h"
