"""PyMC models: the PyTensor Ops of the exact marginal likelihood and the graph builders
(marginal and whitened latent), from a :class:`~xkron.spec.modelspec.ModelSpec` and arrays."""
