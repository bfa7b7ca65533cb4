"""The text summary of a fit (``repr(fit)``) and the pieces its HTML repr shares.

:func:`fit_repr` shows the grid, the kernels, every hyperparameter with its units (``fit.params``'
attrs), and for fits with posterior draws a compact summary per hyperparameter:
:func:`posterior_table` (mean, sd, highest-density interval, and for NUTS R-hat and bulk ESS, all
from ArviZ's ``summary``; INLA's design points are weighted, so their mean and sd are the weighted
moments). :func:`report_lines` says how the fit ran: the optimiser, the sampler's divergences
and worst R-hat/ESS, the solver. :mod:`xkron.results.display` lays out the same pieces as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from xkron.settings import RHAT_MAX, SUMMARY_CI_PROB

__all__ = [
    "fit_repr",
    "fmt",
    "fmt_stat",
    "param_units",
    "point_values",
    "posterior_table",
    "report_lines",
    "short_prior",
]

SAMPLE_DIMS = ("chain", "draw")


def fmt(value: float) -> str:
    """A number in 4 significant digits (``"–"`` for NaN, the R-hat of a single chain)."""
    value = float(value)
    return "–" if np.isnan(value) else f"{value:.4g}"


def fmt_stat(column: str, value: float) -> str:
    """A cell of :func:`posterior_table` as ArviZ shows it: R-hat with 2 decimals, ESS rounded down."""
    value = float(value)
    if np.isnan(value):
        return "–"
    if column == "r_hat":
        return f"{value:.2f}"
    return f"{int(value)}" if column == "ess_bulk" else fmt(value)


def short_prior(text: str) -> str:
    """A prior's repr with its long floats rounded to 4 significant digits.

    Examples
    --------
    >>> short_prior('Prior("LogNormal", mu=0.6931471805599453, sigma=0.2979550858642462)')
    'Prior("LogNormal", mu=0.6931, sigma=0.298)'
    """
    return re.sub(r"-?\d+\.\d{5,}(?:e[-+]?\d+)?", lambda m: f"{float(m.group()):.4g}", text)


def param_units(fit, name: str) -> str:
    """The units of hyperparameter ``name`` (``""`` when it has none), from ``fit.params``' attrs."""
    return str(fit.params[name].attrs.get("units", ""))


def _drawn(fit) -> list[str]:
    """The hyperparameters with posterior draws (the others are fixed, or the fit has none)."""
    return [name for name, var in fit.params.items() if "chain" in var.dims]


def point_values(fit) -> dict[str, np.ndarray]:
    """Every hyperparameter without draws (all of a MAP or Laplace fit's, the fixed ones of others), by name."""
    return {name: np.asarray(var.values) for name, var in fit.params.items() if "chain" not in var.dims}


def point_estimates(fit) -> dict[str, float]:
    """One number per scalar hyperparameter: the value of a point fit, the posterior mean (weighted for INLA)
    of one with draws; cheap (no ArviZ), for tables of many fits."""
    out = {}
    weights = fit.posterior["sample_stats"]["weight"] if fit.draw_weights is not None else None
    for name, var in fit.params.items():
        if "chain" in var.dims:
            var = var.weighted(weights).mean(SAMPLE_DIMS) if weights is not None else var.mean(SAMPLE_DIMS)
        if var.ndim == 0:
            out[name] = float(var)
    return out


