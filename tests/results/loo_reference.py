"""Reference for the leave-one-out tests: a small labelled grid and brute-force conditioning on the other cells."""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.stats import norm

import xkron

X = np.linspace(0, 1, 5)
T = np.linspace(0, 2, 4)
KERNELS = {"x": "ExpQuad", "time": "Matern32"}
FIXED = {"x": xkron.ExpQuad(ls=0.5), "time": xkron.Matern32(ls=1.0)}


def data(seed=0, x=X, t=T) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    values = np.sin(3 * x)[:, None] * np.cos(t)[None, :] + 0.1 * rng.normal(size=(len(x), len(t))) + 0.5
    return xr.DataArray(values, coords={"x": x, "time": t}, dims=("x", "time"), name="temp", attrs={"units": "K"})


def covariance(p, x=X, t=T) -> np.ndarray:
    """η² K_x ⊗ K_time written out from the kernels' formulas (independent of xkron's kernels)."""
    kx = np.exp(-0.5 * (np.subtract.outer(x, x) / p["ls_x"]) ** 2)
    r = np.sqrt(3) * np.abs(np.subtract.outer(t, t)) / p["ls_time"]
    kt = (1 + r) * np.exp(-r)
    return p["amplitude"] ** 2 * np.kron(kx, kt)


def brute_force(y: np.ndarray, p, noise_var, x=X, t=T) -> tuple[np.ndarray, ...]:
    """For every observed cell, the dense GP conditioned on every other observed cell (no shortcut)."""
    C = covariance(p, x, t) + np.diag(np.broadcast_to(noise_var, y.shape).ravel())
    flat, seen = y.ravel(), np.flatnonzero(np.isfinite(y.ravel()))
    mean, sd, logd = (np.full(y.size, np.nan) for _ in range(3))
    for i in seen:
        rest = seen[seen != i]
        w = np.linalg.solve(C[np.ix_(rest, rest)], C[rest, i])
        mean[i] = p["mean"] + w @ (flat[rest] - p["mean"])
        sd[i] = np.sqrt(C[i, i] - C[i, rest] @ w)
        logd[i] = norm(mean[i], sd[i]).logpdf(flat[i])
    return tuple(a.reshape(y.shape) for a in (mean, sd, logd))
