"""The result of a fit: hyperparameters, posterior, model, and labelled predictions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

import numpy as np
import xarray as xr

from xkron.linalg.lazy import is_dask
from xkron.posterior.laplace import mixture_probes
from xkron.results.arviz import observed_data
from xkron.results.between import between_variables
from xkron.results.conditioned import DrawPosteriors, conditioned_on, draw_values
from xkron.results.labels import labelled_params
from xkron.results.predict import apply_mask, check_predict_options, output_mask, predict_moments
from xkron.results.views import FitViews
from xkron.settings import POSTERIOR_CACHE_BYTES
from xkron.spec.coords import CoordEncoding
from xkron.spec.grid import restrict
from xkron.spec.modelspec import ModelSpec

__all__ = ["KronFit"]


class KronFit(FitViews):
    """A fitted Kronecker GP. Made by :func:`xkron.fit` / ``da.kron.fit``; do not build directly.

    Attributes
    ----------
    data : xarray.DataArray
        The training data, as given.
    mask : xarray.DataArray or None
        The ``mask=`` given to the fit (True = observed), aligned with ``data``; cells it
        masks are unobserved, like NaN cells.
    params : xarray.Dataset
        Hyperparameters: scalars for MAP, ``(chain, draw)`` for NUTS; fixed values as
        scalars. Each variable's attrs give its units and prior.
    posterior : xarray.DataTree or None
        ArviZ-format posterior of a NUTS, ADVI or INLA fit (``None`` for MAP): ``posterior``,
        ``sample_stats``, ``observed_data`` on the data's dims and a pointwise ``log_likelihood``
        (:mod:`xkron.results.arviz`); :meth:`sample_prior` adds ``prior``.
    optimizer : dict or None
        Convergence report of a MAP fit.
    spec : xkron.spec.modelspec.ModelSpec
        Factors and priors.
    method : str
        ``"map"``, ``"laplace"``, ``"inla"``, ``"nuts"`` or ``"advi"``.
    """

    _pending = None
    """Set by :meth:`condition` on dask-backed data that may have gaps: reads them and returns the
    final data, spec and mask (:class:`xkron.results.conditioned.Conditioned`); see :meth:`_resolve`."""

    def __init__(
        self,
        data: xr.DataArray,
        spec: ModelSpec,
        encodings: Mapping[str, CoordEncoding],
        params: xr.Dataset,
        method: str,
        posterior: xr.DataTree | None = None,
        optimizer: dict | None = None,
        model=None,
        mask: xr.DataArray | None = None,
    ):
        self.data = data
        self.mask = mask
        self.spec = spec
        self.encodings = dict(encodings)
        self.params = params
        self.method = method
        self.posterior = posterior
        self.optimizer = optimizer
        if model is not None:
            self.__dict__["model"] = model

    @classmethod
    def from_parts(cls, data, spec, encodings, values, method, **kwargs) -> KronFit:
        """Assemble the ``params`` Dataset (with units and priors) from fitted ``values``, and label the
        posterior's ArviZ groups with the data's dims (:func:`xkron.results.arviz.labelled_posterior`)."""
        from xkron.results.arviz import labelled_posterior

        params = labelled_params(values, spec, encodings, data.attrs.get("units", ""), method)
        fit = cls(data, spec, encodings, params, method, **kwargs)
        if fit.posterior is not None:
            fit.posterior = labelled_posterior(fit)
        return fit

    @cached_property
    def model(self):
        """The PyMC model (rebuilt from the data and spec after :func:`xkron.open_fit`)."""
        from xkron.models.build import build_model  # PyMC: imported when a model is asked for

        tensor = self._data_tensor  # first: it may settle the spec (see _resolve)
        return build_model(tensor, self.spec, laplace=self.method in ("laplace", "inla"))

    def release_caches(self) -> None:
        """Drop the PyMC model and the conditioned posteriors (both rebuilt on demand): a fit that
        travels between processes (a batch slice from a dask worker) then carries only its data."""
        self.__dict__.pop("model", None)
        self.__dict__.pop("_posterior_cache", None)

    @property
    def dims(self) -> tuple[str, ...]:
        """Grid dims in factor order."""
        return self.spec.dims

    def _resolve(self) -> None:
        """Read the dask-backed gappy data that :meth:`condition` left lazy: they decide the solver and
        the observed grid (``spec``), and the posterior needs their values. Runs once, when
        ``predict``, ``sample``, ``model`` or ``to_netcdf`` first needs them; ``data`` is then in memory."""
        if self._pending is None:
            return
        done, self._pending = self._pending(), None
        self.data, self.spec, self.mask = done.data, done.spec, done.mask

    @cached_property
    def _data_tensor(self) -> np.ndarray:
        """The data the model sees: over the grid (latent), or over the observed grid (marginal)."""
        self._resolve()
        data = self.data.transpose(*self.dims)
        if is_dask(data.data):
            # Lazy: a complete grid conditioned without computing (predict and sample stay dask).
            return data.data.astype(float)
        y = np.asarray(data.values, dtype=float)
        if self.mask is not None:
            y = np.where(self.mask.transpose(*self.dims).values, y, np.nan)
        return y if self.spec.latent else restrict(y, self.spec.factors)

    @property
    def draw_weights(self) -> np.ndarray | None:
        """Weights of the posterior draws in ``(chain, draw)`` order (INLA's design points), or ``None``
        where every draw weighs the same (NUTS, ADVI) or there is one (MAP, Laplace)."""
        if self.posterior is None or "sample_stats" not in self.posterior:
            return None
        stats = self.posterior["sample_stats"]
        if "weight" not in stats:
            return None
        return np.asarray(stats["weight"].transpose("chain", "draw").values, dtype=float).ravel()

    @property
    def _posteriors(self) -> Sequence:
        """The GP conditioned at each draw (:class:`xkron.results.conditioned.DrawPosteriors`); kept in
        memory while that costs under :data:`xkron.settings.POSTERIOR_CACHE_BYTES`."""
        if "_posterior_cache" in self.__dict__:
            return self.__dict__["_posterior_cache"]
        draws = draw_values(self.params)
        latent, laplace = None, self.method in ("laplace", "inla")
        if self.spec.latent and not laplace:
            v = self.posterior["posterior"]["v"].stack(sample=("chain", "draw")).transpose("sample", ...)
            latent = np.asarray(v.values)
        tensor = self._data_tensor  # first: it may settle the spec (see _resolve)
        posteriors = DrawPosteriors(tensor, self.spec, draws, latent, laplace, weights=self.draw_weights)
        # Laplace: its probes and draws (most INLA points take the pooled count)
        per_cell = 16 + (13 * mixture_probes(posteriors.points, pooled=True) if laplace else 0)
        if tensor.size * per_cell * len(draws) <= POSTERIOR_CACHE_BYTES:
            posteriors = posteriors.condition_all()
            self.__dict__["_posterior_cache"] = posteriors
        return posteriors

    def predict(
        self,
        coords: Mapping | xr.Dataset | None = None,
        /,
        *,
        noise: bool = False,
        per_draw: bool = False,
        scale: str = "latent",
        quantiles: Sequence[float] = (),
        mask: xr.DataArray | bool | None = None,
        components: bool | str | None = None,
        **coords_kwargs,
    ) -> xr.Dataset:
        """Posterior mean and sd of the latent field (or of new data) at new coordinates.

        Exact and Kronecker-aware: the cost is ``O(N Σ n_i + M Σ m_i)`` for an M-cell
        output grid, and no N×M matrix is ever formed. A factor over several dims, such as
        ``("latitude", "longitude")``, has as many inputs as the product of their lengths, and
        its test-by-train cross-covariance as many rows as new points in those dims. Fits with
        posterior draws condition the GP at every draw. A request estimated to take minutes or
        much of the available memory warns (:class:`xkron.CostWarning`) before any work, one
        larger than the available memory is refused (:class:`xkron.CostError`); dask-backed
        coordinates compute the result chunk by chunk (:mod:`xkron.linalg.cost`).

        Parameters
        ----------
        coords : mapping or Dataset, optional
            New coordinates by dim (also as keyword arguments). Dims not given keep the
            training coordinates. A 1-D array (or a DataArray along its own dim) gives a new
            grid along that dim; DataArrays that share another dim give scattered points
            along it (as in ``DataArray.interp`` with vectorised indexers): interpolation or
            extrapolation. Dask-backed DataArrays give lazy results, chunked alike.
        noise : bool
            Include the observation noise: the sd is that of a new observation (adds
            ``σ²`` to the variance).
            Gaussian likelihood only; for other likelihoods draw new observations with
            :meth:`sample` (``observed=True``).
        per_draw : bool
            Fits with posterior draws (NUTS, ADVI): return per-draw moments on
            ``(chain, draw)`` instead of mixing them (law of total variance).
        scale : {"latent", "response"}
            ``"latent"``: the field ``f`` on the link scale. ``"response"``: the inverse link
            ``g⁻¹(f)`` (the rate per unit exposure for log links, the probability for logit
            links), with its mean and sd exact per draw (log-normal moments, or 32-point
            Gauss-Hermite quadrature for the logit) and then mixed over draws.
        quantiles : sequence of float
            Also return these quantiles (in (0, 1)) as ``quantiles`` on a ``quantile`` dim:
            exact quantiles of the mixture over posterior draws (root finding on its CDF),
            mapped through ``g⁻¹`` for ``scale="response"``.
        mask : xarray.DataArray of bool, or True, optional
            Set the outputs to NaN where the mask is False, e.g. on land so that a gap-filled
            ocean field stays NaN there; on some or all of the output's dims, with the output's
            coordinates. ``True`` re-applies the fit's own ``mask=`` (gap-filling its NaN cells,
            not the masked ones). Without it every cell is predicted.
        components : True or str, optional
            Also return ``components``: the posterior mean of each additive part of a factor whose
            kernel is a sum (a dim of that factor; ``True`` for the only such factor), on a
            ``component`` dim labelled by the parts' expressions in ``component_name``
            (``.sel(component_name=...)``), e.g. the seasonal cycle and the anomalies of
            ``xkron.seasonal_kernel()``. Exact (linear in the data) on every solver; the parts add
            up to ``mean`` less the constant mean. Latent scale only.

        Returns
        -------
        xarray.Dataset
            ``mean`` and ``sd`` (and ``quantiles``) on the requested coords, dims in the data's
            order, with CF attributes (units and ``long_name`` from the data).

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 6)
        >>> da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)), coords={"a": x, "b": x},
        ...                   dims=("a", "b"), attrs={"units": "K"})
        >>> result = da.kron.fit({"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)},
        ...                      amplitude=1.0, noise=0.01, mean="zero", progressbar=False)
        >>> result.predict(a=np.linspace(0, 1, 11)).sizes
        Frozen({'a': 11, 'b': 6})
        >>> pts = xr.Dataset({"a": ("point", [0.1, 0.5]), "b": ("point", [0.2, 0.9])})
        >>> result.predict(pts, noise=True)["sd"].dims
        ('point',)
        """
        self._resolve()
        request = dict(_coords_mapping(coords, self.dims))
        request.update(coords_kwargs)
        unknown = set(request) - set(self.dims)
        if unknown:
            raise ValueError(f"cannot predict along {sorted(unknown)}: the fit's dims are {self.dims}")
        quantiles = check_predict_options(self, noise, per_draw, scale, quantiles, components)
        mask = output_mask(self, mask)
        result = predict_moments(self, request, noise=noise, per_draw=per_draw, scale=scale, quantiles=quantiles,
                                 components=components)  # fmt: skip
        return result if mask is None else apply_mask(result, mask)

    def sample(
        self,
        n: int | None = None,
        coords: Mapping | xr.Dataset | None = None,
        /,
        *,
        observed: bool = False,
        random_seed: int | np.random.Generator | None = None,
        progressbar: bool = True,
        **coords_kwargs,
    ) -> xr.Dataset:
        """Exact joint posterior sample fields of ``f`` (and of new data) on a grid.

        Matheron's rule with a Kronecker prior draw on the per-dim union of the training and
        the new coordinates (:mod:`xkron.posterior.fields`): every field is an exact draw from the
        joint posterior over the whole grid, and no N×N or N×M matrix is formed.

        Cost: for every posterior draw used, each factor's distinct training and new inputs are
        eigendecomposed together (``u³`` time, ``u²`` memory for ``u`` of them): cheap for a 1-D
        factor. A factor over several dims on a new grid has ``u`` = its training inputs plus the
        product of the new lengths (a ``("latitude", "longitude")`` factor on a new 72 × 144 grid:
        over 10,000). Above :data:`~xkron.settings.SAMPLE_EXACT_UNION` (3,000) inputs the largest
        such factor of Gaussian data (and of Laplace and INLA fits) is *anchored*
        (:mod:`xkron.posterior.anchored`): the training inputs and a spread of the new ones, 3,000
        in all, are drawn exactly and the other new inputs conditioned on them. Every cell's
        marginal posterior stays exact; covariances between two new inputs are off by at most the
        largest residual share, reported in the result's ``prior_draw`` attribute (0.0002 on the
        72 × 144 grid above, drawn in seconds instead of minutes). Requests estimated to be slow
        warn (:class:`xkron.CostWarning`) before any work, and ones larger than the available
        memory are refused (:class:`xkron.CostError`).

        Parameters
        ----------
        n : int, optional
            MAP fits: the number of fields (default 1), on a ``sample`` dim. Fits with
            posterior draws: one field per posterior draw on ``(chain, draw)``, kept
            one-to-one with the draws of ``posterior``; ``n`` thins to ``n`` evenly spaced
            draws per chain.
        coords : mapping or Dataset, optional
            New 1-D coordinates by dim (also as keyword arguments); other dims keep the
            training coordinates. Sample fields are joint draws on a grid: for scattered
            points use :meth:`predict`.
        observed : bool
            Also draw new observations ``y`` from the likelihood given each field. Exposure
            (Poisson, negative binomial) is the fit's on the training grid and 1 elsewhere;
            binomial trials are known only on the training grid.
        random_seed : int or numpy.random.Generator, optional
            Makes the draws reproducible.
        progressbar : bool
            Show fields done and time elapsed on stderr while a long call runs (after 2 s; no
            remaining time is guessed). ``False`` prints nothing.

        Returns
        -------
        xarray.Dataset
            ``f`` (and ``y``) with dims ``(sample | chain, draw, *data dims)``.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 6)
        >>> da = xr.DataArray(np.outer(np.sin(3 * x), np.cos(2 * x)), coords={"a": x, "b": x}, dims=("a", "b"))
        >>> result = da.kron.fit({"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)},
        ...                      amplitude=1.0, noise=0.01, mean="zero", progressbar=False)
        >>> result.sample(3, a=np.linspace(0, 2, 9), random_seed=0)["f"].sizes
        Frozen({'sample': 3, 'a': 9, 'b': 6})
        """
        from xkron.results.samples import sample_fields

        self._resolve()
        request = dict(_coords_mapping(coords, self.dims))
        request.update(coords_kwargs)
        unknown = set(request) - set(self.dims)
        if unknown:
            raise ValueError(f"cannot sample along {sorted(unknown)}: the fit's dims are {self.dims}")
        return sample_fields(self, request, n, observed, np.random.default_rng(random_seed), progressbar)

    def condition(
        self,
        data: xr.DataArray,
        *,
        mask: xr.DataArray | None = None,
        noise_sd=None,
        gaps: bool | None = None,
        likelihood=None,
    ) -> KronFit:
        """The same hyperparameters, conditioned on other data on the same dims.

        The use: fit the hyperparameters on a subsample (``fit(..., subsample={"time": 4})``
        does both steps) or a window, then condition on the whole field. Lengthscales are in
        coordinate units, so they carry over to any resolution. Gaussian marginal fits, and
        latent fits by ``method="laplace"`` or ``"inla"`` (their posterior of ``f`` is the
        Laplace approximation on the new data, at each design point for INLA, with the same
        weights); NUTS and ADVI fits keep their own draws of the field and are refused.

        NaN cells (and cells that ``mask`` hides) are unobserved, as in :func:`xkron.fit`: the
        posterior conditions on every observed cell. The solver: the exact Kronecker one where
        the grid of observed inputs is complete with equal noise; else the fit's iterative
        solver, with its ``solver_options``, if it had one; else dense up to
        :data:`xkron.settings.DENSE_MAX_CELLS` observed cells, iterative above.

        A dask-backed ``data`` is never computed here. Without ``mask``, per-cell ``noise_sd``
        or ``gaps=True`` it is taken as complete and stays lazy: ``predict()`` and ``sample()``
        build chunked dask graphs that stream with memory bounded by the chunks
        (:mod:`xkron.linalg.lazy`), and a NaN cell is an error as its chunk computes. Otherwise
        the observed cells decide the solver, so the values are read (one ``dask.compute`` of
        the data, mask and noise) when ``predict()``, ``sample()``, ``model`` or ``to_netcdf()``
        first needs them; ``spec.solver`` is settled then, and ``data`` is in memory from then on.

        Parameters
        ----------
        data : xarray.DataArray
            The grid to condition on, on the fit's dims (any coordinates).
        mask : xarray.DataArray of bool, optional
            True where a cell is observed, as ``fit(mask=...)``, aligned with ``data``; cells it
            hides count as missing. ``predict(mask=True)`` re-applies it.
        noise_sd : xarray.DataArray or float, optional
            The known per-cell noise sd on ``data``'s grid, for fits made with ``noise_sd``
            (refused otherwise). Default: the fit's, where it is one value for every cell; a
            fit whose known noise differs between cells needs it.
        gaps : bool, optional
            For dask-backed ``data`` without ``mask`` or per-cell noise: ``True`` when it has NaN
            cells (read into memory when first needed, as above). ``False`` requires a complete
            grid also of numpy data. Default: gaps are found in numpy data, and not assumed in
            dask data.
        likelihood : xkron.Likelihood, optional
            Latent fits: the fit's family with its per-cell data on the new grid (e.g.
            ``xkron.Binomial(trials=n)``); needed where the fit's exposure or trials differ
            between cells. Its parameters are the fit's, whatever this one says.

        Examples
        --------
        >>> import numpy as np, xarray as xr, xkron
        >>> x = np.linspace(0, 1, 40)
        >>> da = xr.DataArray(np.sin(6 * x)[:, None] * np.cos(4 * x)[None, :], coords={"a": x, "b": x})
        >>> coarse = da.isel(a=slice(None, None, 4)).kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, progressbar=False)
        >>> smooth = coarse.condition(da.chunk(10)).predict()
        >>> smooth["mean"].chunks
        ((10, 10, 10, 10), (10, 10, 10, 10))
        >>> noisy = da.isel(a=slice(None, None, 4)).kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.01,
        ...                                                  progressbar=False)
        >>> gappy = noisy.condition(da.where(da.a + da.b > 0.3))
        >>> str(gappy.spec.solver), bool(gappy.predict()["mean"].notnull().all())
        ('dense', True)
        """
        if self.spec.latent and self.method not in ("laplace", "inla"):
            raise ValueError(
                f"condition() applies to latent fits by method='laplace' or 'inla', not {self.method!r}: its draws "
                "of the field belong to the data it was fitted on (fit the new data, or fit by Laplace)"
            )
        done = conditioned_on(self.spec, self.encodings, data, mask=mask, noise_sd=noise_sd, gaps=gaps,
                              likelihood=likelihood)  # fmt: skip
        posterior = self.posterior if self.spec.latent else None  # INLA's design weights
        if posterior is not None:  # the old data's groups go: they belong to the data fitted
            posterior = posterior.copy()
            for group in ("observed_data", "log_likelihood"):
                if group in posterior.children:
                    del posterior[group]
        fit = KronFit(done.data, done.spec, self.encodings, self.params, self.method, posterior=posterior,
                      optimizer=self.optimizer, mask=done.mask)  # fmt: skip
        if posterior is not None:
            posterior["observed_data"] = xr.DataTree(observed_data(fit))  # lazy for dask data
        fit._pending = done.pending
        return fit

    def between(self, dim: str) -> xr.Dataset:
        """Covariance ``B`` and correlation between the labels of a ``Coregion`` factor's ``dim``, labelled.

        For fits with posterior draws, the posterior means (and ``correlation_sd``).
        """
        return between_variables(self, dim)

    def to_netcdf(self, path, *, command: str | None = None, **kwargs) -> None:
        """Write the fit (data, coords, kernels, priors, posterior, attrs) to NetCDF, atomically.

        :func:`xkron.open_fit` reads it back; the reloaded fit predicts bit-identically. ``command``:
        the command line that made the fit, recorded in ``history`` (absolute paths cut to file names).
        """
        from xkron.io.netcdf import write_fit

        self._resolve()
        write_fit(self, path, command=command, **kwargs)


def _coords_mapping(coords, dims) -> Mapping:
    if coords is None:
        return {}
    if isinstance(coords, xr.Dataset | xr.Coordinates):
        return {d: coords[d] for d in dims if d in coords.variables}
    if isinstance(coords, Mapping):
        return coords
    raise TypeError(f"coords must be a mapping or an xarray.Dataset, not {type(coords).__name__}")
