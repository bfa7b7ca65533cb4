"""Parsers of option values: ``--kernel``, ``--chunks``, ``--grid``, ``--quantiles`` (no xarray needed).

Each parser returns plain values or a small frozen dataclass and raises
:class:`~xkron.cli.errors.JobInputError` naming the option; kernels are looked up in the
library's registry (:data:`xkron.spec.kernel_registry.KERNELS`) and built with their own classes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from xkron.cli.errors import JobInputError

__all__ = [
    "CF_NUMBER",
    "FREQ_UNITS",
    "ISO_DATE",
    "PARTIAL_DATE",
    "GridSpec",
    "KernelSpec",
    "parse_chunks",
    "parse_freq",
    "parse_grid",
    "parse_kernel",
    "parse_quantiles",
    "split_span",
]

ISO_DATE = re.compile(r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d*)?)?)?\s*$")
"""An ISO date or date-time as ``--grid`` takes it; the groups are year, month, day, hour, minute, second."""

PARTIAL_DATE = re.compile(r"^\s*(\d{4})(?:-(\d{1,2}))?\s*$")
"""A year (``1990``) or a month (``1990-06``) on a time dim: its first day (groups: year, month)."""

CF_NUMBER = re.compile(r"^\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s+(\w+\s+since\s+\S.*?)\s*$")
"""A number with CF time units, ``7305 days since 1970-01-01`` (groups: number, units)."""

FREQ_UNITS = {
    **dict.fromkeys(("y", "Y", "YS", "A", "AS"), "YS"),
    "YE": "YE",
    **dict.fromkeys(("Q", "QS"), "QS"),
    "QE": "QE",
    **dict.fromkeys(("M", "MS"), "MS"),
    "ME": "ME",
    **dict.fromkeys(("d", "D"), "D"),
    **dict.fromkeys(("h", "H"), "h"),
    "min": "min",
    **dict.fromkeys(("s", "S"), "s"),
}
"""Units of a ``--grid`` time step, as xarray's date-range frequencies: years, quarters and months
start a period (``1Y`` = ``1YS``, ``1M`` = ``1MS``: the 1st of January or of each month), unless
``YE``/``QE``/``ME`` (period ends) are asked for."""


@dataclass(frozen=True)
class KernelSpec:
    """One ``--kernel DIMS=KERNEL``: the dims of a factor and its kernel."""

    dims: tuple[str, ...]
    kernel: Any
    """A :class:`xkron.Kernel` instance."""
    text: str
    """The option value as given (for messages)."""

    @property
    def key(self) -> str | tuple[str, ...]:
        """The key of :func:`xkron.fit`'s ``kernels`` mapping."""
        return self.dims[0] if len(self.dims) == 1 else self.dims


def parse_kernel(text: str) -> KernelSpec:
    """Parse ``DIMS=KERNEL``: ``time=Matern32``, ``latitude,longitude=ExpQuad(ls=2)``.

    ``DIMS`` is one dim or several separated by commas (one factor over their Cartesian
    product). ``KERNEL`` is a kernel name (case-insensitive: ``ExpQuad``, ``Matern12``,
    ``Matern32``, ``Matern52``, ``RatQuad``, ``Cosine``, ``Periodic``, ``Independent``, ``Linear``,
    ``Polynomial``, ``WhiteNoise``, ``SpectralMixture``), optionally with hyperparameters fixed to
    literal values: ``Periodic(period=365.25)``, ``ExpQuad(ls=[5, 10])`` (one per dim, in the order
    given), and combined inside the factor with ``+`` and ``*``:
    ``time=Periodic(period=365.25)*Matern52+ExpQuad`` (:mod:`xkron.spec.kernel_base`). Unset
    hyperparameters get xkron's default priors.

    Examples
    --------
    >>> spec = parse_kernel("latitude,longitude=expquad(ls=2)")
    >>> spec.key, spec.kernel
    (('latitude', 'longitude'), ExpQuad(ls=2))
    >>> parse_kernel("time=Matern33")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xkron.cli.errors.JobInputError: unknown kernel 'Matern33' in 'Matern33' (did you mean 'Matern32'?); kernels: ...
    """
    dims_text, sep, kernel_text = text.partition("=")
    if not sep or not dims_text.strip() or not kernel_text.strip():
        raise JobInputError(
            f"{text!r} is not DIMS=KERNEL: give e.g. time=Matern32 or latitude,longitude=ExpQuad(ls=2)", "--kernel"
        )
    dims = tuple(d.strip() for d in dims_text.split(","))
    if not all(dims):
        raise JobInputError(
            f"{text!r} has an empty dim name in {dims_text!r}; separate dims by single commas", "--kernel"
        )
    if len(set(dims)) != len(dims):
        raise JobInputError(f"{text!r} names a dim twice in {dims_text!r}", "--kernel")
    return KernelSpec(dims, _make_kernel(kernel_text.strip(), text), text)


