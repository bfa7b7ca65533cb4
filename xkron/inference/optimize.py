"""Maximum a posteriori fits of a PyMC model, on a scale-free unconstrained point.

The model and its transforms are PyMC's; this module replaces ``pm.find_MAP`` by its own
loop around :func:`scipy.optimize.minimize` (L-BFGS-B) for four reasons:

- **Scale-free.** ``find_MAP`` optimises the unconstrained value of every variable as it is.
  Log-transformed variables (lengthscales, amplitude, noise) are scale-free already, but the
  constant mean is in data units: for data in small units its gradient dwarfs the others, and
  the optimiser stopped at its start. Here every untransformed variable in data units moves in
  steps of the data's sd (``u = offset + unit · z``), and the objective is the log posterior
  relative to its value at the first start, so scaling or shifting the data leaves the
  optimiser's path, tolerances and stopping rule unchanged.
- **Ctrl-C stops the fit.** ``find_MAP`` catches ``KeyboardInterrupt`` and returns the point
  it had; nothing here catches it.
- **Thread safety.** The compile mode is passed to the compiled function (:data:`COMPILE_MODE`).
- **Honest progress.** :class:`xkron.progress.MapProgress`: start k of n, iterations, log posterior, time.
- **Stochastic objectives.** The iterative solver's log posterior is a Monte Carlo estimate with a
  stated standard error (:func:`xkron.models.ops.track_logp_error`). A start ends, successfully,
  once several evaluations in a row stop improving it, two starts' optima count as one within
  its combined errors, and a restart ends once it reaches an earlier start's optimum
  (:mod:`xkron.inference.stopping`); exact solvers state no error, and the first rule then
  changes nothing.

One function is compiled per fit (log posterior, its gradient and the constrained values
together), not three per start.
"""

from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytensor
import scipy.optimize
from pymc.pytensorf import compile as pm_compile

from xkron.errors import ConvergenceWarning
from xkron.inference.stopping import AgreeWatch, StallWatch, agree, logp_tolerance
from xkron.models.ops import track_logp_error
from xkron.progress import MapProgress
from xkron.settings import MAP_AT_BEST_NATS, MAP_CEILING_NATS, MAP_MAXEVAL, MAP_RETREAT_NATS, MAP_RETREATS

__all__ = [
    "COMPILE_MODE",
    "MAP_AT_BEST_NATS",
    "MAP_KWARGS",
    "MAP_MAXEVAL",
    "compile_log_density",
    "data_scale",
    "fit_map",
]

COMPILE_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="merge")
"""PyTensor mode of the MAP's functions: the Python linker with only the merge rewrite. The
graph is small (kernel matrices and one Kronecker Op that does the heavy work), so a fast
compile matters more than fused elementwise code."""


MAP_KWARGS = ("method", "tol", "options", "maxeval")
"""Keyword arguments ``fit(method="map", ...)`` accepts: ``method``, ``tol`` and ``options`` of
:func:`scipy.optimize.minimize` (default ``"L-BFGS-B"``), and ``maxeval`` (:data:`MAP_MAXEVAL`)."""


class _MaxEval(Exception):
    """Raised inside the objective when a start has used its ``maxeval`` evaluations."""


class _Retreat(Exception):
    """Raised in the optimiser's callback when its iterate fell far behind the best point evaluated."""


class _EndStart(Exception):
    """Raised inside the objective when a watch (:mod:`xkron.inference.stopping`) ends the start; says why."""


def data_scale(y) -> float:
    """The data's sd over finite cells (1 when it is 0 or undefined): the unit of the mean's steps."""
    y = np.asarray(y, dtype=float)
    seen = y[np.isfinite(y)]
    sd = float(np.std(seen)) if seen.size else 0.0
    return sd if np.isfinite(sd) and sd > 0 else 1.0


