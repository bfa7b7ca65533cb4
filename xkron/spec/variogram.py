"""Empirical semivariograms and periodograms along grid dims: where the MAP's starts come from.

The periodogram (:func:`period_candidates`) gives the starting periods of periodic factors;
the semivariogram the rest, as follows.

For ``y = μ + f + ε`` with ``f ~ GP(0, η² k_1 ⊗ … ⊗ k_d)`` and white noise of variance ``σ²``,
the semivariogram along dim ``k`` (pairs ``h`` apart along ``k``, the same input on every
other dim) is exactly

    γ_k(h) = ½ E[(y(x + h e_k) − y(x))²] = σ² + η² (1 − ρ_k(h; ℓ_k)),   h > 0,

with ``ρ_k`` the factor's own correlation along ``k`` (the others at distance 0). So the empirical
semivariogram of the observed cells, averaged over every other dim, gives the noise (its limit
at lag 0, the *nugget*), the amplitude (the rise from the nugget to the sill ``σ² + η²``,
estimated by ``var(y)``) and the lengthscale (the shape of the rise), with no solve at all.
:func:`fit_variogram` fits that model by least squares in ``log ℓ``; the correlation comes
from the kernel class itself (:meth:`xkron.spec.kernels.Kernel.correlation`), not from a table.

Missing cells (NaN) simply drop the pairs they belong to, so land masks and clouds need no
filling. Irregular coordinates are binned by distance in units of the median spacing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xkron.settings import (
    NUGGET_FRACTION,
    PERIOD_DISTINCT,
    VARIOGRAM_FLAT,
    VARIOGRAM_MAX_LAGS,
    VARIOGRAM_MIN_CORRELATION,
    VARIOGRAM_MIN_PAIRS,
)

__all__ = [
    "Variogram",
    "VariogramFit",
    "data_lengthscales",
    "dominant_period",
    "fit_variogram",
    "grid_scales",
    "period_candidates",
    "semivariogram",
    "start_ladder",
]


def grid_scales(coord: np.ndarray) -> tuple[float, float]:
    """Smallest spacing and extent of a sorted numeric coordinate."""
    coord = np.asarray(coord, dtype=float)
    steps = np.abs(np.diff(coord))
    return float(steps.min()), float(np.ptp(coord))


def start_ladder(spacing: float, extent: float, n: int) -> np.ndarray:
    """``n`` starting lengthscales, log-spaced from 3 grid spacings to a quarter of the extent.

    On short coordinates (3 spacings beyond an eighth of the extent) the ladder starts at an
    eighth of the extent instead, so the starts stay distinct.

    The log marginal likelihood of real fields has several local optima (see
    ``kronecker-notes.md``); starting from a ladder of lengthscales and keeping the best
    optimum finds the global one far more often than a single start.

    Examples
    --------
    >>> start_ladder(1.0, 100.0, 3).round(3).tolist()
    [3.0, 8.66, 25.0]
    """
    lo = min(3.0 * spacing, extent / 8)
    hi = max(extent / 4, 2 * lo)
    if n == 1:
        return np.array([lo])
    return np.exp(np.linspace(np.log(lo), np.log(hi), n))


@dataclass(frozen=True)
class Variogram:
    """An empirical semivariogram: ``gamma[i]`` from ``pairs[i]`` pairs about ``lags[i]`` apart."""

    lags: np.ndarray
    gamma: np.ndarray
    pairs: np.ndarray


@dataclass(frozen=True)
class VariogramFit:
    """The kernel fitted to a :class:`Variogram`: its lengthscale and nugget (the noise variance)."""

    ls: float
    nugget: float


def semivariogram(y: np.ndarray, axis: int, coord: np.ndarray, max_lags: int = VARIOGRAM_MAX_LAGS) -> Variogram:
    """Empirical semivariogram of ``y`` along ``axis``, from the pairs where both cells are finite.

    Lags run over 1 to about a third of the dim's steps (at most ``max_lags``); pairs of every
    other input are pooled. Distances are binned to the nearest multiple of the median spacing,
    and each bin's lag is its pairs' mean distance.

    Examples
    --------
    >>> y = np.array([[0.0, 1.0, 0.0, 1.0, 0.0, 1.0, np.nan, 1.0, 0.0]])
    >>> v = semivariogram(y, 1, np.arange(9.0))
    >>> v.lags.tolist(), v.gamma.tolist(), v.pairs.tolist()
    ([1.0, 2.0, 3.0], [0.5, 0.0, 0.5], [6, 5, 5])
    """
    coord = np.asarray(coord, dtype=float)
    n = len(coord)
    a = np.moveaxis(np.asarray(y, dtype=float), axis, 0).reshape(n, -1)
    step = float(np.median(np.abs(np.diff(coord)))) if n > 1 else 1.0
    n_bins = min(max_lags, max(2, n // 3))
    sums, counts, dists = np.zeros(n_bins + 1), np.zeros(n_bins + 1), np.zeros(n_bins + 1)
    for s in range(1, n):
        dist = np.abs(coord[s:] - coord[:-s])
        bins = np.rint(dist / step).astype(int)
        if bins.min() > n_bins:
            break
        sq = (a[s:] - a[:-s]) ** 2
        finite = np.isfinite(sq)
        pair_sums = np.where(finite, sq, 0.0).sum(axis=1)
        pair_counts = finite.sum(axis=1)
        inside = (bins >= 1) & (bins <= n_bins)
        np.add.at(sums, bins[inside], pair_sums[inside])
        np.add.at(counts, bins[inside], pair_counts[inside])
        np.add.at(dists, bins[inside], dist[inside] * pair_counts[inside])
    keep = counts[1:] > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        gamma = 0.5 * sums[1:] / counts[1:]
        lags = dists[1:] / counts[1:]
    return Variogram(lags[keep], gamma[keep], counts[1:][keep].astype(int))


def _fit_at(rho: np.ndarray, v: Variogram, sill: float) -> tuple[float, float]:
    """``(nugget, residual)`` of ``γ = c − a² ρ`` at one lengthscale, ``c`` and ``a²`` by weighted least squares.

    The sill ``c`` is fitted too (``var(y)`` underestimates it when the lengthscale is not small
    against the extent); the nugget ``c − a²`` is kept within :data:`NUGGET_FRACTION` of ``sill``.
    """
    w = v.pairs.astype(float)
    design = np.stack([np.ones_like(rho), -rho], axis=1) * np.sqrt(w)[:, None]
    (c, amp2), *_ = np.linalg.lstsq(design, v.gamma * np.sqrt(w), rcond=None)
    lo, hi = NUGGET_FRACTION
    nugget = float(np.clip(c - amp2, lo * sill, hi * sill))
    # The amplitude² again at the (possibly clipped) nugget: γ = nugget + a² (1 − ρ).
    denom = float(np.sum(w * (1.0 - rho) ** 2))
    amp2 = float(np.sum(w * (1.0 - rho) * (v.gamma - nugget))) / denom if denom > 0 else sill
    resid = float(np.sum(w * (v.gamma - nugget - amp2 * (1.0 - rho)) ** 2))
    return nugget, resid


def _best_ls(kernel, extra: dict, v: Variogram, sill: float, bounds: tuple[float, float]) -> tuple[float, float]:
    """Least-squares lengthscale (a log grid, then a bounded refinement) and its nugget."""
    import scipy.optimize  # here, not at import: `import xkron` needs no optimiser

    def objective(log_ls: float) -> tuple[float, float]:
        rho = np.asarray(kernel.correlation([v.lags], {"ls": [float(np.exp(log_ls))], **extra}), dtype=float)
        return _fit_at(rho, v, sill)

    grid = np.linspace(np.log(bounds[0]), np.log(bounds[1]), 48)
    resid = [objective(g)[1] for g in grid]
    i = int(np.nanargmin(resid))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    best = scipy.optimize.minimize_scalar(lambda g: objective(g)[1], bounds=(lo, hi), method="bounded")
    log_ls = float(best.x) if best.fun <= resid[i] else float(grid[i])
    return float(np.exp(log_ls)), objective(log_ls)[0]


def fit_variogram(kernel, extra: dict, v: Variogram, sill: float, spacing: float, extent: float) -> VariogramFit | None:
    """The lengthscale and nugget of ``kernel`` that fit the semivariogram ``v`` (see the module docstring).

    ``extra`` holds the kernel's other parameters (``alpha`` of ``RatQuad``); ``sill`` is the
    data's variance. The fit uses the lags up to the first where the fitted correlation drops
    below :data:`VARIOGRAM_MIN_CORRELATION` (beyond it the variogram is the sill plus noise).
    Candidates span half the spacing to twice the extent.

    Returns ``None`` where the variogram cannot tell: fewer than 3 lags with
    :data:`VARIOGRAM_MIN_PAIRS` pairs, a non-finite value, or a flat variogram (it varies by less
    than :data:`VARIOGRAM_FLAT` of the sill: constant along the dim, or no correlation at one step).
    """
    ok = v.pairs >= VARIOGRAM_MIN_PAIRS
    v = Variogram(v.lags[ok], v.gamma[ok], v.pairs[ok])
    if len(v.lags) < 3 or not (np.isfinite(sill) and sill > 0) or not np.all(np.isfinite(v.gamma)):
        return None
    if np.ptp(v.gamma) < VARIOGRAM_FLAT * sill:
        return None
    bounds = (0.5 * spacing, 2.0 * extent)
    try:
        ls, nugget = _best_ls(kernel, extra, v, sill, bounds)
        rho = np.asarray(kernel.correlation([v.lags], {"ls": [ls], **extra}), dtype=float)
        near = np.flatnonzero(rho < VARIOGRAM_MIN_CORRELATION)
        cut = max(3, int(near[0]) + 1) if near.size else len(v.lags)
        if cut < len(v.lags):
            short = Variogram(v.lags[:cut], v.gamma[:cut], v.pairs[:cut])
            ls, nugget = _best_ls(kernel, extra, short, sill, bounds)
    except (ValueError, FloatingPointError, ZeroDivisionError):
        return None
    if not (np.isfinite(ls) and np.isfinite(nugget)):
        return None
    return VariogramFit(ls, nugget)


def data_lengthscales(factors, y: np.ndarray, extras: dict[str, dict]) -> tuple[dict[str, float], float | None]:
    """Lengthscales fitted to each dim's semivariogram, and the median nugget over them.

    ``y`` holds the data over the factors' inputs (NaN where unobserved); ``extras`` the other
    parameters of each factor's kernel by factor name (``{"alpha": 2.0}`` for ``RatQuad``).
    Only factors over their full grid (no ``subset``) with a decaying kernel are fitted; a factor
    over several dims gets one lengthscale per dim, each from its own dim's variogram. Dims where
    :func:`fit_variogram` cannot tell are left out; the nugget is ``None`` when none is fitted.
    The nugget is the noise variance, the same along every dim; each dim's extrapolation to lag 0
    scatters on either side of it (on Matérn-5/2 draws with lengthscales of 3-5 steps and a nugget
    of 2% of the variance, from 0.5% to 180% of it), so the median is taken, not the smallest.
    """
    y = np.asarray(y, dtype=float).reshape([f.size for f in factors])
    seen = y[np.isfinite(y)]
    sill = float(np.var(seen)) if seen.size > 1 else float("nan")
    ls: dict[str, float] = {}
    nuggets: list[float] = []
    for axis, factor in enumerate(factors):
        names = factor.param_names().get("ls")
        if factor.subset is not None or not factor.kernel.decaying or not names:
            continue
        view = np.moveaxis(y, axis, 0).reshape([len(c) for c in factor.coords] + [-1])
        for k, (coord, name) in enumerate(zip(factor.coords, names, strict=True)):
            coord = np.asarray(coord, dtype=float)
            if len(coord) < 4:
                continue
            spacing, extent = grid_scales(coord)
            fitted = fit_variogram(factor.kernel, extras.get(factor.name, {}), semivariogram(view, k, coord), sill,
                                   spacing, extent)  # fmt: skip
            if fitted is not None:
                ls[name] = fitted.ls
                nuggets.append(fitted.nugget)
    return ls, (float(np.median(nuggets)) if nuggets else None)


def _periodogram(y: np.ndarray, axis: int, coord: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(frequencies, power)`` of ``y`` along ``axis``, power averaged over every other axis."""
    coord = np.asarray(coord, dtype=float)
    series = np.moveaxis(np.asarray(y, dtype=float), axis, -1).reshape(-1, len(coord))
    series = series - series.mean(axis=1, keepdims=True)
    steps = np.diff(coord)
    if np.allclose(steps, steps[0], rtol=1e-6):
        # Even spacing: FFT periodogram, zero-padded 4x for a finer frequency grid.
        n_fft = 4 * len(coord)
        power = (np.abs(np.fft.rfft(series, n=n_fft, axis=-1)) ** 2).sum(axis=0)
        freqs = np.fft.rfftfreq(n_fft, d=abs(steps[0]))
        keep = freqs >= 1.0 / np.ptp(coord)
        return freqs[keep], power[keep]
    spacing, extent = grid_scales(coord)
    freqs = np.linspace(1.0 / extent, 0.5 / spacing, 4 * len(coord))
    import scipy.signal  # here, not at import: the CLI and `import xkron` need no signal processing

    power = sum(scipy.signal.lombscargle(coord, s, 2 * np.pi * freqs) for s in series[:64])
    return freqs, np.asarray(power)


