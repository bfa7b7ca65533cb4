"""Progress lines on stderr: what is known, nothing invented.

Two kinds: :class:`MapProgress` for the MAP optimiser, :class:`CountProgress` for loops over a
known number of items (sample fields). Neither shows a percentage or a remaining time it cannot
know.

An optimiser cannot know how many iterations it will need, so a percentage or an ETA would be
a guess. :class:`MapProgress` shows, on stderr, the start being run (k of n), its iterations so
far, the current log posterior and the elapsed time. On a terminal the line is rewritten in
place (at most every :data:`REFRESH_S` seconds); elsewhere (logs, CI, captured output) only the
final line of each start is written.
"""

from __future__ import annotations

import sys
import time

__all__ = ["REFRESH", "REFRESH_S", "SHOW_AFTER", "CountProgress", "MapProgress", "clock"]

REFRESH_S = 0.2
"""Shortest interval between rewrites of the live line: often enough to look alive, rarely
enough that writing costs nothing next to an evaluation."""


def clock(seconds: float) -> str:
    """Elapsed time as ``h:mm:ss``.

    Examples
    --------
    >>> clock(3725.4)
    '1:02:05'
    """
    s = int(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


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


# Count progress (CountProgress): short loops stay silent. The line appears once a loop has run for
# SHOW_AFTER seconds, is redrawn in place (carriage return) at most every REFRESH seconds, and
# ends with a newline when the loop ends.

SHOW_AFTER = 2.0
"""Seconds before the line first appears: calls that end sooner print nothing."""

REFRESH = 0.5
"""Least seconds between redraws of a count, so that a fast loop does not flood a notebook's output."""


class CountProgress:
    """``label: 12/100 fields, 0:00:07 elapsed``, on stderr.

    Parameters
    ----------
    total : int
        Items the loop will produce.
    label : str
        What is running, e.g. ``"sample"``.
    unit : str
        The items' name, e.g. ``"fields"``.
    enabled : bool
        ``False`` prints nothing (``progressbar=False``).
    stream : file-like, optional
        Where to write (default ``sys.stderr``).
    show_after, refresh : float, optional
        Seconds before the first line and between redraws (default :data:`SHOW_AFTER`, :data:`REFRESH`).

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> with CountProgress(3, "sample", "fields", stream=out, show_after=0.0, refresh=0.0) as bar:
    ...     for done in range(1, 4):
    ...         bar.update(done)
    >>> out.getvalue().splitlines()[-1].split("\\r")[-1].startswith("sample: 3/3 fields, 0:00:0")
    True
    """

    def __init__(
        self,
        total: int,
        label: str,
        unit: str,
        enabled: bool = True,
        stream=None,
        show_after: float | None = None,
        refresh: float | None = None,
    ):
        self.total, self.label, self.unit, self.enabled = int(total), label, unit, enabled
        self.stream = stream if stream is not None else sys.stderr
        self.show_after = SHOW_AFTER if show_after is None else show_after
        self.refresh = REFRESH if refresh is None else refresh
        self.start = time.monotonic()
        self.done = 0
        self._shown_at: float | None = None

    def __enter__(self) -> CountProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        return f"{self.label}: {self.done}/{self.total} {self.unit}, {clock(time.monotonic() - self.start)} elapsed"

    def update(self, done: int) -> None:
        """Record that ``done`` items are finished; redraw if it is time to."""
        self.done = int(done)
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.start < self.show_after:
            return
        if self._shown_at is not None and now - self._shown_at < self.refresh:
            return
        self._shown_at = now
        self.stream.write("\r" + self.line())
        self.stream.flush()

    def close(self) -> None:
        """End the line (if one was shown) with the final count."""
        if self.enabled and self._shown_at is not None:
            self.stream.write("\r" + self.line() + "\n")
            self.stream.flush()
