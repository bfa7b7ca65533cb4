"""A plain-text progress line for long loops over a known number of items (sample fields).

It says only what is known: items done of the total and the time elapsed; it never guesses a
remaining time. Short loops stay silent: the line appears once a loop has run for
:data:`SHOW_AFTER` seconds, is redrawn in place (carriage return) at most every
:data:`REFRESH` seconds, and ends with a newline when the loop ends.
"""

from __future__ import annotations

import sys
import time

__all__ = ["REFRESH", "SHOW_AFTER", "Progress"]

SHOW_AFTER = 2.0
"""Seconds before the line first appears: calls that end sooner print nothing."""

REFRESH = 0.5
"""Least seconds between redraws, so that a fast loop does not flood a notebook's output."""


class Progress:
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
    >>> with Progress(3, "sample", "fields", stream=out, show_after=0.0, refresh=0.0) as bar:
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

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.start)
        clock = f"{elapsed // 3600}:{elapsed // 60 % 60:02d}:{elapsed % 60:02d}"
        return f"{self.label}: {self.done}/{self.total} {self.unit}, {clock} elapsed"

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