def _make_kernel(spec: str, text: str):
    """The kernel of an expression such as ``Periodic(period=365.25)*Matern52+ExpQuad``."""
    from xkron.spec.kernel_registry import parse_kernel_expression

    try:
        return parse_kernel_expression(spec)
    except (TypeError, ValueError) as err:
        raise JobInputError(f"{err} (in --kernel {text!r})", "--kernel") from None


def parse_chunks(items: Sequence[str]) -> dict[str, int]:
    """Parse repeated ``dim=n`` into ``{dim: n}`` (``n`` a positive integer).

    Examples
    --------
    >>> parse_chunks(["time=10", "latitude=5"])
    {'time': 10, 'latitude': 5}
    """
    chunks: dict[str, int] = {}
    for item in items:
        dim, sep, size = item.partition("=")
        dim = dim.strip()
        try:
            n = int(size)
        except ValueError:
            n = 0
        if not sep or not dim or n < 1:
            raise JobInputError(f"{item!r} is not dim=n with a positive integer n, e.g. time=10", "--chunks")
        if dim in chunks:
            raise JobInputError(f"dim {dim!r} is chunked twice", "--chunks")
        chunks[dim] = n
    return chunks


@dataclass(frozen=True)
class GridSpec:
    """One ``--grid dim=start:stop:num`` (``num`` evenly spaced points) or, on time dims,
    ``dim=start:stop:freq`` (dates every ``freq`` from start to stop, e.g. ``1YS``)."""

    dim: str
    start: str
    stop: str
    num: int = 0
    freq: str | None = None
    """A date-range frequency of xarray (``"1YS"``, ``"6h"``); ``None`` when ``num`` is given."""

    @property
    def text(self) -> str:
        """The option's value as written (for messages)."""
        return f"{self.dim}={self.start}:{self.stop}:{self.freq or self.num}"


def parse_freq(text: str) -> str:
    """A ``--grid`` time step (``1y``, ``6h``, ``1MS``) as an xarray date-range frequency.

    Examples
    --------
    >>> parse_freq("1y"), parse_freq("3M"), parse_freq("6h"), parse_freq("1YE")
    ('1YS', '3MS', '6h', '1YE')
    >>> parse_freq("1m")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    xkron.cli.errors.JobInputError: '1m' is ambiguous: write 1M for months or 1min for minutes
    """
    match = re.fullmatch(r"\s*(\d*)\s*([A-Za-z]+)\s*", text)
    if match and match.group(2) == "m":
        raise JobInputError(
            f"{text!r} is ambiguous: write {match.group(1) or 1}M for months or {match.group(1) or 1}min for minutes",
            "--grid",
        )
    if match is None or match.group(2) not in FREQ_UNITS or match.group(1) in ("0", "00"):
        units = ", ".join(sorted(set(FREQ_UNITS)))
        raise JobInputError(
            f"{text!r} is not a number of points nor a time step such as 1Y, 1M, 1D, 6h (units: {units})", "--grid"
        )
    return f"{int(match.group(1) or 1)}{FREQ_UNITS[match.group(2)]}"


