"""An iterative-solver MAP starts from the optimum of a thinned copy of the grid, and ends where the dense one does.

Reference: the dense (exact Cholesky) MAP on the same 1,500 observed cells of a 3 × 50 × 40
grid with clouds-like gaps (a smooth random field, thresholded per time step), simulated from
the model's own kernel (ExpQuad, lengthscales 6 and 8 cells, amplitude 1, noise 0.1).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage
import xarray as xr

import xkron


@pytest.fixture(scope="module")
def cloudy():
    rng = np.random.default_rng(5)
    t, x, y = np.arange(3.0), np.arange(50.0), np.arange(40.0)

    def chol(c, ls):
        return np.linalg.cholesky(np.exp(-0.5 * np.subtract.outer(c, c) ** 2 / ls**2) + 1e-8 * np.eye(c.size))

    f = np.einsum("ai,bj,ck,ijk->abc", chol(t, 2.0), chol(x, 6.0), chol(y, 8.0), rng.standard_normal((3, 50, 40)))
    sky = np.stack([scipy.ndimage.gaussian_filter(rng.standard_normal((50, 40)), 4.0) for _ in t])
    clear = sky < np.quantile(sky, 0.25, axis=(1, 2), keepdims=True)  # a quarter of each step observed
    data = np.where(clear, f + 0.1 * rng.standard_normal(f.shape), np.nan)
    return xr.DataArray(data, coords={"t": t, "x": x, "y": y}, dims=("t", "x", "y"))


def test_the_coarse_start_ends_at_the_dense_optimum(cloudy):
    kernels = {"t": xkron.ExpQuad(), "x": xkron.ExpQuad(), "y": xkron.ExpQuad()}
    fit = cloudy.kron.fit(kernels, solver="iterative", progressbar=False)
    dense = cloudy.kron.fit(kernels, solver="dense", restarts=0, progressbar=False)
    coarse = fit.optimizer["coarse"]
    assert coarse["shape"] == [3, 25, 20] and fit.optimizer["n_starts"] == 1  # one start, from the copy's optimum
    assert fit.optimizer["solver"]["cg_converged"]
    for name in ("ls_x", "ls_y", "amplitude", "noise"):
        np.testing.assert_allclose(float(fit.params[name]), float(dense.params[name]), rtol=0.02, err_msg=name)