def dominant_period(y: np.ndarray, axis: int, coord: np.ndarray) -> float:
    """Period of the strongest oscillation of ``y`` along ``axis`` (Lomb–Scargle periodogram).

    The power is averaged over every other axis. Frequencies run from one cycle per extent
    to the Nyquist limit; uneven spacing is fine.

    Examples
    --------
    >>> x = np.linspace(0, 3, 30)
    >>> y = np.cos(2 * np.pi * x)[None, :] * np.ones((4, 1))
    >>> round(dominant_period(y, 1, x), 1)
    1.0
    """
    freqs, power = _periodogram(y, axis, coord)
    return float(1.0 / freqs[int(np.argmax(power))])


def period_candidates(y: np.ndarray, axis: int, coord: np.ndarray, n: int) -> list[float]:
    """``n`` distinct starting periods along ``axis``, the most likely first.

    The log posterior of a periodic factor has a local optimum near every period that fits
    some of the data's oscillation, so restarts must try several. The order: the dominant
    period ``P`` (:func:`dominant_period`); ``2P`` (when the strongest peak is a harmonic, the
    fundamental is twice as long); the periodogram's other peaks by power; then ``3P, 4P, ...``
    and, last, a log-spaced ladder from ``2Δ`` to the extent, so that ``n`` distinct values
    always exist. Periods beyond the extent are skipped (the data cannot tell them apart), and
    values within :data:`PERIOD_DISTINCT` of an earlier one count as the same.

    Examples
    --------
    >>> x = np.arange(40.0)
    >>> y = np.cos(2 * np.pi * x / 5)[None, :] + 0.5 * np.cos(2 * np.pi * x / 13)[None, :]
    >>> [round(p, 1) for p in period_candidates(y, 1, x, 3)]
    [5.0, 10.0, 13.3]
    """
    coord = np.asarray(coord, dtype=float)
    spacing, extent = grid_scales(coord)
    freqs, power = _periodogram(y, axis, coord)
    inner = (power[1:-1] >= power[:-2]) & (power[1:-1] >= power[2:])
    peaks = np.flatnonzero(np.r_[power[0] >= power[1], inner, power[-1] >= power[-2]])
    by_power = [float(1.0 / freqs[i]) for i in peaks[np.argsort(-power[peaks], kind="stable")]]
    first = float(1.0 / freqs[int(np.argmax(power))])
    multiples = [k * first for k in range(3, 9)]
    ladder = np.exp(np.linspace(np.log(2 * spacing), np.log(extent), max(n, 2))).tolist()
    chosen: list[float] = []
    for period in [first, 2 * first, *by_power, *multiples, *ladder]:
        if len(chosen) == n:
            break
        if period <= extent * (1 + 1e-9) and all(abs(period - c) > PERIOD_DISTINCT * c for c in chosen):
            chosen.append(period)
    while len(chosen) < n:  # fewer distinct values than starts (a tiny grid): repeat the best
        chosen.append(chosen[len(chosen) % max(1, len(chosen))])
    return chosen