def parse_grid(text: str) -> GridSpec:
    """Parse ``dim=start:stop:num`` or ``dim=start:stop:step`` (a time step, time dims only).

    Start and stop are numbers, or on time dims dates: a year (``1990``), a month
    (``1990-06``), a date or date-time (``1990-06-15T06:00``), or a number with CF units
    (``7305 days since 1970-01-01``). The last field is a whole number of evenly spaced
    points, or a time step: a count and a unit of :data:`FREQ_UNITS` (``1Y``, ``1M``, ``1D``, ``6h``).

    Examples
    --------
    >>> parse_grid("latitude=10:30:41")
    GridSpec(dim='latitude', start='10', stop='30', num=41, freq=None)
    >>> parse_grid("time=2000-01-01:2000-12-31T12:00:12").stop
    '2000-12-31T12:00'
    >>> parse_grid("time=1990:2000:1y").freq
    '1YS'
    """
    dim, sep, rest = text.partition("=")
    usage = "e.g. latitude=10:30:41, time=1990:2000:1Y or time=2000-01-01:2000-12-31:1D"
    # Split from the right: ISO times (2000-01-01T12:00) contain colons themselves.
    parts = rest.rsplit(":", 1)
    last = parts[1].strip() if len(parts) == 2 else ""
    span = split_span(parts[0])
    if not sep or not dim.strip() or span is None or not last:
        raise JobInputError(f"{text!r} is not dim=start:stop:num (or :step on time dims), {usage}", "--grid")
    if last.isdigit():
        if int(last) < 1:
            raise JobInputError(f"{text!r}: the number of points must be at least 1, {usage}", "--grid")
        return GridSpec(dim.strip(), span[0], span[1], int(last))
    if last[0].isdigit() or last[0].isalpha():
        return GridSpec(dim.strip(), span[0], span[1], freq=parse_freq(last))
    raise JobInputError(f"{text!r} is not dim=start:stop:num (or :step on time dims), {usage}", "--grid")


def split_span(text: str, empty_ok: bool = False) -> tuple[str, str] | None:
    """``"a:b"`` into ``("a", "b")`` where a and b may be ISO times with colons of their own.

    ``empty_ok``: either side may be empty (an open-ended ``--sel`` slice, ``2000:``). ``None``
    unless exactly one colon splits the text into two values.

    Examples
    --------
    >>> split_span("2000-01-01T06:00:2000-01-02"), split_span("1990-06:"), split_span("1990-06:", True)
    (('2000-01-01T06:00', '2000-01-02'), None, ('1990-06', ''))
    """
    candidates = []
    for i, char in enumerate(text):
        if char != ":":
            continue
        start, stop = text[:i].strip(), text[i + 1 :].strip()
        ok = [_plain_value(v) or (empty_ok and not v) for v in (start, stop)]
        if all(ok) and (start or stop):
            candidates.append((start, stop))
    return candidates[0] if len(candidates) == 1 else None


def _plain_value(text: str) -> bool:
    """A number, an ISO date/time, a year-month or a CF time number (for splitting ``start:stop``)."""
    try:
        float(text)
        return True
    except ValueError:
        return bool(ISO_DATE.match(text) or PARTIAL_DATE.match(text) or CF_NUMBER.match(text))


def parse_quantiles(text: str) -> tuple[float, ...]:
    """Parse ``0.05,0.95`` into probabilities strictly between 0 and 1.

    Examples
    --------
    >>> parse_quantiles("0.05, 0.5,0.95")
    (0.05, 0.5, 0.95)
    """
    try:
        values = tuple(float(q) for q in text.split(","))
    except ValueError:
        values = ()
    if not values or any(not 0 < q < 1 for q in values):
        raise JobInputError(
            f"{text!r} is not a comma-separated list of probabilities in (0, 1), e.g. 0.05,0.95", "--quantiles"
        )
    return values
