"""The warnings and errors xkron raises of its own, in one place every layer can import.

Everything else is a ``ValueError`` or ``TypeError`` saying what is wrong, where, and how to
fix it, raised before any compute.
"""

from __future__ import annotations

import os

__all__ = ["BatchError", "ConvergenceWarning", "CostError", "CostWarning", "ExtrapolationWarning", "NotAFitError"]


class ConvergenceWarning(UserWarning):
    """The MAP optimiser did not report convergence, or ADVI's loss was still falling."""


class CostWarning(ResourceWarning):
    """A request is estimated to take long or to need much of the available memory."""


class ExtrapolationWarning(UserWarning):
    """A prediction lies many lengthscales from every training input: there it is the prior's mean and sd."""


class CostError(MemoryError):
    """A request is estimated to need more memory than is available; nothing was computed."""


class BatchError(RuntimeError):
    """A slice of a batch fit failed (``errors="raise"``, the default)."""


class NotAFitError(ValueError):
    """A file that :func:`xkron.open_fit` cannot read as an xkron fit: ``"PATH is not an xkron fit (why)"``."""

    def __init__(self, path, reason: str):
        super().__init__(f"{os.fspath(path)} is not an xkron fit ({reason})")
        self.path = path
