"""Issue 11, items 13-15: the MAP stops on Ctrl-C, leaves PyTensor's global mode alone (fits in
threads are deterministic), and shows honest progress (start k of n, iterations, log posterior,
elapsed time; no percentage or ETA)."""

from __future__ import annotations

import io
import re
import threading

import numpy as np
import pytensor
import pytest
import scipy.optimize
import xarray as xr

import xkron

KERNELS = {"a": xkron.Matern52(), "b": xkron.ExpQuad()}
LINE = re.compile(
    r"MAP start (\d+) of (\d+): (\d+) iterations, log posterior (\S+), (\d+\.\d) s \((converged|not converged: .*)\)"
)


def grid(seed: int = 0, n: int = 10) -> xr.DataArray:
    rng = np.random.default_rng(seed)
    a, b = np.linspace(0, 5, n), np.linspace(0, 3, 8)
    y = np.sin(a)[:, None] * np.cos(2 * b)[None, :] + 0.1 * rng.normal(size=(n, 8))
    return xr.DataArray(y, coords={"a": a, "b": b}, dims=("a", "b"))


def test_keyboard_interrupt_stops_the_fit_at_once(monkeypatch):
    """Ctrl-C inside the objective propagates; no further start runs (find_MAP swallowed it)."""
    calls = []
    real = scipy.optimize.minimize

    def interrupting(fun, x0, *args, **kwargs):
        calls.append(1)
        evaluations = [0]

        def fun_then_interrupt(x, *a):
            evaluations[0] += 1
            if evaluations[0] > 3:
                raise KeyboardInterrupt
            return fun(x, *a)

        return real(fun_then_interrupt, x0, *args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", interrupting)
    with pytest.raises(KeyboardInterrupt):
        xkron.fit(grid(), KERNELS, restarts=2, progressbar=False)
    assert len(calls) == 1


def test_map_optimises_under_the_global_compile_mode(monkeypatch):
    """While the MAP evaluates its objective, ``pytensor.config.mode`` is still the process's own:
    its mode goes to its compiled function, not into the process-wide flag that fits in other
    threads read (it used to be switched for the whole MAP by ``change_flags``)."""
    before = str(pytensor.config.mode)
    seen = set()
    real = scipy.optimize.minimize

    def recording(fun, x0, *args, **kwargs):
        def fun_recording(x, *a):
            seen.add(str(pytensor.config.mode))
            return fun(x, *a)

        return real(fun_recording, x0, *args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", recording)
    xkron.fit(grid(), KERNELS, restarts=1, progressbar=False)
    assert seen == {before}


def test_map_fits_in_threads_equal_the_same_fits_run_serially():
    """Two MAP fits in two threads give bit-identical results to running them one after the other.

    (NUTS fits are not covered: PyTensor itself sets ``config.mode`` process-wide while it
    rewrites any graph, so a compile that reads the default mode in another thread at that
    moment can still pick up the MAP's.)
    """

    def map_fit(seed, restarts):
        return xkron.fit(grid(seed), KERNELS, restarts=restarts, progressbar=False)

    jobs = [(1, 2), (2, 1)]
    serial = [map_fit(*job) for job in jobs]
    threaded: list = [None] * len(jobs)
    threads = [
        threading.Thread(target=lambda i=i, job=job: threaded.__setitem__(i, map_fit(*job)))
        for i, job in enumerate(jobs)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got, want in zip(threaded, serial, strict=True):
        assert got.optimizer == want.optimizer
        for name in want.params.data_vars:
            np.testing.assert_array_equal(got.params[name].values, want.params[name].values, err_msg=name)


def test_progress_shows_each_start_iterations_and_log_posterior(capsys):
    fit = xkron.fit(grid(), KERNELS, restarts=2, progressbar=True)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.strip().splitlines()
    parsed = [LINE.fullmatch(line) for line in lines]
    assert all(parsed), lines
    # One line per start that ran: the restarts stop once two starts agree (issue 13).
    assert [(int(m[1]), int(m[2])) for m in parsed] == [(k + 1, 3) for k in range(fit.optimizer["n_starts_run"])]
    logps = [float(m[4]) for m in parsed]
    assert max(logps) == pytest.approx(fit.optimizer["logp"], rel=1e-5)
    assert logps == pytest.approx(fit.optimizer["logp_starts"], rel=1e-5)
    best = int(np.argmax(fit.optimizer["logp_starts"]))
    assert int(parsed[best][3]) == fit.optimizer["nit"]
    assert "%" not in err and "ETA" not in err


def test_progress_on_a_terminal_rewrites_one_line_per_start(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    monkeypatch.setattr("xkron.progress.REFRESH_S", 0.0)
    fit = xkron.fit(grid(), KERNELS, restarts=0, progressbar=True)
    text = terminal.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    *live, final = [part for part in text.split("\r") if part]
    updates = [re.match(r"MAP start 1 of 1: (\d+) iterations, log posterior \S+, \d+\.\d s *$", part) for part in live]
    assert all(updates), live
    counts = [int(m[1]) for m in updates]
    assert counts == list(range(fit.optimizer["nit"] + 1))  # 0 at the start, then every iteration
    assert LINE.fullmatch(final.strip())


def test_no_progressbar_prints_nothing(capsys):
    xkron.fit(grid(), KERNELS, restarts=1, progressbar=False)
    assert capsys.readouterr() == ("", "")
