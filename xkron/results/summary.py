"""The text summary of a fit (``repr(fit)``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["fit_repr"]


def fit_repr(fit) -> str:
    """The text of ``repr(fit)``: grid, kernels, parameters (INLA: weighted posterior means), optimiser and solver."""
    kernels = ", ".join(f"{'×'.join(f.dims)}: {f.kernel.name}" for f in fit.spec.factors)
    shape = " × ".join(f"{d}: {n}" for d, n in fit.data.sizes.items())
    model = f"{fit.spec.likelihood.name}, {'latent' if fit.spec.latent else 'marginal'}"
    lines = [f"<xkron.KronFit ({fit.method}; {model})>", f"  grid:    {shape}", f"  kernels: {kernels}"]
    if "chain" not in fit.params.dims:
        values = ", ".join(f"{k}={float(v):.4g}" for k, v in fit.params.items())
        lines.append(f"  params:  {values}")
    elif fit.draw_weights is not None:  # INLA: the weighted posterior means over the design
        means = fit.params.weighted(fit.posterior["sample_stats"]["weight"]).mean(("chain", "draw"))
        values = ", ".join(f"{k}={float(v):.4g}" for k, v in means.items())
        lines.append(f"  params:  {values} (posterior means)")
    report = fit.optimizer
    if report is not None and "loss" in report:  # ADVI (xkron.inference.run)
        settled = f"after {report['n']} iterations, settled={report['success']}"
        lines.append(f"  ADVI:    loss={report['loss']:.6g} {settled}")
    elif report is not None:
        lines.append(f"  MAP:     logp={report['logp']:.6g}, converged={report['success']}")
    if report is not None and "inla" in report:
        inla = report["inla"]
        lines.append(f"  INLA:    {inla['n_points']} design points, {inla['effective_points']:.3g} effective")
    solver = (report or {}).get("solver")
    if solver:
        lines.append(
            f"  solver:  iterative ({solver['formulation']} cells{_preconditioned(solver)}), "
            f"{solver['cg_iterations']} CG iterations "
            f"at the optimum, logp ± {solver['logp_se']:.2g} (Monte Carlo se)"
        )
    return "\n".join(lines)


def _preconditioned(solver: Mapping) -> str:
    name = solver.get("preconditioner")
    return f", {name} preconditioner" if name else ""
