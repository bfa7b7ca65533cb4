"""Inference: the fit's options checked and prepared into a problem, then MAP (scale-free
L-BFGS-B), NUTS (joint or collapsed) or ADVI through PyMC, and the batch runner."""
