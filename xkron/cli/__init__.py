"""The ``xkron`` command (:mod:`xkron.cli.app`): demo, info, fit, predict, batch; thin over the library."""