@dataclass
class _Objective:
    """Negative log posterior (no Jacobian, as ``find_MAP``) and its gradient in scale-free coordinates:
    ``u = offset + unit · z`` is the unconstrained point; ``f(z) = −(log p(u) − logp_ref)``."""

    fn: Any
    names: list[str]
    shapes: list[tuple[int, ...]]
    offset: np.ndarray
    unit: np.ndarray
    logp_ref: float = 0.0
    maxeval: int = MAP_MAXEVAL
    n_eval: int = 0
    last: tuple | None = None
    best: tuple | None = None
    stall: StallWatch | None = None
    agree: AgreeWatch | None = None
    memo: dict | None = None
    ceiling: Any = None
    n_skipped: int = 0

    def split(self, u: np.ndarray) -> list[np.ndarray]:
        sizes = [int(np.prod(s)) for s in self.shapes]
        parts = np.split(u, np.cumsum(sizes)[:-1])
        return [p.reshape(s) for p, s in zip(parts, self.shapes, strict=True)]

    def evaluate(self, z: np.ndarray) -> tuple[float, np.ndarray, list, float]:
        """``(log p, ∂ log p/∂u raveled, constrained values, logp_se)`` at ``z`` (remembered); ``logp_se``: the
        iterative solver's Monte Carlo se (:func:`xkron.models.ops.track_logp_error`; 0 for exact solvers)."""
        if (seen := self.seen(z)) is not None:
            return seen
        if self.memo is not None and (key := np.asarray(z, dtype=float).tobytes()) in self.memo:
            self.last = (np.array(z, copy=True), self.memo[key])
            return self.memo[key]
        # A line search may try points far out (an overflowing covariance): the value is then
        # not finite and is handled as -inf below, so numpy's overflow warnings would only be noise.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"), track_logp_error() as error:
            out = self.fn(*self.split(self.offset + self.unit * z))
        k = len(self.names)
        grad = np.concatenate([np.ravel(g) for g in out[1 : 1 + k]]) if k else np.zeros(0)
        result = (float(out[0]), grad, out[1 + k :], error.se)
        self.last = (np.array(z, copy=True), result)
        return result

    def start(self, stall: StallWatch | None, agree: AgreeWatch | None = None) -> None:
        """Count evaluations, and track the best point, of a new start; ``stall`` and ``agree`` may end it."""
        self.n_eval, self.best, self.stall, self.agree = 0, None, stall, agree

    def start_value(self, z: np.ndarray) -> float:
        """``log p`` at a start point (``-inf`` outside the model), kept for the start's first evaluation."""
        if self.memo is None:
            self.memo = {}
        try:
            result = self.evaluate(z)
        except np.linalg.LinAlgError:
            return -np.inf
        self.memo[np.asarray(z, dtype=float).tobytes()] = result
        return result[0] if np.isfinite(result[0]) else -np.inf

    def below_ceiling(self, z: np.ndarray) -> tuple[float, np.ndarray] | None:
        """The objective's bound and its gradient at ``z`` where ``z``'s log posterior is bounded
        :data:`~xkron.settings.MAP_CEILING_NATS` below the start's best (``ceiling(u)``: an upper bound of
        ``log p(u)`` and its gradient), so that it need not be evaluated; else ``None``."""
        if self.ceiling is None or self.best is None:
            return None
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            bound, grad = self.ceiling(self.offset + self.unit * z)
        if not (np.isfinite(bound) and bound < self.best[1][0] - MAP_CEILING_NATS and np.all(np.isfinite(grad))):
            return None
        return -(bound - self.logp_ref), -self.unit * grad

    def seen(self, z: np.ndarray):
        """The result at ``z`` if it is the last or the best point evaluated, else ``None``."""
        return next((p[1] for p in (self.last, self.best) if p is not None and np.array_equal(p[0], z)), None)

    def behind_best(self, logp: float) -> bool:
        """Whether ``logp`` is below the start's best by over :data:`~xkron.settings.MAP_RETREAT_NATS` and two se."""
        return self.best is not None and logp < self.best[1][0] - max(MAP_RETREAT_NATS, 2.0 * self.best[1][3])

    def __call__(self, z: np.ndarray) -> tuple[float, np.ndarray]:
        if (bounded := self.below_ceiling(z)) is not None:
            # Far worse than the best whatever the likelihood: the bound stands in for the value (the line
            # search steps back from it as from the true value), and the evaluation is saved.
            self.n_skipped += 1
            return bounded
        if self.seen(z) is None:  # a point seen again (resuming from the best, :data:`MAP_RETREATS`) costs nothing
            self.n_eval += 1
        if self.n_eval > self.maxeval:
            raise _MaxEval
        try:
            logp, grad, _, se = self.evaluate(z)
        except np.linalg.LinAlgError:  # a covariance that is not positive definite: outside the model
            logp = -np.inf
        if not np.isfinite(logp):
            # The line search steps back from an infinite value; a gradient of 0 keeps it finite.
            return np.inf, np.zeros_like(z)
        if self.best is None or logp > self.best[1][0]:
            self.best = self.last
        f = -(logp - self.logp_ref)
        if self.stall is not None and self.stall.see(f, se, z):
            raise _EndStart(self.stall.message)
        if self.agree is not None and self.agree.see(logp, se, self.offset + self.unit * z):
            raise _EndStart(self.agree.message)
        return f, -self.unit * grad


