"""The ``xkron`` command group: ``demo``, ``info``, ``fit``, ``predict``, ``batch``, ``plot``, ``validate``.

This module defines the group and adds the commands, each defined in its own module:
``demo`` in :mod:`xkron.cli.demo_command`, ``info`` in :mod:`xkron.cli.info`, ``plot`` in
:mod:`xkron.cli.plot_command`, ``validate`` in :mod:`xkron.cli.validate_command`, and the
commands on files in :mod:`xkron.cli.commands`. It is the console script's entry point
(``xkron = "xkron.cli.app:main"``) and that of ``python -m xkron``.

The modules of :mod:`xkron.cli` import one way, from the commands down:

* commands (click): ``app`` → ``commands``, ``demo_command``, ``info``, ``plot_command``,
  ``validate_command``; ``commands`` → ``options``;
* work (no printing, no exit): ``jobs`` (fit, batch, predict) and ``demo``;
* helpers: ``grids`` (``--grid``, ``--coords-from``), ``checks`` (data against options),
  ``report`` (results and summaries), ``info`` (a fit's summary), ``paths`` (outputs),
  ``select`` (``--sel``, ``--squeeze``), ``parsing`` (option values), ``files`` (NetCDF/zarr, dask);
* ``errors`` (:class:`~xkron.cli.errors.JobInputError`) at the bottom.
"""

from __future__ import annotations

import click

from xkron.cli.commands import batch, fit, predict
from xkron.cli.demo_command import demo
from xkron.cli.info import info
from xkron.cli.plot_command import plot
from xkron.cli.validate_command import validate

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="xkron", prog_name="xkron")
def main() -> None:
    """xkron: exact Kronecker-structured Gaussian processes on xarray grids.

    Run `xkron COMMAND --help` for the options of a command.
    """


main.add_command(demo)
main.add_command(info)
main.add_command(fit)
main.add_command(predict)
main.add_command(batch)
main.add_command(plot)
main.add_command(validate)
