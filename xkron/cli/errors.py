"""The error of a bad command-line input, and how the commands report errors through click.

Every module of :mod:`xkron.cli` raises :class:`JobInputError` for an input it refuses, naming
the option at fault; only the click layer (:mod:`xkron.cli.options`, the commands) turns it
into a click error, so the library functions stay usable without click.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["JobInputError", "click_callback", "to_click"]


class JobInputError(ValueError):
    """A bad command-line input, found before any fitting.

    ``option`` names the option at fault (``"--kernel"``, ...); the commands turn the error
    into a ``click.BadParameter`` (exit code 2).
    """

    def __init__(self, message: str, option: str | None = None):
        super().__init__(message)
        self.option = option


def to_click(err: Exception, ctx: click.Context) -> click.ClickException:
    """The click error for ``err``: a usage error (exit code 2) for a :class:`JobInputError`, else exit code 1."""
    if isinstance(err, JobInputError):
        if err.option is None:
            return click.UsageError(str(err), ctx=ctx)
        return click.BadParameter(str(err), ctx=ctx, param_hint=f"'{err.option}'")
    return click.ClickException(str(err))


def click_callback(parse: Callable[[Any], Any]) -> Callable[[click.Context, click.Parameter, Any], Any]:
    """A click option callback: the value parsed by ``parse``, a :class:`JobInputError` becoming ``BadParameter``."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        try:
            return parse(value)
        except JobInputError as err:
            raise click.BadParameter(str(err), ctx=ctx, param=param) from None

    return callback
