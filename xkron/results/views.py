"""How a fit shows itself and is checked: text and HTML summaries, plots, leave-one-out.

:class:`FitViews` is a base of :class:`xkron.KronFit`; each method delegates to the module that
does the work (:mod:`xkron.results.summary`, :mod:`xkron.results.display`,
:mod:`xkron.results.plots`, :mod:`xkron.results.loo`), so that ``fit.py`` keeps to fitting,
predicting and sampling.
"""

from __future__ import annotations

from xkron.results.summary import fit_repr

__all__ = ["FitViews"]


class FitViews:
    """Summaries, plots and leave-one-out of a fit (a base of :class:`xkron.KronFit`)."""

    def __repr__(self) -> str:
        return fit_repr(self)
