"""When a MAP start ends, and when two starts count as one.

The iterative solver's log posterior is a Monte Carlo estimate with a stated standard error
(:func:`xkron.models.ops.track_logp_error`). Three rules keep the optimiser from spending
evaluations on differences that estimate does not resolve:

- a start ends, successfully, once its line search thrashes in place (:class:`StallWatch`);
- two starts' optima count as one within :data:`~xkron.settings.MAP_AGREE_SE` combined errors
  and :data:`~xkron.settings.MAP_AGREE_RTOL_NOISY` in every coordinate (:func:`agree`), and then
  the remaining restarts are skipped;
- a restart ends as soon as a point it evaluates agrees with an earlier start's optimum
  (:class:`AgreeWatch`): from there it would only converge to that optimum again.

Exact solvers state no error: the first rule then never fires, and the others fall back to
:data:`~xkron.settings.MAP_AT_BEST_NATS` and :data:`~xkron.settings.MAP_AGREE_RTOL`.
"""

from __future__ import annotations

import numpy as np

from xkron.settings import (
    MAP_AGREE_RTOL,
    MAP_AGREE_RTOL_NOISY,
    MAP_AGREE_SE,
    MAP_AT_BEST_NATS,
    MAP_STOP_EVALUATIONS,
    MAP_STOP_SE,
    MAP_STOP_STEP,
    MAP_STOP_STILL,
)

__all__ = ["AgreeWatch", "StallWatch", "agree", "logp_tolerance"]


class StallWatch:
    """Ends an optimisation whose objective is a Monte Carlo estimate once its line search thrashes in place.

    Each evaluation's value ``f`` (to minimise, with standard error ``se``) at the scaled point
    ``z`` is compared with the anchor, the last value that improved on its own anchor by more than
    :data:`MAP_STOP_SE` ``· se`` (the first value is the first anchor). An evaluation within
    :data:`MAP_STOP_STEP` of the anchor's point (every coordinate: a relative change of the
    log-transformed hyperparameters, data sds for the mean) that is neither better than that nor
    more than ``se`` worse is a stall: the line search is shrinking its step on differences that
    the stochastic log-determinant and its Hutchinson gradient do not resolve consistently, and
    L-BFGS-B would spend many evaluations before it fails. :meth:`see` is True after
    :data:`MAP_STOP_EVALUATIONS` stalls in a row. Evaluations farther away (a line search still
    moving) or far worse (a first trial overshooting) neither count nor reset; an exact objective
    (``se == 0``) never stalls here, and its optimiser's own rule applies. An evaluation within
    :data:`MAP_STOP_STILL` of the anchor's point is a stall even when it is better by up to ``se``:
    no hyperparameter has moved, and the difference is the CG tolerance's jitter in the estimate
    (on the coarse benchmark grid, points 1e-11 apart differed by 0.1 nats and reset the count
    five times). Within :data:`MAP_STOP_STEP`, a gain of at most :data:`MAP_AT_BEST_NATS` is a stall
    too: optima that close count as one (on the 10⁵-cell Poisson grid of ``bench_latent.py``, gains of
    3e-6 nats reset the count and cost 6 of the 23 evaluations of 5 s on the whole grid).
    """

    def __init__(self) -> None:
        self.anchor, self.point = np.inf, None
        self.stalled = 0
        self.message: str | None = None

    def see(self, f: float, se: float, z: np.ndarray) -> bool:
        if se <= 0:
            return False
        gain = self.anchor - f
        distance = np.inf if self.point is None else np.max(np.abs(np.asarray(z) - self.point), initial=0.0)
        still = distance <= MAP_STOP_STILL and gain <= se
        negligible = distance <= MAP_STOP_STEP and gain <= MAP_AT_BEST_NATS
        if gain > MAP_STOP_SE * se and not (still or negligible):
            self.anchor, self.point, self.stalled = f, np.array(z, copy=True), 0
        elif gain >= -se and distance <= MAP_STOP_STEP:
            self.stalled += 1
        if self.stalled < MAP_STOP_EVALUATIONS:
            return False
        self.message = (
            f"converged within the log posterior's Monte Carlo error (se {se:.3g} nats): {self.stalled} evaluations "
            f"in a row within {MAP_STOP_STEP:g} of the best point did not improve it"
        )
        return True


def logp_tolerance(a: dict, b: dict) -> float:
    """Largest difference between two optima's log posteriors that tells them apart from none:
    :data:`MAP_AT_BEST_NATS`, or :data:`MAP_AGREE_SE` combined standard errors when the log posteriors are
    Monte Carlo estimates (the iterative solver's ``logp_se``), whichever is larger."""
    return max(MAP_AT_BEST_NATS, MAP_AGREE_SE * float(np.hypot(a.get("logp_se", 0.0), b.get("logp_se", 0.0))))


def agree(a: dict, b: dict, natural: np.ndarray) -> bool:
    """Two starts reached one optimum: log posteriors within :func:`logp_tolerance`, every unconstrained
    value within :data:`MAP_AGREE_RTOL` of its natural unit (1 for a log: a relative difference; the data's sd
    for the mean), or :data:`MAP_AGREE_RTOL_NOISY` when the log posteriors are Monte Carlo estimates."""
    if not (np.isfinite(a["logp"]) and np.isfinite(b["logp"])) or abs(a["logp"] - b["logp"]) > logp_tolerance(a, b):
        return False
    noisy = a.get("logp_se", 0.0) > 0 or b.get("logp_se", 0.0) > 0
    return bool(np.all(np.abs(a["u"] - b["u"]) <= (MAP_AGREE_RTOL_NOISY if noisy else MAP_AGREE_RTOL) * natural))


class AgreeWatch:
    """Ends a restart at the first point it evaluates that agrees (:func:`agree`) with an earlier start's optimum.

    Parameters
    ----------
    earlier : sequence of dict
        The optima of the starts run before (``logp``, ``logp_se``, ``u``: the unconstrained point).
    natural : ndarray
        The unit of each unconstrained coordinate (as :func:`agree`).

    Examples
    --------
    >>> first = {"logp": -10.0, "logp_se": 0.0, "u": np.zeros(2)}
    >>> watch = AgreeWatch([first], np.ones(2))
    >>> watch.see(-30.0, 0.0, np.ones(2)), watch.see(-10.0, 0.0, np.full(2, 1e-4))
    (False, True)
    >>> watch.message
    "reached an earlier start's optimum (within 0.001 nats and 0.001 in every coordinate)"
    """

    def __init__(self, earlier, natural: np.ndarray) -> None:
        self.earlier, self.natural = list(earlier), np.asarray(natural, dtype=float)
        self.message: str | None = None

    def see(self, logp: float, se: float, u: np.ndarray) -> bool:
        here = {"logp": logp, "logp_se": se, "u": np.asarray(u)}
        for run in self.earlier:
            if agree(here, run, self.natural):
                noisy = se > 0 or run.get("logp_se", 0.0) > 0
                self.message = (
                    f"reached an earlier start's optimum (within {logp_tolerance(here, run):.3g} nats and "
                    f"{MAP_AGREE_RTOL_NOISY if noisy else MAP_AGREE_RTOL:g} in every coordinate)"
                )
                return True
        return False
