"""The ``xkron`` command group: ``demo``, ``info``, ``fit``, ``predict``, ``batch``.

This module defines the group and adds the commands, each defined in its own module:
``demo`` in :mod:`xkron.cli.demo_command`, ``info`` in :mod:`xkron.cli.info`, and the
commands on files in :mod:`xkron.cli.commands`. It is the console script's entry point
(``xkron = "xkron.cli.app:main"``) and that of ``python -m xkron``.

The modules of :mod:`xkron.cli` import one way, from the commands down: ``app`` →
``commands``/``demo_command`` → ``options`` → ``jobs``/``demo`` → ``report``, ``grids``,
``checks`` → ``info``, ``paths``, ``select``, ``parsing``, ``files`` → ``errors``.
"""

from __future__ import annotations

import click

from xkron.cli.commands import batch, fit, predict
from xkron.cli.demo_command import demo
from xkron.cli.info import describe_fit, info

__all__ = ["describe_fit", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xkron", prog_name="xkron")
def main() -> None:
    """xkron: exact Kronecker-structured Gaussian processes on xarray grids.

    Run `xkron COMMAND --help` for the options of a command.
    """


for _command in (demo, info, fit, predict, batch):
    main.add_command(_command)