def _is_log(transform) -> bool:
    return type(transform).__name__ == "LogTransform"


def compile_log_density(model, jacobian: bool = False):
    """``fn(*values) -> [log p, *∂log p/∂values, *constrained]`` on the model's unconstrained value
    variables, and ``to_u(*constrained) -> values``, both compiled with :data:`COMPILE_MODE`.

    ``jacobian=False`` is the MAP's density (as ``find_MAP``'s); ``True`` the density of the
    unconstrained values themselves (INLA integrates over them, :mod:`xkron.inference.inla`).
    """
    rvs, values = list(model.free_RVs), list(model.value_vars)
    transforms = [model.rvs_to_transforms.get(rv) for rv in rvs]
    logp = model.logp(jacobian=jacobian)
    grads = pytensor.grad(logp, wrt=values)
    constrained = model.replace_rvs_by_values(rvs)
    with model:
        fn = pm_compile(values, [logp, *grads, *constrained], mode=COMPILE_MODE, on_unused_input="ignore")
        points = [rv.type() for rv in rvs]
        forward = [
            p if t is None else t.forward(p, *rv.owner.inputs) for p, rv, t in zip(points, rvs, transforms, strict=True)
        ]
        to_u = pm_compile(points, forward, mode=COMPILE_MODE, on_unused_input="ignore")
    return fn, to_u


def _compile_ceiling(model, split, loglik_max: float):
    """``u ↦ (log prior(u) + loglik_max, its gradient)``: an upper bound of the MAP's log density where
    ``loglik_max`` bounds the rest of it (the potentials and observed variables)."""
    values = list(model.value_vars)
    prior = model.logp(vars=list(model.free_RVs), jacobian=False)
    with model:
        fn = pm_compile(values, [prior, *pytensor.grad(prior, wrt=values)], mode=COMPILE_MODE,
                        on_unused_input="ignore")  # fmt: skip

    def ceiling(u):
        value, *grads = fn(*split(u))
        return float(value) + loglik_max, np.concatenate([np.ravel(g) for g in grads])

    return ceiling


def _compile(model, scales, rel_scales):
    """The objective's compiled function, and ``to_unconstrained(start) -> u`` for the starts."""
    rvs = list(model.free_RVs)
    transforms = [model.rvs_to_transforms.get(rv) for rv in rvs]
    fn, to_u = compile_log_density(model)
    unit, natural = [], []
    for rv, transform in zip(rvs, transforms, strict=True):
        size = int(np.prod(rv.type.shape)) if all(s is not None for s in rv.type.shape) else 1
        table = scales if transform is None else rel_scales
        step = float(table.get(rv.name, 1.0)) if transform is None or _is_log(transform) else 1.0
        unit.extend([step] * size)
        natural.extend([float(scales.get(rv.name, 1.0)) if transform is None else 1.0] * size)
    names = [rv.name for rv in rvs]

    def to_unconstrained(start: dict) -> np.ndarray:
        args = [np.asarray(start[n], dtype=rv.dtype).reshape(rv.type.shape) for n, rv in zip(names, rvs, strict=True)]
        return np.concatenate([np.ravel(v) for v in to_u(*args)])

    return fn, names, np.asarray(unit, dtype=float), np.asarray(natural, dtype=float), to_unconstrained


def _check_kwargs(kwargs: dict) -> None:
    unknown = [k for k in kwargs if k not in MAP_KWARGS]
    if unknown:
        hints = [f"{k!r} (did you mean {m[0]!r}?)" if (m := difflib.get_close_matches(k, MAP_KWARGS, 1)) else repr(k)
                 for k in unknown]  # fmt: skip
        raise TypeError(f"method='map' does not accept {', '.join(hints)}; it accepts {list(MAP_KWARGS)}")


def _stops_within_error(kwargs: dict) -> bool:
    """Whether a start may end on a watch (:mod:`xkron.inference.stopping`): not when the user gives ``tol`` or
    ``options``, which win."""
    return kwargs.get("tol") is None and not kwargs.get("options")


