"""The ``xkron`` command: ``demo``, ``info``, ``fit``, ``predict``, ``batch``; thin over the library."""
