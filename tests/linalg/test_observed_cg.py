"""CG on the observed cells (:class:`xkron.linalg.observed_cg.ObservedSystem`) and its preconditioners.

Solves are exact to the CG tolerance; the log-likelihood and its gradient carry a Monte Carlo
error that the system states (``Loglik.logp_se``), checked here against the dense answer. The
spectral (:mod:`xkron.linalg.spectral`) and slice (:mod:`xkron.linalg.slices`) preconditioners
are checked against their dense definitions, with the condition-number bounds they state.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from xkron.linalg import slices
from xkron.linalg.dense import DenseSystem
from xkron.linalg.iterative import IterativeSystem
from xkron.linalg.kronecker import KronEigen
from xkron.linalg.observed_cg import ObservedSystem
from xkron.linalg.slices import SlicePreconditioner, slice_axis, slice_bound
from xkron.linalg.spectral import SpectralPreconditioner, cheapest_rank
from xkron.linalg.systems import choose_formulation, make_system
from xkron.spec.solver import Solver

RNG = np.random.default_rng(5)
SHAPE = (8, 14, 16)
SPECTRAL_SHAPE = (6, 9, 11)
SLICE_SHAPE = (7, 9, 10)


def _matern52(n, ls):
    r = np.abs(np.subtract.outer(np.arange(n, dtype=float), np.arange(n, dtype=float))) / ls
    return (1 + np.sqrt(5) * r + 5 / 3 * r**2) * np.exp(-np.sqrt(5) * r)


FACTORS = [_matern52(8, 2.0), _matern52(14, 3.0), _matern52(16, 4.0)]


def _coast_and_clouds():
    """Land on a fixed quarter of the plane at every time, and a cloud box that moves each step."""
    seen = np.ones(SHAPE, dtype=bool)
    seen[:, :, 10:] = False
    for t in range(SHAPE[0]):
        seen[t, t : t + 7, 2 : 2 + t] = False
    return seen & (RNG.random(SHAPE) > 0.3)


PATTERNS = {"mostly missing": RNG.random(SHAPE) > 0.75, "coast and clouds": _coast_and_clouds()}
NOISE = {"equal": 0.05, "per-cell": 0.03 + 0.05 * RNG.random(SHAPE)}


def _assert_agrees(approx, exact, factors):
    """``alpha`` to the CG tolerance; ``logp`` and the gradient within their Monte Carlo error."""
    np.testing.assert_allclose(approx.alpha, exact.alpha, rtol=0, atol=1e-6 * np.abs(exact.alpha).max())
    assert approx.d_mean == pytest.approx(exact.d_mean, rel=1e-6)
    # The stated standard error covers the log-likelihood's actual error.
    assert 0 < approx.logp_se < 0.01 * abs(exact.logp)
    assert abs(approx.logp - exact.logp) < 4 * approx.logp_se
    for d_a, d_e, K in zip(approx.d_factors, exact.d_factors, factors, strict=True):
        direction = K * np.subtract.outer(np.arange(len(K)), np.arange(len(K))) ** 2  # ∝ ∂K/∂log ls
        assert np.sum(d_a * direction) == pytest.approx(np.sum(d_e * direction), rel=0.05, abs=1.0)
    assert approx.d_eta2 == pytest.approx(exact.d_eta2, rel=0.05, abs=1.0)


@pytest.mark.parametrize("noise", list(NOISE))
@pytest.mark.parametrize("pattern", list(PATTERNS))
def test_solve_logp_and_gradient_agree_with_the_dense_path(pattern, noise):
    observed, noise_var = PATTERNS[pattern], NOISE[noise]
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.3, noise_var, observed).loglik(y, 0.2, gradient=True)
    approx = ObservedSystem(FACTORS, 1.3, noise_var, observed, probes=64).loglik(y, 0.2, gradient=True)
    assert approx.cg.converged and approx.formulation == "observed"
    _assert_agrees(approx, exact, FACTORS)
    assert approx.d_sigma2 == pytest.approx(float(np.sum(exact.d_noise)), rel=0.05, abs=5.0)


@pytest.mark.parametrize("kind", [ObservedSystem, IterativeSystem])
def test_stated_standard_error_matches_the_spread_over_seeds(kind):
    observed = PATTERNS["coast and clouds"]
    y = RNG.normal(size=SHAPE)
    exact = DenseSystem(FACTORS, 1.0, 0.05, observed).loglik(y).logp
    runs = [kind(FACTORS, 1.0, 0.05, observed, probes=8, seed=s).loglik(y) for s in range(12)]
    rms = np.sqrt(np.mean([(r.logp - exact) ** 2 for r in runs]))
    stated = np.sqrt(np.mean([r.logp_se**2 for r in runs]))
    assert stated / 3 < rms < 3 * stated


def test_formulation_is_the_smaller_set_unless_asked():
    mostly_missing, few_missing = PATTERNS["mostly missing"], RNG.random(SHAPE) > 0.2
    assert choose_formulation("auto", mostly_missing) == "observed"
    assert choose_formulation("auto", few_missing) == "missing"
    assert choose_formulation("missing", mostly_missing) == "missing"
    for formulation, kind in [("auto", ObservedSystem), ("observed", ObservedSystem), ("missing", IterativeSystem)]:
        system = make_system(Solver("iterative", formulation=formulation), FACTORS, 1.0, 0.1, mostly_missing)
        assert type(system) is kind


def test_batched_solve_keeps_rows_apart_and_zeroes_missing_cells():
    observed = PATTERNS["coast and clouds"]
    b = RNG.normal(size=(3, *SHAPE))
    o = observed.ravel()
    dense = DenseSystem(FACTORS, 0.7, 0.02, observed)
    x = ObservedSystem(FACTORS, 0.7, 0.02, observed).solve(b)
    assert x.shape == b.shape and np.all(x[:, ~observed] == 0)
    for row, got in zip(b, x, strict=True):
        np.testing.assert_allclose(got.ravel()[o], dense.solve(row).ravel()[o], rtol=0, atol=1e-6)


def _dense_a(factors, eta2, noise, observed):
    o = observed.ravel()
    K = factors[0]
    for F in factors[1:]:
        K = np.kron(K, F)
    return eta2 * K[np.ix_(o, o)] + np.diag(noise)


# --------------------------------------------------------------------- the spectral preconditioner


def _spectral_factors():
    out = []
    for n, ls in zip(SPECTRAL_SHAPE, (2.0, 3.0, 2.5), strict=True):
        x = np.arange(n, dtype=float)
        out.append(np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / ls**2))
    return out


@pytest.mark.parametrize("cutoff", [0.5, 4.0, 100.0])
@pytest.mark.parametrize("equal", [True, False])
def test_spectral_preconditioned_spectrum_lies_in_the_stated_bound(cutoff, equal):
    factors, observed = _spectral_factors(), RNG.random(SPECTRAL_SHAPE) > 0.6
    n = int(observed.sum())
    noise = np.full(n, 0.02) if equal else 0.02 + 0.05 * RNG.random(n)
    M = SpectralPreconditioner(KronEigen.from_factors(factors), 1.5, noise, observed, cutoff=cutoff, rows=50)
    assert M.rank > 0
    A, dense_m = _dense_a(factors, 1.5, noise, observed), M.dense()
    L = np.linalg.cholesky(dense_m)
    w = np.linalg.eigvalsh(np.linalg.solve(L, np.linalg.solve(L, A).T))
    assert w.min() > 1 - 1e-9 and w.max() < M.bound * (1 + 1e-9)
    r = RNG.normal(size=(3, n))
    np.testing.assert_allclose(M.inverse(r), np.linalg.solve(dense_m, r.T).T, rtol=1e-9, atol=1e-9)
    assert M.logdet() == pytest.approx(np.linalg.slogdet(dense_m)[1], rel=1e-10)


@pytest.mark.parametrize("axis", [0, 2])
def test_slice_inverse_from_the_factors_where_explicit_inverses_do_not_fit(monkeypatch, axis):
    """Explicit block inverses are kept only where they fit in ``SPECTRAL_BYTES``; otherwise the Cholesky
    factors apply ``M⁻¹``: both paths give the dense answer (slices along the first dim are contiguous runs,
    along the last they are not)."""
    observed = _moving_clouds()
    n = int(observed.sum())
    noise = 1e-3 + 0.01 * RNG.random(n)
    explicit = SlicePreconditioner(SLICE_FACTORS, 1.7, noise, observed, axis)
    monkeypatch.setattr(slices, "SPECTRAL_BYTES", 0)
    factored = SlicePreconditioner(SLICE_FACTORS, 1.7, noise, observed, axis)
    assert explicit.explicit and not factored.explicit
    r = RNG.normal(size=(4, n))
    exact = np.linalg.solve(explicit.dense(), r.T).T
    for M in (explicit, factored):
        np.testing.assert_allclose(M.inverse(r), exact, rtol=1e-9, atol=1e-9)


def test_cheapest_rank_keeps_modes_only_where_they_pay():
    flat = np.full(100, 0.5)  # no mode is far above the noise: CG converges at once
    assert cheapest_rank(flat, 5000, 20000, 100, 33) == 0
    steep = 1e5 * 0.7 ** np.arange(100.0)  # a few dominant modes make CG slow
    assert 0 < cheapest_rank(steep, 5000, 20000, 100, 33) < 99
    # The build cost n_o r² grows against the per-iteration cost: fewer rows, fewer modes.
    assert cheapest_rank(steep, 5000, 20000, 100, 1) <= cheapest_rank(steep, 5000, 20000, 100, 33)


# --------------------------------------------------------------------- the slice preconditioner

# A time factor with a lengthscale of about one step (monthly means), smooth space: the case slices are for.
SLICE_FACTORS = [_matern52(7, 1.0), _matern52(9, 3.0), _matern52(10, 4.0)]


def _moving_clouds(shape=SLICE_SHAPE):
    """A fixed coast and a cloud box that moves with each step, on top of scattered gaps."""
    seen = np.ones(shape, dtype=bool)
    seen[:, :, 8:] = False
    for t in range(shape[0]):
        seen[t, t : t + 4, 1 + t : 4 + t] = False
    return seen & (RNG.random(shape) > 0.2)


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("equal", [True, False])
def test_slice_preconditioned_spectrum_lies_in_the_stated_bound(axis, equal):
    observed = _moving_clouds()
    n = int(observed.sum())
    noise = np.full(n, 1e-3) if equal else 1e-3 + 0.01 * RNG.random(n)
    M = SlicePreconditioner(SLICE_FACTORS, 1.7, noise, observed, axis)
    A, dense_m = _dense_a(SLICE_FACTORS, 1.7, noise, observed), M.dense()
    w = scipy.linalg.eigh(A, dense_m, eigvals_only=True)  # the spectrum of M⁻¹A
    d = np.sqrt(np.diag(SLICE_FACTORS[axis]))
    lam = np.linalg.eigvalsh(SLICE_FACTORS[axis] / np.outer(d, d))
    assert w.min() > min(lam[0], 1.0) * (1 - 1e-9) and w.max() < max(lam[-1], 1.0) * (1 + 1e-9)
    assert w.max() / w.min() <= M.bound * (1 + 1e-9)
    assert w.max() / w.min() > 1.5  # the slices do drop couplings: M is not A
    r = RNG.normal(size=(3, n))
    np.testing.assert_allclose(M.inverse(r), np.linalg.solve(dense_m, r.T).T, rtol=1e-9, atol=1e-9)
    assert M.logdet() == pytest.approx(np.linalg.slogdet(dense_m)[1], rel=1e-10)


@pytest.mark.parametrize("kind", ["spectral", "slices"])
def test_probes_have_the_preconditioner_as_covariance(kind):
    observed = _moving_clouds()
    n = int(observed.sum())
    if kind == "spectral":
        M = SpectralPreconditioner(KronEigen.from_factors(SLICE_FACTORS), 1.0, np.full(n, 0.05), observed, rows=50)
        assert M.rank > 0
    else:
        M = SlicePreconditioner(SLICE_FACTORS, 1.0, np.full(n, 0.05), observed, 0)
    z = M.probes(np.random.default_rng(0), 40_000)
    empirical = z.T @ z / len(z)
    scale = np.sqrt(np.outer(np.diag(M.dense()), np.diag(M.dense())))
    assert np.max(np.abs(empirical - M.dense()) / scale) < 0.05


def test_bound_is_one_for_independent_slices_and_grows_with_the_lengthscale():
    assert slice_bound(np.eye(5)) == 1.0
    bounds = [slice_bound(_matern52(12, ls)) for ls in (0.5, 1.0, 2.0)]
    assert bounds == sorted(bounds) and bounds[0] < 3


def test_slices_are_taken_only_where_they_are_the_better_bound():
    observed = _moving_clouds()
    values = [np.linalg.eigvalsh(K) for K in SLICE_FACTORS]
    # Small noise: the spectral bound is huge, the slices along time bound it by about 12.
    assert slice_axis(SLICE_FACTORS, values, 1.0, 1e-4, observed, rows=33) == 0
    # Noise as large as the signal: the spectral preconditioner's bound is already small.
    assert slice_axis(SLICE_FACTORS, values, 1.0, 10.0, observed, rows=33) is None


def test_loglik_and_solve_with_slices_agree_with_the_dense_path():
    observed = _moving_clouds()
    y = RNG.normal(size=SLICE_SHAPE)
    exact = DenseSystem(SLICE_FACTORS, 1.3, 1e-3, observed).loglik(y, 0.2, gradient=True)
    system = ObservedSystem(SLICE_FACTORS, 1.3, 1e-3, observed, probes=64)
    approx = system.loglik(y, 0.2, gradient=True)
    assert approx.preconditioner == "slices" and approx.cg.converged
    _assert_agrees(approx, exact, SLICE_FACTORS)
    b = RNG.normal(size=(2, *SLICE_SHAPE))
    x = system.solve(b)
    dense = DenseSystem(SLICE_FACTORS, 1.3, 1e-3, observed)
    for row, got in zip(b, x, strict=True):
        np.testing.assert_allclose(got[observed], dense.solve(row)[observed], atol=1e-6)


def test_stated_standard_error_matches_the_spread_over_seeds_with_slices():
    observed = _moving_clouds()
    y = RNG.normal(size=SLICE_SHAPE)
    exact = DenseSystem(SLICE_FACTORS, 1.0, 1e-3, observed).loglik(y).logp
    runs = [ObservedSystem(SLICE_FACTORS, 1.0, 1e-3, observed, probes=8, seed=s).loglik(y) for s in range(12)]
    assert {r.preconditioner for r in runs} == {"slices"}
    rms = np.sqrt(np.mean([(r.logp - exact) ** 2 for r in runs]))
    stated = np.sqrt(np.mean([r.logp_se**2 for r in runs]))
    assert stated / 3 < rms < 3 * stated


def test_auto_takes_the_observed_cells_where_slices_precondition_them():
    clouds = RNG.random(SLICE_SHAPE) > 0.45  # 45% missing: Schur on the smaller set, unless slices pay
    assert choose_formulation("auto", clouds) == "missing"
    system = make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 1e-3, clouds)
    assert type(system) is ObservedSystem and system.preconditioner.name == "slices"
    noisy = make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 10.0, clouds)  # no slices: the smaller set
    assert type(noisy) is IterativeSystem
    forced = make_system(Solver("iterative", formulation="missing"), SLICE_FACTORS, 1.0, 1e-3, clouds)
    assert type(forced) is IterativeSystem
    few = RNG.random(SLICE_SHAPE) > 0.1  # scattered cells: the Schur complement, slices or not
    assert type(make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 1e-3, few)) is IterativeSystem


def test_posterior_solves_take_slices_from_a_fifth_missing_and_stay_exact():
    """Solves without a log-determinant (posterior means, sd draws) take slices wherever their bound is small."""
    quarter = RNG.random(SLICE_SHAPE) > 0.25
    loglik = make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 0.5, quarter)
    posterior = make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 0.5, quarter, solves_only=True)
    assert type(loglik) is IterativeSystem and type(posterior) is ObservedSystem
    assert posterior.slice_axis is None and posterior.solve_slices.axis == 0  # noisy: no slices for a likelihood
    b = RNG.normal(size=(2, *SLICE_SHAPE))
    dense = DenseSystem(SLICE_FACTORS, 1.0, 0.5, quarter)
    for row, got in zip(b, posterior.solve(b), strict=True):
        np.testing.assert_allclose(got[quarter], dense.solve(row)[quarter], atol=1e-7)
    assert posterior.report.iterations < 30
    few = RNG.random(SLICE_SHAPE) > 0.1
    assert type(make_system(Solver("iterative"), SLICE_FACTORS, 1.0, 0.5, few, solves_only=True)) is IterativeSystem


def test_a_stalled_spectral_run_falls_back_to_slices(monkeypatch):
    """Past the slices' iteration cap the spectral run is dropped: the result is the slices' own, exactly."""
    import scipy.ndimage

    rng = np.random.default_rng(0)
    t, x = np.arange(12.0), np.arange(30.0)
    r_t, r_x = (np.abs(np.subtract.outer(c, c)) * np.sqrt(5) / ls for c, ls in ((t, 1.2), (x, 6.0)))
    Ks = [(1 + r + r * r / 3) * np.exp(-r) for r in (r_t, r_x, r_x)]
    sky = np.stack([scipy.ndimage.gaussian_filter(rng.standard_normal((30, 30)), 3.0) for _ in t])
    observed = sky < np.quantile(sky, 0.4, axis=(1, 2), keepdims=True)  # clouds: each step its own gaps
    y = rng.standard_normal(observed.shape)
    chosen = ObservedSystem(Ks, 1.0, 5e-4, observed, probes=8)
    assert chosen.slice_axis == 0
    expected = chosen.loglik(y, 0.1, gradient=True)

    stalled = ObservedSystem(Ks, 1.0, 5e-4, observed, probes=8)
    stalled.__dict__["slice_axis"] = None  # as if the spectral preconditioner had been judged cheaper
    monkeypatch.setattr("xkron.linalg.observed_cg.fallback_cap", lambda *args: (0, 3))  # it stalls at once
    got = stalled.loglik(y, 0.1, gradient=True)
    assert got.preconditioner == "slices" and got.cg.converged and stalled.slice_axis == 0
    assert got.logp == expected.logp and got.d_eta2 == expected.d_eta2
    np.testing.assert_array_equal(got.alpha, expected.alpha)
