"""The HTML reprs of fits for notebooks: ``KronFit._repr_html_`` and ``BatchFit._repr_html_``.

In the style of xarray's and ArviZ's reprs: a header, then collapsible ``<details>`` sections
(grid, kernels, parameters with units and priors, the posterior summary with R-hat and ESS for
NUTS, how the fit ran). The numbers are those of :mod:`xkron.results.summary`, which makes the
text repr, so the two never disagree. Every text is escaped with :func:`html.escape`; the style
is inline CSS scoped to ``.xkron-repr`` (no JavaScript, no network), with Jupyter's theme
colours where they are defined. Nothing is computed: dask-backed data stay unread.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence

import numpy as np

from xkron.linalg.lazy import is_dask
from xkron.results.summary import (
    fmt,
    fmt_stat,
    param_units,
    point_estimates,
    point_values,
    posterior_table,
    report_lines,
    short_prior,
)
from xkron.settings import DISPLAY_MAX_SLICES

__all__ = ["batch_html", "fit_html"]

STYLE = """<style>
.xkron-repr { font-family: var(--jp-code-font-family, monospace); font-size: var(--jp-code-font-size, 12px);
  color: var(--jp-content-font-color0, inherit); line-height: 1.4; }
.xkron-repr .xkron-header { font-weight: bold; margin-bottom: 4px; }
.xkron-repr .xkron-muted { color: var(--jp-content-font-color2, #777); font-weight: normal; }
.xkron-repr details { margin: 2px 0 2px 0; }
.xkron-repr summary { cursor: pointer; font-weight: bold; }
.xkron-repr table { border-collapse: collapse; margin: 2px 0 6px 16px; }
.xkron-repr th, .xkron-repr td { padding: 1px 8px; text-align: left; vertical-align: top;
  border-bottom: 1px solid var(--jp-border-color2, #e0e0e0); }
.xkron-repr td.xkron-num { text-align: right; }
.xkron-repr .xkron-bad { color: var(--jp-error-color1, #c00); font-weight: bold; }
.xkron-repr ul { margin: 2px 0 6px 0; }
</style>"""


def _e(value) -> str:
    return html.escape(str(value))


def _table(header: Sequence[str], rows: Iterable[Sequence], numeric: Sequence[int] = ()) -> str:
    """An HTML table; ``rows`` hold plain texts (escaped here), ``numeric`` columns right-aligned."""
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f"<td class='xkron-num'>{_e(c)}</td>" if i in numeric else f"<td>{_e(c)}</td>" for i, c in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _section(title: str, note: str, content: str, open_: bool = True) -> str:
    """A collapsible section: its title (escaped), a muted note (escaped) and ``content`` (HTML)."""
    state = " open" if open_ else ""
    note = f" <span class='xkron-muted'>{_e(note)}</span>" if note else ""
    return f"<details{state}><summary>{_e(title)}{note}</summary>{content}</details>"


def _coord_range(data, dim: str) -> tuple[str, str]:
    """The first and last coordinate of ``dim`` and its units (positions for a dim without a coordinate)."""
    if dim not in data.coords:
        return f"0 … {data.sizes[dim] - 1} (positions)", ""
    values = data[dim].values
    first, last = values[0], values[-1]
    if values.dtype.kind == "f":
        first, last = fmt(first), fmt(last)
    elif values.dtype.kind == "M":
        first, last = np.datetime_as_string(first, unit="auto"), np.datetime_as_string(last, unit="auto")
    return f"{first} … {last}", str(data[dim].attrs.get("units", ""))


def _grid_section(fit) -> str:
    data = fit.data
    rows = [(d, n, *_coord_range(data, d)) for d, n in data.sizes.items()]
    table = _table(("dim", "size", "coordinates", "units"), rows, numeric=(1,))
    about = f"{data.name or '(unnamed)'}"
    units = data.attrs.get("units")
    about += f" [{units}]" if units else " (no units)"
    if data.attrs.get("long_name"):
        about += f": {data.attrs['long_name']}"
    if not is_dask(data.data):  # the count would read dask data: a repr computes nothing
        observed = np.isfinite(np.asarray(data.values, dtype=float))
        if fit.mask is not None:
            observed &= np.asarray(fit.mask.transpose(*data.dims).values, dtype=bool)
        about += f"; {int(observed.sum()):,} of {observed.size:,} cells observed"
    note = " × ".join(f"{d}: {n}" for d, n in data.sizes.items())
    return _section("Grid", note, f"<div>{_e(about)}</div>{table}")


def _kernels_section(fit) -> str:
    rows = []
    for factor in fit.spec.factors:
        units = ", ".join(f"{d}: {fit.encodings[d].lengthscale_units or '–'}" for d in factor.dims)
        rows.append(("×".join(factor.dims), factor.kernel.name, units))
    likelihood = f"{fit.spec.likelihood.name} likelihood, {'latent' if fit.spec.latent else 'marginal'} model"
    return _section("Kernels", likelihood, _table(("factor", "kernel", "lengthscale units"), rows))


def _params_section(fit, table) -> str:
    rows = []
    points = point_values(fit)
    for name, var in fit.params.items():
        if name in points:
            value = points[name]
            text = fmt(value) if value.ndim == 0 else np.array2string(value, precision=4, separator=", ")
        else:
            text = f"{fmt(table.at[name, 'mean'])} ± {fmt(table.at[name, 'sd'])}"
        prior = short_prior(var.attrs.get("prior", ""))
        rows.append((name, text, param_units(fit, name), prior, var.attrs.get("long_name", "")))
    header = ("name", "value" if table is None else "value (mean ± sd)", "units", "prior", "description")
    return _section("Parameters", f"{len(rows)}", _table(header, rows, numeric=(1,)))


def _posterior_section(fit, table) -> str:
    columns = list(table.columns)
    names = {"mean": "mean", "sd": "sd", "lower": "lower", "upper": "upper", "r_hat": "R-hat", "ess_bulk": "bulk ESS"}
    rows = [(n, *(fmt_stat(c, table.at[n, c]) for c in columns), param_units(fit, n)) for n in table.index]
    header = ("name", *(names[c] for c in columns), "units")
    chains, draws = fit.params.sizes["chain"], fit.params.sizes["draw"]
    note = f"{chains} chain(s) × {draws} draws"
    if table.attrs.get("ci"):
        note += f"; lower, upper: the {table.attrs['ci']}"
    if fit.draw_weights is not None:
        note += "; weighted moments over INLA's design points"
    return _section("Posterior", note, _table(header, rows, numeric=tuple(range(1, len(columns) + 1))))


def _report_section(fit, table) -> str:
    lines = report_lines(fit, table)
    message = (fit.optimizer or {}).get("message")
    if message:
        lines.append(f"optimiser message: {message}")
    items = "".join(
        f"<li class='xkron-bad'>{_e(line)}</li>"
        if "NOT converged" in line or "=False" in line
        else f"<li>{_e(line)}</li>"
        for line in lines
    )
    return _section("Report", "optimiser, sampler, solver", f"<ul>{items}</ul>" if items else "<div>–</div>")


def fit_body(fit) -> str:
    """The sections of a fit's HTML repr, without the header (also nested in a batch fit's)."""
    table = posterior_table(fit)
    parts = [_grid_section(fit), _kernels_section(fit), _params_section(fit, table)]
    if table is not None:
        parts.append(_posterior_section(fit, table))
    parts.append(_report_section(fit, table))
    return "".join(parts)


def fit_html(fit) -> str:
    """The HTML repr of a :class:`xkron.KronFit` (``fit._repr_html_()``, shown by Jupyter).

    Examples
    --------
    >>> import numpy as np, xarray as xr, xkron
    >>> x = np.linspace(0, 1, 5)
    >>> da = xr.DataArray(np.add.outer(x, x), coords={"a": x, "b": x}, name="t")
    >>> text = fit_html(da.kron.fit({"a": "ExpQuad", "b": "ExpQuad"}, noise=0.1, progressbar=False))
    >>> text.startswith("<div class='xkron-repr'>"), "<summary>Parameters" in text
    (True, True)
    """
    model = f"{fit.method}; {fit.spec.likelihood.name}, {'latent' if fit.spec.latent else 'marginal'}"
    header = f"<div class='xkron-header'>xkron.KronFit <span class='xkron-muted'>({_e(model)})</span></div>"
    return f"<div class='xkron-repr'>{STYLE}{header}{fit_body(fit)}</div>"


def _shown(n: int, limit: int) -> list[int | None]:
    """Positions to show of ``n`` rows: all, or the first and last halves of ``limit`` with ``None`` between."""
    if n <= limit:
        return list(range(n))
    head = (limit + 1) // 2
    return [*range(head), None, *range(n - (limit - head), n)]


def _label_text(values: np.ndarray, limit: int) -> str:
    texts = [str(v) for v in values[: limit + 1]]
    return ", ".join(texts[:limit]) + (f", … ({len(values)} in all)" if len(values) > limit else "")


def _slice_values(fit, names: Sequence[str]) -> list[str]:
    """A slice's hyperparameters: values, or posterior means (weighted for INLA) of fits with draws."""
    if fit is None:
        return ["–"] * len(names)
    values = point_estimates(fit)
    return [fmt(values[n]) if n in values else "…" for n in names]


def _slices_section(batch) -> str:
    index = list(batch.fits)
    first = next((f for f in batch.fits.values() if f is not None), None)
    names = list(first.params.data_vars) if first is not None else []
    heads = [*batch.batch_dims, *(f"{n} [{param_units(first, n)}]" if param_units(first, n) else n for n in names)]
    rows = []
    for k in _shown(len(index), DISPLAY_MAX_SLICES):
        if k is None:
            rows.append(["…"] * (len(heads) + 1))
            continue
        idx = index[k]
        labels = [str(batch.labels[d][i]) for d, i in zip(batch.batch_dims, idx, strict=True)]
        status = "failed" if idx in batch.failures else "fitted"  # the messages: the Failures section
        rows.append([*labels, *_slice_values(batch.fits[idx], names), status])
    drawn = first is not None and "chain" in first.params.dims
    note = f"{len(index)} slices" + ("; posterior means" if drawn else "")
    if len(index) > DISPLAY_MAX_SLICES:
        note += f"; first and last {DISPLAY_MAX_SLICES // 2} shown"
    numeric = tuple(range(len(batch.batch_dims), len(batch.batch_dims) + len(names)))
    return _section("Slices", note, _table([*heads, "status"], rows, numeric=numeric))


def batch_html(batch) -> str:
    """The HTML repr of a :class:`xkron.BatchFit`: batch dims and labels, how many slices were fitted and
    failed, a table of every slice's hyperparameters (at most
    :data:`~xkron.settings.DISPLAY_MAX_SLICES` rows) and the sections of the first fitted slice."""
    done = sum(f is not None for f in batch.fits.values())
    sizes = " × ".join(f"{d}: {len(v)}" for d, v in batch.labels.items())
    header = (
        f"<div class='xkron-header'>xkron.BatchFit <span class='xkron-muted'>({_e(sizes)}): "
        f"{done} fitted, {len(batch.failures)} failed</span></div>"
    )
    rows = [(d, len(v), _label_text(v, DISPLAY_MAX_SLICES)) for d, v in batch.labels.items()]
    parts = [_section("Batch dims", sizes, _table(("dim", "size", "labels"), rows, numeric=(1,)))]
    parts.append(_slices_section(batch))
    if batch.failures:
        failed = [(batch.describe(idx), message) for idx, message in list(batch.failures.items())[:DISPLAY_MAX_SLICES]]
        more = len(batch.failures) - len(failed)
        note = f"{len(batch.failures)}" + (f", first {len(failed)} shown" if more else "")
        parts.append(_section("Failures", note, _table(("slice", "error"), failed), open_=False))
    first = next(((idx, f) for idx, f in batch.fits.items() if f is not None), None)
    if first is not None:
        inner = f"<div style='margin-left: 16px'>{fit_body(first[1])}</div>"
        parts.append(_section("First fitted slice", batch.describe(first[0]), inner, open_=False))
    return f"<div class='xkron-repr'>{STYLE}{header}{''.join(parts)}</div>"
