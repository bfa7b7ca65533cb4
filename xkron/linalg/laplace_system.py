"""The Laplace posterior's linear algebra in whitened coordinates: solves and predictive variances.

The Laplace posterior of ``f`` is GP regression on pseudo-data with noise ``W⁻¹``
(:mod:`xkron.posterior.laplace`), whose system ``A = η² K_oo + W_o⁻¹`` on the cells with ``W > 0``
is badly conditioned for a general solver (the pseudo-noise spans orders of magnitude). By Woodbury
with ``K = R Rᵀ``, ``R = ⊗ Q_i Λ_i^{1/2}``, everything goes through the Newton matrix of the mode
search instead, ``H = I + η² Rᵀ W R ⪰ I``, whose CG with the diagonal ``P = I + η² w̄ Λ`` converges in a
few dozen steps (:func:`xkron.linalg.laplace.newton_matrix`):

- **solves** (:class:`LaplaceSystem`): ``A⁻¹ b = W b − η² W R H⁻¹ Rᵀ W b`` on the grid;
- **variances** (:func:`laplace_variance`): with ``R* = K* Q Λ^{-1/2}`` (so that ``K*ᵀ = R* Rᵀ``),
  ``f* = μ + η R* v + η e*`` where ``v | y ~ N(v̂, H⁻¹)`` and ``e*`` is the prior's residual given the
  whole training grid, so

      ``Var f* = η² (k** − diag R* R*ᵀ) + η² diag R* P⁻¹ R*ᵀ + η² diag R* (H⁻¹ − P⁻¹) R*ᵀ``.

  The first two terms are exact Kronecker contractions (``P`` is diagonal in the eigenbasis); the
  last, small where ``P`` is close to ``H``, is the unbiased diagonal estimator
  ``mean_z (R* z) ∘ (R* (H⁻¹ − P⁻¹) z)`` over Rademacher probes (Bekas, Kokiopoulou & Saad 2007),
  with its standard error per cell. Where ``W`` spans orders of magnitude (nearly certain yes/no
  events, large counts beside small ones) ``P`` is far from ``H`` and that se can reach the variance
  itself. So a second, independent estimate joins it: posterior draws ``s = R* H⁻¹ u``,
  ``u ~ N(0, H)``, whose ``mean s²`` has a relative se of at most ``√(2/n)`` whatever ``W``, with the control
  variate ``c = R* P⁻¹ ũ``, ``ũ ~ N(0, P)`` from the same normals (``E c²`` is the exact middle
  term) and its coefficient fitted per cell. The two are combined per cell with weights inverse to
  their estimated variances (both coefficients cross-fitted: each half of the samples takes those of
  the other half, so that they do not bias it): where ``W`` is nearly constant the probes carry it,
  where it spans orders of magnitude the draws. On 3,840-cell grids against the dense variance
  (benchmarks README; 960-cell cases in ``tests/linalg/test_laplace_variance.py``) this cut the
  largest stated se from 0.50 to 0.21 of the variance (Bernoulli, amplitude 6) and from 6.5 to 0.23
  (Poisson, curvature 0.01 to 180).
  The estimate is held within rigorous bounds, below by the exact variance for
  ``H ⪯ I + η² w_max Λ`` and above by the prior's, and
  :class:`xkron.posterior.laplace.LaplacePosterior` warns where its se stays large.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from xkron.linalg.cg import pcg_rows, rademacher
from xkron.linalg.kronecker import KronEigen, kron_contract
from xkron.linalg.laplace import Whitened, divide_by, newton_matrix
from xkron.settings import (
    CG_MAX_ITER,
    LAPLACE_CG_TOL,
    LAPLACE_PROBE_BATCH,
    LAPLACE_VARIANCE_PROBES,
    PROBE_TOL,
    SINGLE_PRECISION_TOL,
)

__all__ = ["LaplaceSystem", "LaplaceVariance", "VarianceWeights", "laplace_variance", "whitened_cross"]


class LaplaceSystem:
    """``A = η² K_oo + diag(W_o)⁻¹`` on the cells with ``W > 0``, solved through ``H`` (module docstring).

    The interface :func:`xkron.posterior.fields.posterior_fields` needs of a system: ``solve`` of
    grid tensors (with any leading batch axes) and ``observed``.

    Examples
    --------
    >>> x = np.linspace(0, 3, 5)
    >>> K = np.exp(-0.5 * np.subtract.outer(x, x) ** 2)
    >>> w = np.random.default_rng(0).uniform(0.5, 2.0, (5, 5)); w[0, 0] = 0.0
    >>> system = LaplaceSystem(KronEigen.from_factors([K, K]), 0.7, w)
    >>> b = np.where(w > 0, 1.0, 0.0)
    >>> keep = (w > 0).ravel()
    >>> A = 0.7 * np.kron(K, K)[np.ix_(keep, keep)] + np.diag(1 / w.ravel()[keep])
    >>> bool(np.allclose(system.solve(b).ravel()[keep], np.linalg.solve(A, b.ravel()[keep])))
    True
    """

    def __init__(self, eigen: KronEigen, eta2: float, w: np.ndarray, tol: float = LAPLACE_CG_TOL):
        self.eigen, self.eta2, self.w, self.tol = eigen, float(eta2), np.asarray(w, dtype=float), tol
        self.shape = self.w.shape
        self.observed = self.w > 0
        self.whitened = Whitened(eigen)
        self.matvec, self.p = newton_matrix(self.whitened, self.eta2, self.w)
        self.matvec_single, _ = newton_matrix(self.whitened, self.eta2, self.w, single=True)
        self._probes: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._draws: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()

    def solve_h(self, rows: np.ndarray, tol: float | None = None) -> np.ndarray:
        """``H⁻¹`` applied to each row (a tensor of the grid's shape) by PCG; the Kronecker products in float32 for a
        ``tol`` of at least :data:`~xkron.settings.SINGLE_PRECISION_TOL` (the probes' and draws')."""
        flat, tol = rows.reshape(-1, int(np.prod(self.shape))), self.tol if tol is None else tol
        matvec = self.matvec_single if tol >= SINGLE_PRECISION_TOL else self.matvec
        x, _ = pcg_rows(matvec, flat, divide_by(self.p), tol=tol, max_iter=CG_MAX_ITER)
        return x.reshape(rows.shape)

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}  # a lock does not pickle (dask workers)

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def probe_solves(self, probes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Rademacher probes ``z`` (int8) and ``(H⁻¹ − P⁻¹) z`` (float32), solved once per system and reused.

        They do not depend on where the variance is asked for, so the mean correction, every predict
        call and every chunk of one share them (and so share one Monte Carlo estimate). They are
        solved :data:`~xkron.settings.LAPLACE_PROBE_BATCH` at a time and kept compact: on 10⁶ cells
        64 probes take 320 MB, and CG's work arrays a quarter of what all 64 at once would.
        """
        with self._lock:
            if (probes, seed) not in self._probes:
                z = rademacher(np.random.default_rng(seed), (probes, *self.shape))
                p = self.p.reshape(self.shape)
                x = np.empty(z.shape, dtype=np.float32)  # solved to PROBE_TOL: float32 keeps all of it
                for start in range(0, probes, LAPLACE_PROBE_BATCH):  # CG's work arrays for a batch at a time
                    rows = z[start : start + LAPLACE_PROBE_BATCH]
                    x[start : start + LAPLACE_PROBE_BATCH] = self.solve_h(rows, tol=PROBE_TOL) - rows / p
                self._probes[probes, seed] = z.astype(np.int8), x
            return self._probes[probes, seed]

    def draw_solves(self, draws: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Posterior draws ``H⁻¹ u``, ``u ~ N(0, H)``, and their control variates ``P⁻¹ ũ``, ``ũ ~ N(0, P)``
        (float32), in whitened coordinates, solved once per system and reused as :meth:`probe_solves`.

        From the same normals: ``u = ξ₁ + η Rᵀ W^½ ξ₂`` has covariance ``I + η² RᵀWR = H`` and
        ``ũ = ξ₁ + η √w̄ Rᵀ ξ₂`` has ``I + η² w̄ Λ = P`` (``RᵀR = Λ``, ``w̄`` the mean of ``W`` as in
        ``P``), so the two draws are close where ``W`` is close to its mean.
        """
        with self._lock:
            if (draws, seed) not in self._draws:
                rng = np.random.default_rng([seed, 1])  # independent of the probes of the same seed
                eta, p = np.sqrt(self.eta2), self.p.reshape(self.shape)
                a = np.empty((draws, *self.shape), dtype=np.float32)
                b = np.empty_like(a)
                for start in range(0, draws, LAPLACE_PROBE_BATCH):
                    n = min(LAPLACE_PROBE_BATCH, draws - start)
                    xi1, xi2 = rng.standard_normal((2, n, *self.shape))
                    u = xi1 + eta * self.whitened.root_t(np.sqrt(self.w) * xi2)
                    a[start : start + n] = self.solve_h(u, tol=PROBE_TOL)
                    b[start : start + n] = (xi1 + eta * np.sqrt(np.mean(self.w)) * self.whitened.root_t(xi2)) / p
                self._draws[draws, seed] = a, b
            return self._draws[draws, seed]

    def solve(self, b: np.ndarray) -> np.ndarray:
        """``A⁻¹ b`` for grid tensors ``b`` (leading batch axes allowed; zero off the system's cells)."""
        b = np.asarray(b, dtype=float)
        single = b.shape == self.shape
        rows = b.reshape(-1, *self.shape)
        wb = self.w * rows
        inner = self.solve_h(self.whitened.root_t(wb))
        out = wb - self.eta2 * self.w * self.whitened.root(inner)
        return out[0] if single else out.reshape(b.shape)


def whitened_cross(cross: Sequence[np.ndarray], eigen: KronEigen, rcond: float = 1e-12) -> list[np.ndarray]:
    """``R*_i = K*_i Q_i Λ_i^{-1/2}`` per factor (``K*_i``: test shape + ``(n_i,)``), eigenvalues below
    ``rcond`` of the largest left out (their directions carry no prior variance)."""
    out = []
    for C, Q, lam in zip(cross, eigen.vectors, eigen.values, strict=True):
        keep = lam > rcond * max(float(np.max(lam)), 0.0)
        scale = np.where(keep, 1.0 / np.sqrt(np.where(keep, lam, 1.0)), 0.0)
        out.append((C @ Q) * scale)
    return out


class VarianceWeights(NamedTuple):
    """Per output cell, how :func:`laplace_variance` combines its two estimates: ``beta``, the draws' control
    variate coefficient, and ``probes``, the weight of the probes' estimate (the draws' is ``1 − probes``)."""

    beta: np.ndarray
    probes: np.ndarray


class LaplaceVariance(NamedTuple):
    """:func:`laplace_variance`'s result: the variance, the Monte Carlo se of its estimated part, the
    rigorous bounds it is held within, and the combination's weights fitted on all its samples (to be
    given to another posterior's estimate, see :func:`laplace_variance`)."""

    variance: np.ndarray
    se: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    weights: VarianceWeights


def laplace_variance(
    system: LaplaceSystem,
    cross: Sequence[np.ndarray],
    labels: Sequence[str],
    out_order: str,
    prior: np.ndarray,
    probes: int = LAPLACE_VARIANCE_PROBES,
    seed: int = 0,
    weights: VarianceWeights | None = None,
) -> LaplaceVariance:
    """``Var f*`` of the Laplace posterior at test inputs (module docstring).

    ``cross``: the unit-amplitude ``K*_i`` per factor; ``labels``/``out_order`` as for
    :func:`xkron.linalg.kronecker.kron_contract`; ``prior``: ``η² k**`` at the outputs; ``probes``:
    Rademacher probes, and as many posterior draws (at least 4: two per fold of the cross-fitting).

    ``weights``: the combination's coefficients fitted by another, independent estimate (the ``weights``
    of its result), used as they are instead of cross-fitted. Fixed coefficients leave the estimate
    unbiased at any number of samples (from 2), which cross-fitting is not below 16: so the design
    points of an INLA mixture take those of its centre, fitted on the same output cells, and a few
    probes each (the mixture averages their errors; a nearby posterior's coefficients are nearly
    as efficient as its own).
    """
    least = 2 if weights is not None else 4
    if probes < least:
        why = "for its se" if weights is not None else "two per half of the cross-fitting"
        raise ValueError(f"the Laplace variance needs at least {least} probes ({why}), got {probes}")
    eta2 = system.eta2
    rstar = whitened_cross(cross, system.eigen)
    squared = [r * r for r in rstar]

    def contract(v):
        return kron_contract(np.asarray(v, dtype=float), rstar, labels, out_order)

    residual = np.clip(prior - eta2 * kron_contract(np.ones(system.shape), squared, labels, out_order), 0.0, None)
    known = kron_contract(1.0 / system.p.reshape(system.shape), squared, labels, out_order)  # diag R* P⁻¹ R*ᵀ
    z, x = system.probe_solves(probes, seed)
    probe_sums = _fold_sums((contract(zi) * contract(xi),) for zi, xi in zip(z, x, strict=True))
    a, b = system.draw_solves(probes, seed)
    draw_sums = _fold_sums((contract(ai) ** 2, contract(bi) ** 2) for ai, bi in zip(a, b, strict=True))
    if weights is None:
        inner, se, weights = _cross_fitted(probe_sums, draw_sums, known)
    else:
        inner, se = _weighted(_pooled(probe_sums), _pooled(draw_sums), known, weights)
    # Rigorous bounds hold the estimate: H ⪯ I + η² w_max Λ, so the variance is at least that diagonal
    # metric's (exact), and at most the prior's.
    p_max = 1.0 + eta2 * float(np.max(system.w, initial=0.0)) * system.whitened.spectrum
    lower = residual + eta2 * kron_contract(1.0 / p_max, squared, labels, out_order)
    upper = np.maximum(prior, lower)
    return LaplaceVariance(np.clip(residual + eta2 * inner, lower, upper), eta2 * se, lower, upper, weights)


def _fold_sums(samples) -> list[tuple[int, dict]]:
    """Per fold (sample ``i`` in fold ``i % 2``): the count and running sums of a stream of tuples of
    arrays, their squares and (for pairs) their product (one fold's sums in memory, not the samples)."""
    folds = [(0, {}), (0, {})]
    for i, arrays in enumerate(samples):
        n, sums = folds[i % 2]
        terms = {"s": arrays[0], "ss": arrays[0] * arrays[0]}
        if len(arrays) > 1:
            terms.update(c=arrays[1], cc=arrays[1] * arrays[1], sc=arrays[0] * arrays[1])
        folds[i % 2] = (n + 1, {k: sums.get(k, 0.0) + v for k, v in terms.items()})
    return folds


def _moments(n: int, sums: dict) -> dict:
    """Sample means, variances and covariance (``ddof=1``) from :func:`_fold_sums`'s sums."""
    out = {"s": sums["s"] / n}
    out["vs"] = np.clip((sums["ss"] - n * out["s"] ** 2) / (n - 1), 0.0, None)
    if "c" in sums:
        out["c"] = sums["c"] / n
        out["vc"] = (sums["cc"] - n * out["c"] ** 2) / (n - 1)
        out["cov"] = (sums["sc"] - n * out["s"] * out["c"]) / (n - 1)
    return out


def _pooled(folds) -> tuple[int, dict]:
    """Both folds' count and sums together."""
    (n0, a), (n1, b) = folds
    return n0 + n1, {k: a[k] + b[k] for k in a}


def _fitted(probe: tuple[int, dict], draw: tuple[int, dict]) -> VarianceWeights:
    """The draws' control variate coefficient ``β = cov(s, c)/var(c)`` per cell and the probes' weight
    (inverse to their estimate's variance against the controlled draws'), from one set of samples."""
    (n_p, ps), (n_d, ds) = probe, draw
    p, d = _moments(n_p, ps), _moments(n_d, ds)
    vc = d["vc"]
    beta = np.where(vc > 0, d["cov"] / np.where(vc > 0, vc, 1.0), 0.0)
    v_probes = p["vs"] / n_p
    v_draws = np.clip(d["vs"] - beta * d["cov"], 0.0, None) / n_d
    total = v_probes + v_draws
    return VarianceWeights(beta, np.where(total > 0, v_draws / np.where(total > 0, total, 1.0), 0.5))


def _weighted(probe: tuple[int, dict], draw: tuple[int, dict], known, weights: VarianceWeights):
    """``diag R* H⁻¹ R*ᵀ`` per cell from the samples' sums, combined with ``weights``: the probes'
    ``known + mean z-terms`` and the draws' ``mean s − β (mean c − E c)``; and its se."""
    (n_p, ps), (n_d, ds) = probe, draw
    p, d = _moments(n_p, ps), _moments(n_d, ds)
    beta, w = weights
    estimate = w * (known + p["s"]) + (1 - w) * (d["s"] - beta * (d["c"] - known))
    spread = np.clip(d["vs"] - 2 * beta * d["cov"] + beta**2 * d["vc"], 0.0, None)
    return estimate, np.sqrt(w**2 * p["vs"] / n_p + (1 - w) ** 2 * spread / n_d)


def _cross_fitted(probe_sums, draw_sums, known) -> tuple[np.ndarray, np.ndarray, VarianceWeights]:
    """``diag R* H⁻¹ R*ᵀ`` per cell from the probes and the controlled draws, its se, and the weights
    fitted on all the samples (:func:`_fitted`, for other estimates to use).

    Fitted on the samples they are applied to, the coefficients correlate with those samples'
    errors: a bias of order ``1/n``, measured against the dense variance at −3% of the variance with
    16 probes and draws (all INLA design points biased alike) and −1% with 64. So each fold's
    estimate takes the coefficients of the other fold: unbiased, at 5-20% more variance. The se
    is each fold's weights applied to all samples' moments (steadier than one fold's), per fold
    twice the variance of the pooled samples' mean.
    """
    pooled_p, pooled_d = _pooled(probe_sums), _pooled(draw_sums)
    estimates, variances = [], []
    for own, other in ((0, 1), (1, 0)):
        weights = _fitted(probe_sums[other], draw_sums[other])
        estimates.append(_weighted(probe_sums[own], draw_sums[own], known, weights)[0])
        variances.append(2 * _weighted(pooled_p, pooled_d, known, weights)[1] ** 2)
    se = 0.5 * np.sqrt(variances[0] + variances[1])
    return 0.5 * (estimates[0] + estimates[1]), se, _fitted(pooled_p, pooled_d)
