"""Labelled results: :class:`~xkron.results.fit.KronFit` and
:class:`~xkron.results.batch.BatchFit`, their predictions and sample fields as xarray, and
opening saved fits."""
