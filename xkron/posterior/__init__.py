"""Array-level posteriors at fixed hyperparameters (no xarray): conditional moments, exact
sample fields by Matheron's rule, and moments of mixtures over draws."""
