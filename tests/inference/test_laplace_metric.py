"""Issue 14, item 4: the joint NUTS sampler of a non-Gaussian latent model with the Laplace metric.

- :class:`KronLaplacePotential` applies exactly the metric it documents: its velocity is ``Cov p``
  for the dense ``Cov = [[Σ, ΣJᵀ], [JΣ, TDTᵀ + JΣJᵀ]]``, and its momentum draws are a linear map of
  standard normals whose covariance is exactly ``Cov⁻¹`` (checked column by column, not by sampling).
- The conditional block ``T D Tᵀ`` is the exact ``(I + η² Lᵀ W L)⁻¹`` where ``W`` is constant, with
  a rank-deficient (Cosine) factor too; the rotations are orthogonal.
- The start is the Laplace mode in the latent model's own coordinates.
- End to end, NUTS with the metric (``init="laplace"``) and NUTS with PyMC's diagonal adaptation
  sample the same posterior (agreement within Monte Carlo error); ``init="laplace"`` is refused
  where it cannot apply.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import xkron
from xkron.inference.laplace_metric import KronLaplacePotential, KronMetric, chol_whitened, laplace_rotations
from xkron.posterior.conditional import LatentPosterior
from xkron.posterior.laplace import laplace_mode
from xkron.spec.grid import Factor
from xkron.spec.kernels import Cosine, Matern52
from xkron.spec.likelihoods import Poisson
from xkron.spec.modelspec import ModelSpec
from xkron.spec.pointwise import pointwise


class _Columns:
    """A stand-in random generator whose ``normal`` returns the given vectors in turn."""

    def __init__(self, vectors):
        self.vectors = list(vectors)

    def normal(self, size):
        out = self.vectors.pop(0)
        assert out.shape == (size,)
        return out


def _metric(rng, shape=(4, 3), d=2):
    n = int(np.prod(shape))
    rotations = tuple(np.linalg.qr(rng.normal(size=(k, k)))[0] for k in shape)
    A = rng.normal(size=(d, d))
    sigma = A @ A.T + np.eye(d)
    perm = rng.permutation(n + d)
    metric = KronMetric(sigma, np.linalg.cholesky(sigma), rng.normal(size=(n, d)), rotations,
                        rng.uniform(0.1, 2.0, n), perm[:d], perm[d:], shape)  # fmt: skip
    T = np.kron(*rotations)
    C = T @ np.diag(metric.scale) @ T.T
    J = metric.jacobian
    cov = np.block([[sigma, sigma @ J.T], [J @ sigma, C + J @ sigma @ J.T]])
    where = np.empty(n + d, dtype=int)
    where[metric.theta], where[metric.v] = np.arange(d), d + np.arange(n)
    return metric, cov[np.ix_(where, where)]


def test_potential_applies_the_metric_and_draws_from_its_inverse():
    rng = np.random.default_rng(0)
    metric, cov = _metric(rng)
    d, n = len(metric.theta), len(metric.v)
    potential = KronLaplacePotential(metric, rng=1)
    x = rng.normal(size=n + d)
    np.testing.assert_allclose(potential.velocity(x), cov @ x, rtol=1e-12, atol=1e-12)
    out = np.empty(n + d)
    assert potential.velocity_energy(x, out) == pytest.approx(0.5 * x @ cov @ x, rel=1e-12)
    # random() is p = A (zeta, xi) for a fixed A: recover A column by column, then A Aᵀ = Cov⁻¹.
    columns = []
    for k in range(n + d):
        e = np.zeros(n + d)
        e[k] = 1.0
        potential.rng = _Columns([e[:n], e[n:]])
        columns.append(potential.random())
    A = np.stack(columns, axis=1)
    np.testing.assert_allclose(A @ A.T, np.linalg.inv(cov), rtol=1e-9, atol=1e-9)


def _spec():
    factors = (
        Factor(("t",), Matern52(), (np.linspace(0, 4, 7),)),
        Factor(("x",), Cosine(), (np.linspace(0, 3, 5),)),
    )
    values = {"ls_t": 1.3, "ls_x": 0.9, "amplitude": 0.8, "mean": 0.2}
    return ModelSpec(factors, values, likelihood=Poisson(), latent=True), values


def testlaplace_rotations_block_is_exact_for_constant_curvature():
    spec, values = _spec()
    w = np.full((7, 5), 2.5)
    rotations, scale = laplace_rotations(spec, values, w)
    for T in rotations:
        np.testing.assert_allclose(T.T @ T, np.eye(len(T)), atol=1e-8)
    L = np.kron(*[LatentPosterior.condition(np.zeros((7, 5)), spec.factors, values).chols[i] for i in range(2)])
    exact = np.linalg.inv(np.eye(35) + values["amplitude"] ** 2 * 2.5 * L.T @ L)
    T = np.kron(*rotations)
    np.testing.assert_allclose(T @ np.diag(scale) @ T.T, exact, atol=1e-8)


def test_start_is_the_laplace_mode_in_the_latent_coordinates():
    spec, values = _spec()
    y = np.random.default_rng(3).poisson(1.5, size=(7, 5)).astype(float)
    mode = laplace_mode(y, spec, values)
    v = chol_whitened(mode.f, spec, values)
    np.testing.assert_allclose(LatentPosterior.condition(v, spec.factors, values).field(), mode.f, atol=1e-9)
    # It is the latent model's mode up to the jitter (1e-6) that the latent model adds to K and the
    # Laplace mode does not: ∇ψ(v) = η Lᵀ ∂log p/∂f − v is not 0 there but small (in the Cosine
    # factor's null space L's singular values are √jitter), against its size at v = 0.
    L = np.kron(*LatentPosterior.condition(v, spec.factors, values).chols)

    def grad(v, f):
        fitted = pointwise("poisson", f, y, values, {})
        return values["amplitude"] * L.T @ fitted.d1.ravel() - v.ravel()

    at_start = np.max(np.abs(grad(v, mode.f)))
    assert at_start < 1e-2 * np.max(np.abs(grad(np.zeros(35), np.full((7, 5), values["mean"]))))


@pytest.mark.slow
def test_nuts_with_the_laplace_metric_samples_the_same_posterior():
    rng = np.random.default_rng(5)
    t, x = np.arange(24.0), np.linspace(0, 3, 16)
    K = [np.exp(-0.5 * np.subtract.outer(c, c) ** 2 / s**2) + 1e-8 * np.eye(len(c)) for c, s in ((t, 4.8), (x, 0.6))]
    f = 1.0 + 0.7 * np.linalg.cholesky(K[0]) @ rng.normal(size=(24, 16)) @ np.linalg.cholesky(K[1]).T
    da = xr.DataArray(rng.poisson(np.exp(f)).astype(float), coords={"t": t, "x": x}, dims=("t", "x"))
    kernels = {"t": xkron.ExpQuad(ls=4.8), "x": xkron.ExpQuad(ls=0.6)}  # the amplitude and mean are free
    common = dict(likelihood="poisson", method="nuts", chains=2, cores=1, tune=400, draws=400, progressbar=False,
                  target_accept=0.9)  # fmt: skip
    laplace = xkron.fit(da, kernels, random_seed=1, init="laplace", **common)
    assert laplace.optimizer["laplace_metric"]["metric"] == "laplace"
    diag = xkron.fit(da, kernels, random_seed=2, **common)  # the default: partially centred, the mean sheared out
    assert diag.optimizer["nuts_field"]["parameterization"] == "partially centred"
    # A fixed metric leaves a few divergences in the tails (settings.NUTS_LAPLACE_TARGET_ACCEPT).
    assert int(laplace.posterior["sample_stats"]["diverging"].sum()) <= 8
    for name in ("amplitude", "mean"):
        a, b = laplace.params[name].values.ravel(), diag.params[name].values.ravel()
        # Monte Carlo se of a difference of two means, with ESS of a quarter of the draws.
        se = np.sqrt((a.var() + b.var()) / (len(a) / 4))
        assert abs(a.mean() - b.mean()) < 4 * se, name
    fa = laplace.sample(progressbar=False, random_seed=0)["f"].stack(s=("chain", "draw"))
    fb = diag.sample(progressbar=False, random_seed=0)["f"].stack(s=("chain", "draw"))
    se = np.sqrt((fa.var("s") + fb.var("s")) / (fa.sizes["s"] / 4))
    z = np.abs(fa.mean("s") - fb.mean("s")) / se
    assert float(z.max()) < 4.5


@pytest.mark.parametrize(
    ("kwargs", "likelihood"),
    [
        ({"method": "nuts"}, "gaussian"),
        ({"method": "advi"}, "poisson"),
        ({"method": "nuts", "nuts_sampler": "numpyro"}, "poisson"),
    ],
)
def test_laplace_init_is_refused_where_it_cannot_apply(kwargs, likelihood):
    da = xr.DataArray(np.ones((4, 3)), coords={"t": np.arange(4.0), "x": np.arange(3.0)}, dims=("t", "x"))
    with pytest.raises((ValueError, TypeError), match="init"):
        xkron.fit(da, {"t": "ExpQuad", "x": "ExpQuad"}, likelihood=likelihood, latent=True, init="laplace", **kwargs)
