"""Issue 14: the Laplace log marginal as a PyTensor Op inside a PyMC model.

The model's compiled gradient (PyTensor's chain rule through the kernel matrices into the Op's
``∂/∂K_i``) equals central differences of its log density, and ``pm.find_MAP`` on it reaches the optimum
that scipy finds on the dense Laplace marginal by itself (no Op, no PyMC).
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest
import scipy.optimize
import scipy.stats as st

from xkron.linalg.kronecker import KronEigen
from xkron.linalg.laplace import laplace_loglik, newton_mode
from xkron.models.laplace_op import kron_laplace_logp
from xkron.spec.pointwise import pointwise

RNG = np.random.default_rng(2)
X = [np.linspace(0, 5, 8), np.linspace(0, 3, 6)]
SHAPE = (8, 6)


def matern52(x, ls, xp=np):
    r = xp.abs(x[:, None] - x[None, :]) / ls
    return (1 + np.sqrt(5) * r + 5 * r**2 / 3) * xp.exp(-np.sqrt(5) * r)


def simulate():
    K = np.kron(matern52(X[0], 1.5), matern52(X[1], 1.0))
    f = 0.5 + 0.8 * np.linalg.cholesky(K + 1e-9 * np.eye(K.shape[0])) @ RNG.normal(size=K.shape[0])
    mu = np.exp(f)
    y = RNG.negative_binomial(3.0, 3.0 / (3.0 + mu)).astype(float).reshape(SHAPE)
    observed = RNG.random(SHAPE) > 0.2
    return np.where(observed, y, 0.0), observed


Y, OBSERVED = simulate()


def model():
    with pm.Model() as m:
        ls = [pm.Gamma(f"ls_{i}", alpha=3, beta=2) for i in range(2)]
        amplitude = pm.HalfNormal("amplitude", 1.0)
        mean = pm.Normal("mean", 0.0, 2.0)
        dispersion = pm.LogNormal("dispersion", np.log(3.0), 1.0)
        factors = [matern52(pt.as_tensor_variable(x), ls[i], xp=pt) for i, x in enumerate(X)]
        logq = kron_laplace_logp("negative_binomial", Y, OBSERVED.astype(float), factors, amplitude**2, mean,
                                 params={"dispersion": dispersion})  # fmt: skip
        pm.Potential("laplace", logq)
    return m


def test_the_models_gradient_is_the_central_difference_of_its_log_density():
    m = model()
    logp, dlogp = m.compile_logp(), m.compile_dlogp()
    point = m.initial_point()
    point.update({"ls_0_log__": np.log(1.2), "ls_1_log__": np.log(0.9), "amplitude_log__": np.log(0.7),
                  "mean": 0.3, "dispersion_log__": np.log(2.0)})  # fmt: skip
    names = [v.name for v in m.value_vars]
    grad = dlogp(point)
    h = 1e-5
    for k, name in enumerate(names):
        up, down = dict(point), dict(point)
        up[name] = point[name] + h
        down[name] = point[name] - h
        fd = (logp(up) - logp(down)) / (2 * h)
        assert grad[k] == pytest.approx(fd, rel=1e-6, abs=1e-6), name


def dense_laplace(theta):
    """The Laplace marginal plus the priors, in the log-transformed parameters, without the Op or PyMC."""
    ls0, ls1, amp, disp = np.exp(theta[[0, 1, 2, 4]])
    mean = theta[3]
    factors = [matern52(X[0], ls0), matern52(X[1], ls1)]
    eigen = KronEigen.from_factors(factors)
    mode = newton_mode(lambda f: pointwise("negative_binomial", f, Y, {"dispersion": disp}, {}), eigen, amp**2,
                       mean, OBSERVED)  # fmt: skip
    logq = laplace_loglik(mode, eigen, amp**2).logp
    priors = (
        st.gamma.logpdf(ls0, 3, scale=0.5) + st.gamma.logpdf(ls1, 3, scale=0.5) + st.halfnorm.logpdf(amp)
        + st.norm.logpdf(mean, 0.0, 2.0) + st.lognorm.logpdf(disp, 1.0, scale=3.0)
    )  # fmt: skip
    return logq + priors


@pytest.mark.slow
def test_find_map_reaches_the_dense_laplace_optimum():
    m = model()
    found = pm.find_MAP(model=m, progressbar=False)
    start = np.log([1.0, 1.0, 0.5, 1.0, 3.0])
    start[3] = 0.0
    ref = scipy.optimize.minimize(lambda t: -dense_laplace(t), start, method="Nelder-Mead",
                                  options={"xatol": 1e-7, "fatol": 1e-10, "maxiter": 4000})  # fmt: skip
    ls0, ls1, amp, disp = np.exp(ref.x[[0, 1, 2, 4]])
    expected = {"ls_0": ls0, "ls_1": ls1, "amplitude": amp, "mean": ref.x[3], "dispersion": disp}
    for name, value in expected.items():
        assert float(found[name]) == pytest.approx(value, rel=2e-3, abs=2e-3), name


def test_above_the_dense_size_the_op_states_its_monte_carlo_error(monkeypatch):
    """Above ``LAPLACE_DENSE_MAX`` cells the Op takes the stochastic log-determinant: its value is within 4 stated
    standard errors of the exact one, and the error reaches the optimiser through ``track_logp_error``."""
    import xkron.models.laplace_op as laplace_op
    from xkron.models.ops import track_logp_error

    factors = [matern52(X[0], 1.2), matern52(X[1], 0.9)]
    exact = kron_laplace_logp("negative_binomial", Y, OBSERVED.astype(float), factors, 0.5, 0.3,
                              params={"dispersion": 2.0}).eval()  # fmt: skip
    monkeypatch.setattr(laplace_op, "LAPLACE_DENSE_MAX", 0)
    with track_logp_error() as error:
        estimate = kron_laplace_logp("negative_binomial", Y, OBSERVED.astype(float), factors, 0.5, 0.3,
                                     params={"dispersion": 2.0}).eval()  # fmt: skip
    assert error.evaluations == 1 and error.se > 0
    assert abs(estimate - exact) <= 4 * error.se


def test_failed_mode_search_retries_from_the_prior_then_gives_minus_infinity(monkeypatch):
    """A mode search that fails from the previous mode is retried from the prior mean; where that fails too
    (an optimiser's extreme trial point) the log marginal is −∞ with zero gradients, not an exception."""
    import xkron.models.laplace_op as laplace_op

    y, observed = simulate()
    op = laplace_op.KronLaplaceLogp(2, "negative_binomial", param_names=("dispersion",))
    inputs = [y, observed.astype(float), matern52(X[0], 1.5), matern52(X[1], 1.0), 0.64, 0.5, 3.0]
    good = op.evaluate(inputs)
    real, starts = laplace_op.newton_mode, []

    def fails_from_previous(terms, eigen, eta2, mean, observed, v0=None):
        starts.append(v0)
        if v0 is not None:
            raise RuntimeError("stalled")
        return real(terms, eigen, eta2, mean, observed, v0)

    monkeypatch.setattr(laplace_op, "newton_mode", fails_from_previous)
    np.testing.assert_allclose(op.evaluate(inputs)[0], good[0], rtol=1e-10)
    assert starts[0] is not None and starts[1] is None

    def always_fails(*args, **kwargs):
        raise RuntimeError("stalled")

    monkeypatch.setattr(laplace_op, "newton_mode", always_fails)
    out = op.evaluate(inputs)
    assert out[0] == -np.inf and all(np.all(np.asarray(g) == 0) for g in out[1:])