def _run_start(objective: _Objective, z0: np.ndarray, progress: MapProgress, kwargs: dict, earlier=(), natural=None):
    """Optimise from one start; the result's ``x`` is the best point reached.

    The start also ends, successfully, at the best point reached once its evaluations no longer
    improve the log posterior beyond its Monte Carlo error (:class:`~xkron.inference.stopping.StallWatch`),
    or once a point it evaluates agrees with one of the ``earlier`` starts' optima
    (:class:`~xkron.inference.stopping.AgreeWatch`, ``natural``: the unit of each coordinate).

    L-BFGS-B's line search (Moré-Thuente) may accept a trial worse than an earlier one (tutorial 6: 340 nats
    worse, a collapsed lengthscale it never left); an iterate :data:`~xkron.settings.MAP_RETREAT_NATS` (and
    two se) behind the best point resumes the start there with a fresh memory (:data:`~xkron.settings.MAP_RETREATS`).
    """
    nit = [0]

    def callback(intermediate_result):
        nit[0] += 1
        progress.update(nit[0], objective.logp_ref - float(intermediate_result.fun))
        if retreats[0] < MAP_RETREATS and objective.behind_best(objective.logp_ref - float(intermediate_result.fun)):
            retreats[0] += 1
            raise _Retreat

    watches, retreats = _stops_within_error(kwargs), [0]
    objective.start(StallWatch() if watches else None, AgreeWatch(earlier, natural) if watches and earlier else None)
    method, z = kwargs.get("method", "L-BFGS-B"), z0
    while True:
        try:
            res = scipy.optimize.minimize(
                objective, z, jac=True, method=method, tol=kwargs.get("tol"), options=kwargs.get("options"),
                callback=callback,
            )  # fmt: skip
            x, success, message, nit_done = res.x, bool(res.success), str(res.message), int(getattr(res, "nit", nit[0]))
        except _Retreat:
            z = objective.best[0]
            continue
        except _EndStart as end:
            x, success, message, nit_done = objective.best[0], True, str(end), nit[0]
        except _MaxEval:
            x, success = objective.last[0], False
            message, nit_done = f"stopped after maxeval={objective.maxeval} evaluations", nit[0]
        break
    if objective.behind_best(objective.evaluate(x)[0]):
        x = objective.best[0]  # the best point reached, not a worse last iterate
    n_eval = min(objective.n_eval, objective.maxeval)
    logp, _, values, logp_se = objective.evaluate(x)
    return {"x": x, "logp": logp, "logp_se": logp_se, "values": values, "success": success, "message": message,
            "nit": nit_done, "n_eval": n_eval, "n_retreats": retreats[0]}  # fmt: skip


