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

    def _repr_html_(self) -> str:
        """The notebook display (:func:`xkron.results.display.fit_html`)."""
        from xkron.results.display import fit_html

        return fit_html(self)

    def plot(self, *, path=None, figsize=None):
        """Hyperparameter posteriors (or, for a MAP fit, each prior's density with the MAP marked) and the
        posterior mean against the data at the observed cells; see :func:`xkron.results.plots.fit_figure`.

        Parameters
        ----------
        path : path, optional
            Also write the figure there as PNG.
        figsize : (float, float), optional
            The figure's size in inches.

        Returns
        -------
        matplotlib.figure.Figure

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 5)
        >>> fit = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}).kron.fit(
        ...     {"a": xkron.ExpQuad(ls=0.5), "b": "ExpQuad"}, amplitude=1.0, noise=0.1, progressbar=False)
        >>> [ax.get_title() for ax in fit.plot().axes]
        ['ls_b', 'mean', 'fitted vs observed (25 cells)']
        """
        from xkron.results.plots import fit_figure

        return fit_figure(self, path=path, figsize=figsize)

    def loo(self):
        """Exact leave-one-out predictive mean, sd and log density of every observed cell, and their sum.

        For each observed cell ``i``, the predictive distribution of its value given every other
        observed cell, at the fit's hyperparameters, in closed form (Rasmussen & Williams 2006,
        eq. 5.12): with ``C`` the observed cells' covariance (signal and noise) and
        ``α = C⁻¹(y − μ)``, mean ``y_i − α_i / [C⁻¹]_ii`` and variance ``1 / [C⁻¹]_ii``. No refit:
        the exact Kronecker eigenbasis gives ``diag(C⁻¹)`` in ``O(N Σ n_i)`` on a complete grid with
        one noise, the dense solver's Cholesky factor on gappy grids or with per-cell noise (exact).
        Fits by the iterative solver get it exactly from the whole grid's eigenbasis, block-inverted on
        the missing cells (:func:`xkron.linalg.loo.schur_loo`, no CG), with one noise for every cell;
        their per-cell noise is refused (with the alternatives), as are latent fits, whose
        leave-one-out has no closed form (``az.loo(fit.posterior)`` serves NUTS fits of either kind).

        Returns
        -------
        xarray.Dataset
            ``mean``, ``sd`` (the predictive of the observation, its noise included) and
            ``log_density`` (``log p(y_i | y_{−i}, θ)``) on the data's dims and coords, NaN at
            unobserved cells; ``elpd_loo``, the sum of ``log_density`` over the ``n_loo`` observed
            cells, to compare fits of the same data (higher is better). Fits with posterior draws
            (NUTS) give them per draw, on ``(chain, draw)``.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 6)
        >>> da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)), coords={"a": x, "b": x}, dims=("a", "b"))
        >>> fit = da.kron.fit({"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)}, amplitude=1.0,
        ...                   noise=0.05, mean="zero", progressbar=False)
        >>> loo = fit.loo()
        >>> loo["mean"].dims, int(loo["n_loo"]), round(float(loo["elpd_loo"]), 2)
        (('a', 'b'), 36, 61.15)
        """
        from xkron.results.loo import fit_loo

        return fit_loo(self)

    def sample_prior(self, draws: int = 500, random_seed=None):
        """Draw the free hyperparameters from their priors into ``posterior``'s ``prior`` group (ArviZ).

        ``az.plot_dist`` or ``az.plot_prior_posterior`` then compare prior and posterior. A fit
        without a posterior (MAP, Laplace) gets one holding ``prior`` and ``observed_data``.

        Parameters
        ----------
        draws : int
            Number of prior draws (one chain).
        random_seed : int, optional
            Makes the draws reproducible.

        Returns
        -------
        xarray.Dataset
            The prior draws on ``(chain, draw)``, also in ``fit.posterior["prior"]``.
        """
        from xkron.results.arviz import sample_prior

        return sample_prior(self, draws, random_seed)
