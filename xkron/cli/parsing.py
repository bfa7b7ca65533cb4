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
    "ISO_DATE",
    "GridSpec",
    "KernelSpec",
    "parse_chunks",
    "parse_grid",
    "parse_kernel",
    "parse_quantiles",
]

ISO_DATE = re.compile(r"^\s*(-?\d{1,4})-(\d{1,2})-(\d{1,2})(?:[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d*)?)?)?\s*$")
"""An ISO date or date-time as ``--grid`` takes it; the groups are year, month, day, hour, minute, second."""


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
    """One ``--grid dim=start:stop:num``: ``num`` evenly spaced points from start to stop."""

    dim: str
    start: str
    stop: str
    num: int


def parse_grid(text: str) -> GridSpec:
    """Parse ``dim=start:stop:num``; start and stop are numbers or (time dims) ISO dates.

    Examples
    --------
    >>> parse_grid("latitude=10:30:41")
    GridSpec(dim='latitude', start='10', stop='30', num=41)
    >>> parse_grid("time=2000-01-01:2000-12-31T12:00:12").stop
    '2000-12-31T12:00'
    """
    dim, sep, rest = text.partition("=")
    usage = "e.g. latitude=10:30:41 or time=2000-01-01:2010-01-01:11"
    # Split from the right: ISO times (2000-01-01T12:00) contain colons themselves.
    parts = rest.rsplit(":", 1)
    num_text = parts[1] if len(parts) == 2 else ""
    span = _split_span(parts[0])
    try:
        num = int(num_text)
    except ValueError:
        num = 0
    if not sep or not dim.strip() or span is None or num < 1:
        raise JobInputError(f"{text!r} is not dim=start:stop:num with num a positive integer, {usage}", "--grid")
    return GridSpec(dim.strip(), span[0], span[1], num)


def _split_span(text: str) -> tuple[str, str] | None:
    """``"a:b"`` into ``("a", "b")`` where a and b may be ISO times with colons of their own."""
    candidates = []
    for i, char in enumerate(text):
        if char != ":":
            continue
        start, stop = text[:i].strip(), text[i + 1 :].strip()
        if start and stop and _plain_value(start) and _plain_value(stop):
            candidates.append((start, stop))
    return candidates[0] if len(candidates) == 1 else None


def _plain_value(text: str) -> bool:
    """A number or an ISO date/time (for splitting ``start:stop``)."""
    try:
        float(text)
        return True
    except ValueError:
        return bool(ISO_DATE.match(text))


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