def fit_map(
    model,
    starts: list[dict],
    *,
    scales: dict | None = None,
    rel_scales: dict | None = None,
    progressbar: bool = True,
    stacklevel: int = 2,
    loglik_max: float | None = None,
    **kwargs,
):
    """Maximise the log posterior of ``model`` from each start in turn, until two agree; keep the best optimum.

    Starts run in order. Once two have reached the same optimum (:func:`xkron.inference.stopping.agree`: within
    :data:`MAP_AT_BEST_NATS` or, for the iterative solver's Monte Carlo log posterior,
    :data:`~xkron.settings.MAP_AGREE_SE` combined standard errors, and :data:`~xkron.settings.MAP_AGREE_RTOL`), the
    remaining ones are skipped (a restart ends as soon as it reaches an earlier optimum): the
    first start is fitted to the data (:func:`xkron.spec.priors.map_starts`) and the restarts are
    spread around it, so another start would most likely reach that optimum a third time.

    Parameters
    ----------
    model : pymc.Model
        Every free variable is optimised (the Gaussian marginal model's hyperparameters).
    starts : list of dict
        Constrained values of every free variable, one dict per start
        (:func:`xkron.spec.priors.map_starts`).
    scales : dict, optional
        Step unit of untransformed variables in data units, by name (``{"mean": data_scale(y)}``):
        makes the optimisation equivariant under scaling and shifting the data.
    rel_scales : dict, optional
        Relative step unit of log-transformed variables, by name (default 1, a factor ``e``):
        smaller for parameters whose optima are narrow, such as periods
        (:func:`xkron.spec.priors.period_steps`).
    progressbar : bool
        One line per start on stderr (:class:`xkron.progress.MapProgress`).
    stacklevel : int
        Of the :class:`ConvergenceWarning`, counted from the caller of this function.
    loglik_max : float, optional
        An upper bound of the model's log density less its free variables' priors (0 for the Laplace
        marginal of counts or yes/no data, a probability). A trial point whose log prior plus this is
        :data:`~xkron.settings.MAP_CEILING_NATS` below the start's best value is not evaluated: that bound,
        with the prior's gradient, stands in for its value, and the line search steps back from it.
    **kwargs
        :data:`MAP_KWARGS`.

    Returns
    -------
    values : dict
        The best optimum's constrained values, by variable name.
    report : dict
        ``success``, ``message``, ``logp`` (log posterior without Jacobian, as ``find_MAP``),
        ``nit`` (of the best start), ``n_starts`` (the starts given), ``n_starts_run`` (those tried
        before two agreed, or all), ``stopped_early`` (True when two agreed before the last start),
        ``n_starts_at_best`` (starts within :func:`~xkron.inference.stopping.logp_tolerance` of the best),
        ``logp_starts`` (the optimum reached from each start tried, NaN where the start's log posterior was not finite),
        ``n_eval`` (log-posterior evaluations of the optimiser, all starts together), ``n_skipped``
        (trial points not evaluated, being below ``loglik_max``'s ceiling) and ``n_retreats`` (resumptions
        from a start's best point, :data:`~xkron.settings.MAP_RETREAT_NATS`).
    """
    _check_kwargs(kwargs)
    fn, names, unit, natural, to_unconstrained = _compile(model, scales or {}, rel_scales or {})
    us = [to_unconstrained(s) for s in starts]
    objective = _Objective(fn, names, [tuple(rv.type.shape) for rv in model.free_RVs], us[0], unit)
    objective.maxeval = int(kwargs.get("maxeval", MAP_MAXEVAL))
    if loglik_max is not None:
        objective.ceiling = _compile_ceiling(model, objective.split, float(loglik_max))
    zs = [(u - objective.offset) / unit for u in us]
    progress = MapProgress(len(starts), enabled=progressbar)
    runs, n_tried = _run_starts(objective, zs, natural, progress, kwargs)
    if not runs:
        raise RuntimeError("the MAP optimisation failed from every start (non-finite log-density at every start)")
    logp_starts = [float("nan")] * n_tried
    for k, run in runs.items():
        logp_starts[k] = run["logp"]
    found = [r for r in runs.values() if np.isfinite(r["logp"])]
    if not found:
        raise RuntimeError("the MAP optimisation failed from every start (non-finite log-density)")
    best = max(found, key=lambda r: r["logp"])
    report = {
        "success": best["success"],
        "message": best["message"],
        "logp": best["logp"],
        "nit": best["nit"],
        "n_starts": len(starts),
        "n_starts_run": n_tried,
        "stopped_early": n_tried < len(starts),
        "n_starts_at_best": int(sum(best["logp"] - r["logp"] <= logp_tolerance(best, r) for r in found)),
        "logp_starts": logp_starts,
        "n_eval": int(sum(r["n_eval"] for r in runs.values())),
        "n_skipped": objective.n_skipped,
        "n_retreats": int(sum(r["n_retreats"] for r in runs.values())),
    }
    if not best["success"]:
        warnings.warn(
            f"MAP optimiser did not converge ({best['message']}); the best of {n_tried} starts is returned. "
            "Try more restarts, fixed or tighter priors, or method='nuts'.",
            ConvergenceWarning,
            stacklevel=stacklevel + 1,
        )
    values = {name: np.asarray(v) for name, v in zip(names, best["values"], strict=True)}
    return values, report


def _run_starts(objective: _Objective, zs, natural, progress: MapProgress, kwargs):
    """Optimise from each start with a finite log posterior in turn until one agrees with an earlier one
    (:func:`~xkron.inference.stopping.agree`).

    A start's log posterior is evaluated just before its run (and kept for the run's first
    evaluation), so starts after the stop cost nothing; the first finite one is the objective's
    reference. Returns the runs by start index and the number of starts tried (those up to the stop).
    """
    runs: dict[int, dict] = {}
    for k, z in enumerate(zs):
        start_logp = objective.start_value(z)
        if not np.isfinite(start_logp):
            continue
        if not runs:
            objective.logp_ref = start_logp
        progress.start(k, start_logp)
        try:
            run = _run_start(objective, z, progress, kwargs, list(runs.values()), natural)
        except BaseException:
            progress.interrupted()
            raise
        progress.done(run["nit"], run["logp"], run["success"], run["message"])
        run["u"] = objective.offset + objective.unit * run["x"]
        agreed = any(agree(run, earlier, natural) for earlier in runs.values())
        runs[k] = run
        if agreed:
            return runs, k + 1
    return runs, len(zs)
