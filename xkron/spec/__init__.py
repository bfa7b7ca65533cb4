"""Specifications: what a model is, before any data or algebra.

Kernels, likelihoods, priors (and their supports), coordinate and time encodings, grid
factors, input checks, and :class:`~xkron.spec.modelspec.ModelSpec`. Imports nothing else of
xkron (the bottom layer); never PyMC at import time.
"""