def posterior_table(fit) -> pd.DataFrame | None:
    """A summary per hyperparameter with draws, or ``None`` for a fit without (MAP, Laplace).

    Columns ``mean``, ``sd`` and, except for INLA, ``lower`` and ``upper`` (the
    :data:`~xkron.settings.SUMMARY_CI_PROB` highest-density interval, ``attrs["ci"]`` names it); for
    NUTS also ``r_hat`` and ``ess_bulk``. ArviZ's ``summary`` computes them (rank-normalised split
    R-hat, bulk ESS); ADVI's draws are independent draws of its approximation, so R-hat and ESS
    would say nothing and are left out. INLA's draws are CCD design points with weights: the
    weighted mean and sd, and no interval from a handful of points.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 5)
    >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x})
    >>> print(posterior_table(da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False)))
    None
    """
    names = _drawn(fit)
    if not names:
        return None
    draws = fit.params[names]
    if fit.draw_weights is not None:  # INLA
        weights = fit.posterior["sample_stats"]["weight"]
        mean = draws.weighted(weights).mean(SAMPLE_DIMS)
        sd = draws.weighted(weights).std(SAMPLE_DIMS)
        table = pd.DataFrame({"mean": mean.to_pandas(), "sd": sd.to_pandas()}, index=names, dtype=float)
        table.attrs["ci"] = ""
        return table
    import arviz_stats  # ArviZ's own statistics (imported by PyMC already after a fit)

    nuts = fit.method == "nuts"
    kind = "all" if nuts else "stats"
    summary = arviz_stats.summary(draws, kind=kind, ci_prob=SUMMARY_CI_PROB, ci_kind="hdi", round_to="none")
    lower, upper = (c for c in summary.columns if c.endswith(("_lb", "_ub")))
    columns = ["mean", "sd", lower, upper] + (["r_hat", "ess_bulk"] if nuts else [])
    table = pd.DataFrame(summary[columns]).rename(columns={lower: "lower", upper: "upper"}).astype(float)
    table.attrs["ci"] = f"{SUMMARY_CI_PROB:.0%} HDI"
    return table


def _sampler_line(fit, table: pd.DataFrame | None) -> str | None:
    """NUTS: divergent transitions and tree-depth hits (``sample_stats``), the worst R-hat and bulk ESS."""
    if fit.method != "nuts" or fit.posterior is None or "sample_stats" not in fit.posterior:
        return None
    stats = fit.posterior["sample_stats"]
    n = int(np.prod([stats.sizes[d] for d in SAMPLE_DIMS if d in stats.sizes]))
    parts = []
    for key, what in (("diverging", "divergent"), ("reached_max_treedepth", "at max tree depth")):
        if key in stats:
            parts.append(f"{int(stats[key].values.sum())} {what}")
    text = f"NUTS:    {', '.join(parts) or 'no sampler statistics'} of {n} draws"
    worst = np.nan
    if table is not None and "r_hat" in table and len(table):
        worst = float(table["r_hat"].max())
        text += f"; R-hat ≤ {fmt_stat('r_hat', worst)}, bulk ESS ≥ {fmt_stat('ess_bulk', table['ess_bulk'].min())}"
    problems = [f"R-hat > {RHAT_MAX}"] if worst > RHAT_MAX else []
    if "diverging" in stats and stats["diverging"].values.any():
        problems.insert(0, "divergences")
    if problems:
        text += f" (NOT converged: {' and '.join(problems)}; sample longer or reparametrise)"
    return text


def report_lines(fit, table: pd.DataFrame | None = None) -> list[str]:
    """How the fit ran, one line each: ADVI's loss, the MAP (for NUTS: the chains' start), INLA's design,
    NUTS' divergences and worst R-hat/ESS (given ``table`` from :func:`posterior_table`), the solver."""
    lines = []
    report = fit.optimizer
    if report is not None and "loss" in report:  # ADVI (xkron.inference.run)
        settled = f"after {report['n']} iterations, settled={report['success']}"
        lines.append(f"ADVI:    loss={report['loss']:.6g} {settled}")
    elif report is not None and "logp" in report:
        start = " (the chains' start)" if fit.method == "nuts" else ""
        lines.append(f"MAP:     logp={report['logp']:.6g}, converged={report['success']}{start}")
    if report is not None and "inla" in report:
        inla = report["inla"]
        lines.append(f"INLA:    {inla['n_points']} design points, {inla['effective_points']:.3g} effective")
    sampler = _sampler_line(fit, table)
    if sampler:
        lines.append(sampler)
    solver = (report or {}).get("solver")
    if solver:
        lines.append(
            f"solver:  iterative ({solver['formulation']} cells{_preconditioned(solver)}), "
            f"{solver['cg_iterations']} CG iterations "
            f"at the optimum, logp ± {solver['logp_se']:.2g} (Monte Carlo se)"
        )
    return lines


