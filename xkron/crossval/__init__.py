"""Cross-validation of a Kronecker GP against simple baselines: :func:`cross_validate`.

Held-out cells chosen as gaps happen (random cells, space-time blocks, transplanted clouds:
:mod:`~xkron.crossval.schemes`), predicted by the GP and by linear interpolation and climatology
(:mod:`~xkron.crossval.methods`), scored by RMSE, MAE, CRPS, interval coverage and PIT
(:mod:`~xkron.crossval.scores`), and shown by a reliability diagram (:mod:`~xkron.crossval.plots`).

The names below are imported on first use (PEP 562): ``xkron.crossval.schemes`` (the CLI's
choices) loads without PyMC.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xkron.crossval.result import CrossValidation
    from xkron.crossval.run import LeakError, cross_validate

_WHERE = {"CrossValidation": "result", "LeakError": "run", "cross_validate": "run"}

__all__ = ["CrossValidation", "LeakError", "cross_validate"]


def __getattr__(name: str):
    if name in _WHERE:
        import importlib

        value = getattr(importlib.import_module(f"xkron.crossval.{_WHERE[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xkron.crossval' has no attribute {name!r}")
