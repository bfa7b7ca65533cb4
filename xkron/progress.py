"""Progress of the MAP optimiser: what is known, nothing invented.

An optimiser cannot know how many iterations it will need, so a percentage or an ETA would be
a guess. :class:`MapProgress` shows, on stderr, the start being run (k of n), its iterations so
far, the current log posterior and the elapsed time. On a terminal the line is rewritten in
place (at most every :data:`REFRESH_S` seconds); elsewhere (logs, CI, captured output) only the
final line of each start is written.
"""

from __future__ import annotations

import sys
import time

__all__ = ["REFRESH_S", "MapProgress"]

REFRESH_S = 0.2
"""Shortest interval between rewrites of the live line: often enough to look alive, rarely
enough that writing costs nothing next to an evaluation."""


class MapProgress:
    """One stderr line per MAP start: ``MAP start k of n: i iterations, log posterior L, t s``.

    Parameters
    ----------
    n_starts : int
        Number of starts.
    enabled : bool
        False writes nothing (``progressbar=False``).

    Examples
    --------
    >>> import io
    >>> p = MapProgress(2, enabled=True, stream=io.StringIO())
    >>> p.start(0, -10.0); p.done(12, -3.25, True, "converged")
    >>> p.stream.getvalue().startswith("MAP start 1 of 2: 12 iterations, log posterior -3.25, ")
    True
    """

    def __init__(self, n_starts: int, enabled: bool = True, stream=None):
        self.n_starts, self.enabled = n_starts, enabled
        self._stream = stream
        self.k, self.t0, self.shown = 0, time.monotonic(), 0.0
        self.line = ""

    @property
    def stream(self):
        """Where lines go: the given stream, else ``sys.stderr`` as it is now (pytest and Jupyter swap it)."""
        return self._stream if self._stream is not None else sys.stderr

    def _live(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(self.enabled and isatty is not None and isatty())

    def _text(self, nit: int, logp: float) -> str:
        elapsed = time.monotonic() - self.t0
        return f"MAP start {self.k + 1} of {self.n_starts}: {nit} iterations, log posterior {logp:.6g}, {elapsed:.1f} s"

    def _write(self, text: str, end: str = "") -> None:
        pad = " " * max(0, len(self.line) - len(text)) if self._live() else ""
        prefix = "\r" if self._live() else ""
        self.stream.write(prefix + text + pad + end)
        self.stream.flush()
        self.line = "" if end else text

    def start(self, k: int, logp: float) -> None:
        """Start ``k`` (0-based) begins, at log posterior ``logp``."""
        self.k, self.t0, self.shown = k, time.monotonic(), 0.0
        if self._live():
            self._write(self._text(0, logp))

    def update(self, nit: int, logp: float) -> None:
        """After each iteration: rewrite the live line (terminals only, throttled)."""
        now = time.monotonic()
        if self._live() and now - self.shown >= REFRESH_S:
            self.shown = now
            self._write(self._text(nit, logp))

    def done(self, nit: int, logp: float, success: bool, message: str) -> None:
        """The start finished: its final line, with the optimiser's verdict."""
        if self.enabled:
            verdict = "converged" if success else f"not converged: {message}"
            self._write(f"{self._text(nit, logp)} ({verdict})", end="\n")

    def interrupted(self) -> None:
        """An exception (Ctrl-C) stopped the start: end the live line so the traceback starts clean."""
        if self.enabled and self.line:
            self._write(self.line + " (interrupted)", end="\n")