def _value_text(value: np.ndarray) -> str:
    return fmt(value) if value.ndim == 0 else np.array2string(value, precision=4, separator=", ")


def _param_block(fit, table: pd.DataFrame | None) -> list[str]:
    """``name = value units`` per point value, then the posterior table with a units column."""
    points = point_values(fit)
    width = max((len(name) for name in fit.params.data_vars), default=0)
    lines = []
    if points:
        lines.append("  params:" if table is None else "  fixed:")
        for name, value in points.items():
            fixed = " (fixed)" if table is None and fit.params[name].attrs.get("prior") == "fixed" else ""
            lines.append(f"    {name:<{width}} = {_value_text(value)} {param_units(fit, name)}".rstrip() + fixed)
    if table is not None:
        chains, draws = (fit.params.sizes[d] for d in SAMPLE_DIMS)
        weighted = " weighted design points" if fit.draw_weights is not None else " draws"
        lines.append(f"  posterior ({chains} chain{'s' * (chains > 1)} × {draws}{weighted}):")
        headers = {"mean": "mean", "sd": "sd", "lower": "lower", "upper": "upper", "r_hat": "R-hat", "ess_bulk": "ESS"}
        cols = list(table.columns)
        rows = [[name, *(fmt_stat(c, table.at[name, c]) for c in cols), param_units(fit, name)] for name in table.index]
        head = ["", *(headers[c] for c in cols), "units"]
        widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
        widths[0] = max(widths[0], width)
        for row in [head, *rows]:
            cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:-1], widths[1:-1], strict=True))]
            lines.append(("    " + "  ".join([*cells, row[-1]])).rstrip())
        if table.attrs.get("ci"):
            lines.append(f"    (lower, upper: the {table.attrs['ci']})")
    return lines


def fit_repr(fit) -> str:
    """The text of ``repr(fit)``: grid, kernels, parameters with units (posterior summary for fits with
    draws), optimiser, sampler and solver.

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 5)
    >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": ("a", x, {"units": "km"}), "b": x},
    ...                   attrs={"units": "K"})
    >>> fitted = da.kron.fit({"a": xkron.ExpQuad(ls=0.5), "b": xkron.ExpQuad(ls=0.5)}, amplitude=1.0,
    ...                      noise=0.1, progressbar=False)
    >>> print("\\n".join(fit_repr(fitted).splitlines()[:7]))
    <xkron.KronFit (map; gaussian, marginal)>
      grid:    a: 5 × b: 5
      kernels: a: ExpQuad, b: ExpQuad
      params:
        ls_a      = 0.5 km (fixed)
        ls_b      = 0.5 (fixed)
        amplitude = 1 K (fixed)
    """
    kernels = ", ".join(f"{'×'.join(f.dims)}: {f.kernel.name}" for f in fit.spec.factors)
    shape = " × ".join(f"{d}: {n}" for d, n in fit.data.sizes.items())
    model = f"{fit.spec.likelihood.name}, {'latent' if fit.spec.latent else 'marginal'}"
    lines = [f"<xkron.KronFit ({fit.method}; {model})>", f"  grid:    {shape}", f"  kernels: {kernels}"]
    table = posterior_table(fit)
    lines += _param_block(fit, table)
    lines += [f"  {line}" for line in report_lines(fit, table)]
    return "\n".join(lines)


def _preconditioned(solver: Mapping) -> str:
    name = solver.get("preconditioner")
    return f", {name} preconditioner" if name else ""
