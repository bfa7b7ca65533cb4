"""The result of :func:`xkron.cross_validate`: scores per fold and overall, held-out predictions.

:class:`CrossValidation` holds labelled data only (no fit), so it is cheap to keep, print and
save: ``to_netcdf`` writes one file whose root group is the overall summary (what
``xr.open_dataset`` shows) with the per-fold scores and the held-out predictions as groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import xarray as xr

from xkron.io.atomic import atomic_write

__all__ = ["CrossValidation"]


@dataclass(frozen=True, repr=False)
class CrossValidation:
    """Held-out scores of a GP and its baselines (returned by :func:`xkron.cross_validate`).

    Attributes
    ----------
    summary : xarray.Dataset
        Scores over all folds on ``model`` (``"gp"``, ``"linear"``, ``"climatology"``): ``n``,
        ``rmse``, ``mae``, ``crps`` (data units), ``coverage`` on ``level``, ``pit`` on
        ``pit_bin``. Computed on the pooled held-out cells, which weights every fold by its
        number of cells (the RMSE pools squared errors). Its attributes say how it was made.
    scores : xarray.Dataset
        The same scores per fold, on ``("fold", "model", ...)``.
    predictions : xarray.Dataset
        Every held-out cell on a ``cell`` dim: its coordinates and ``fold``, the held-out value
        ``truth``, and each model's predictive ``mean`` and ``sd`` on ``("model", "cell")`` (sd
        NaN for models without an uncertainty): for your own plots and scores.
    held_out : xarray.DataArray
        True at the cells each fold held out, on ``("fold", *data dims)``; with the clouds scheme
        a ``donor`` coordinate along time names each target's donor time step.
    """

    summary: xr.Dataset
    scores: xr.Dataset
    predictions: xr.Dataset
    held_out: xr.DataArray

    def table(self):
        """The summary as a :class:`pandas.DataFrame`, one row per model (coverage in columns by level).

        Examples
        --------
        >>> s = xr.Dataset({"n": ("model", [4]), "rmse": ("model", [0.5]), "mae": ("model", [0.4]),
        ...                 "crps": ("model", [0.3]), "coverage": (("model", "level"), [[0.5, 0.75, 1.0]])},
        ...                coords={"model": ["gp"], "level": [0.5, 0.9, 0.95]})
        >>> CrossValidation(s, s, s, xr.DataArray(0)).table().columns.tolist()
        ['n', 'rmse', 'mae', 'crps', 'cover 50%', 'cover 90%', 'cover 95%']
        """
        import pandas as pd

        s = self.summary
        columns = {name: s[name].values for name in ("n", "rmse", "mae", "crps")}
        for level in s["level"].values:
            columns[f"cover {level:.0%}"] = s["coverage"].sel(level=level).values
        return pd.DataFrame(columns, index=pd.Index(s["model"].values, name="model"))

    def __repr__(self) -> str:
        attrs = self.summary.attrs
        cells = int(self.predictions.sizes.get("cell", 0))
        head = (
            f"{attrs.get('title', 'xkron cross-validation')}: {cells} held-out cells;\n"
            f"hyperparameters {attrs.get('hyperparameters')}"
        )
        units = self.summary["rmse"].attrs.get("units")
        body = self.table().to_string(float_format=lambda v: f"{v:.3f}", na_rep="-")
        notes = [f"  {note}" for note in str(attrs.get("notes", "")).split("; ") if note]
        return "\n".join([head, *([f"rmse, mae, crps in {units}"] if units else []), body, *notes])

    def to_datatree(self) -> xr.DataTree:
        """A DataTree: the summary at the root, groups ``folds`` (per-fold scores) and ``predictions``."""
        return xr.DataTree.from_dict({"/": self.summary, "/folds": self.scores, "/predictions": self.predictions})

    def to_netcdf(self, path: str | Path) -> None:
        """Write :meth:`to_datatree` to a NetCDF file, atomically (a failed write leaves ``path`` as it was)."""
        tree = self.to_datatree()
        with atomic_write(Path(path)) as tmp:
            tree.to_netcdf(tmp)

    def plot(self, models=None):
        """The reliability diagram and PIT histograms (:func:`xkron.crossval.plots.reliability`)."""
        from xkron.crossval.plots import reliability

        return reliability(self, models=models)
