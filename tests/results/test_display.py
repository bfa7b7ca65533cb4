"""Issue 16 item 1: ``print(fit)`` with units and a posterior summary, and the HTML reprs of fits.

The numbers shown are checked against the fit's own ``params`` and against independent
computations (draw means, the share of draws inside the HDI, ArviZ's ``rhat``/``ess`` called on
the draws directly, INLA's weighted moments in numpy); the HTML is parsed with ``html.parser``.
"""

from __future__ import annotations

import copy
import re
from html.parser import HTMLParser

import numpy as np
import pytest
import xarray as xr
from pymc_extras.prior import Prior

import xkron
from xkron.results.batch import BatchFit
from xkron.results.summary import posterior_table
from xkron.settings import DISPLAY_MAX_SLICES, SUMMARY_CI_PROB


def _data(name="tas", units="K", long_name="air temperature", x_units="km"):
    """A 6 × 5 grid with one missing cell."""
    x, t = np.linspace(0, 1, 6), np.arange(5.0)
    rng = np.random.default_rng(0)
    y = np.sin(3 * x)[:, None] + np.cos(t)[None, :] + 0.1 * rng.standard_normal((6, 5))
    y[2, 3] = np.nan
    coords = {"x": ("x", x, {"units": x_units}), "time": ("time", t, {"units": "days"})}
    return xr.DataArray(y, coords=coords, dims=("x", "time"), name=name, attrs={"units": units, "long_name": long_name})


KERNELS = {"x": "ExpQuad", "time": "Matern32"}


@pytest.fixture(scope="module")
def map_fit():
    return _data().kron.fit(KERNELS, progressbar=False)


@pytest.fixture(scope="module")
def nuts_fit():
    return _data().kron.fit(KERNELS, method="nuts", draws=50, tune=50, chains=2, random_seed=1, progressbar=False)


@pytest.fixture(scope="module")
def inla_fit():
    """A Poisson field with signal on 6 × 5 (a field without signal gives a degenerate INLA design)."""
    rng = np.random.default_rng(5)
    t, x = np.linspace(0, 7, 6), np.linspace(0, 5, 5)
    cov = np.kron(np.exp(-0.5 * np.subtract.outer(t, t) ** 2 / 4.0), np.exp(-0.5 * np.subtract.outer(x, x) ** 2 / 2.25))
    f = 0.8 + 0.8 * np.linalg.cholesky(cov + 1e-8 * np.eye(30)) @ rng.normal(size=30)
    da = xr.DataArray(rng.poisson(np.exp(f)).reshape(6, 5).astype(float), coords={"time": t, "x": x}, name="n")
    kernels = {"time": xkron.ExpQuad(ls=Prior("InverseGamma", alpha=5.0, beta=8.0)), "x": xkron.ExpQuad(ls=1.5)}
    return xkron.fit(da, kernels, likelihood="poisson", method="inla", mean=0.8,
                     amplitude=Prior("HalfNormal", sigma=1.0), progressbar=False)  # fmt: skip


class Page(HTMLParser):
    """The parsed HTML: checks that every tag closes in order; collects ``<summary>`` titles, and tables
    by the title of the innermost ``<details>`` holding them."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.stack, self.details, self.titles, self.tables, self.text = [], [], [], [], []
        self._summary = self._cell = None
        self.feed(text)
        self.close()
        assert not self.stack, f"unclosed tags {self.stack}"

    def handle_starttag(self, tag, attrs):
        self.stack.append(tag)
        if tag == "details":
            self.details.append(None)
        elif tag == "summary":
            self._summary = []
        elif tag == "table":
            self.tables.append((self.details[-1] if self.details else None, []))
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack}"
        self.stack.pop()
        if tag == "summary":
            self.details[-1] = "".join(self._summary)
            self.titles.append(self.details[-1])
            self._summary = None
        elif tag == "details":
            self.details.pop()
        elif tag in ("td", "th"):
            self.tables[-1][1][-1].append("".join(self._cell))
            self._cell = None

    def handle_data(self, data):
        self.text.append(data)
        for part in (self._summary, self._cell):
            if part is not None:
                part.append(data)

    def table(self, title: str) -> list[dict[str, str]]:
        """The rows of the first table in the section whose title starts with ``title``, as dicts by header."""
        rows = next(rows for where, rows in self.tables if where and where.startswith(title))
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def _close(text: str, value: float) -> bool:
    """Whether a number shown in 4 significant digits is ``value``."""
    return abs(float(text) - value) <= 5e-4 * abs(value) + 1e-12


def test_text_repr_shows_every_value_with_its_units(map_fit):
    text = repr(map_fit)
    assert text.startswith("<xkron.KronFit (map; gaussian, marginal)>")
    for name, var in map_fit.params.items():
        units = var.attrs["units"]
        match = re.search(rf"^    {name} +=\s+(\S+) {re.escape(units)}$", text, flags=re.M)
        assert match, (name, text)
        assert _close(match.group(1), float(var))
    assert re.search(r"^    ls_x +=\s+\S+ km$", text, flags=re.M) and re.search(r"ls_time +=\s+\S+ days$", text, re.M)
    assert "MAP:     logp=" in text


def test_text_repr_marks_fixed_values():
    fit = _data().kron.fit(KERNELS, amplitude=1.0, progressbar=False)
    assert re.search(r"^    amplitude += 1 K \(fixed\)$", repr(fit), flags=re.M)


@pytest.mark.slow
def test_nuts_summary_against_the_draws(nuts_fit):
    import arviz_stats

    text = repr(nuts_fit)
    table = posterior_table(nuts_fit)
    rhat = arviz_stats.rhat(nuts_fit.params)
    ess = arviz_stats.ess(nuts_fit.params, method="bulk")
    for name in nuts_fit.params.data_vars:
        draws = nuts_fit.params[name].values.ravel()
        np.testing.assert_allclose(table.at[name, "mean"], draws.mean(), rtol=1e-12)
        np.testing.assert_allclose(table.at[name, "sd"], draws.std(ddof=1), rtol=1e-12)
        inside = np.mean((draws >= table.at[name, "lower"]) & (draws <= table.at[name, "upper"]))
        assert SUMMARY_CI_PROB <= inside <= SUMMARY_CI_PROB + 0.02, (name, inside)
        row = re.search(rf"^    {name} +(.*)$", text, flags=re.M).group(1).split()
        assert _close(row[0], draws.mean()) and row[-1] == nuts_fit.params[name].attrs["units"]
        assert row[4] == f"{float(rhat[name]):.2f}" and row[5] == str(int(float(ess[name])))
    stats = nuts_fit.posterior["sample_stats"]
    n_div = int(stats["diverging"].values.sum())
    assert f"NUTS:    {n_div} divergent" in text and f"of {stats.sizes['chain'] * stats.sizes['draw']} draws" in text
    assert f"R-hat ≤ {float(rhat.to_array().max()):.2f}" in text
    assert "(lower, upper: the 94% HDI)" in text and "(the chains' start)" in text


@pytest.mark.slow
def test_nuts_convergence_flag_names_the_problem(nuts_fit):
    flagged = copy.copy(nuts_fit)
    stats = nuts_fit.posterior["sample_stats"].to_dataset().copy(deep=True)
    stats["diverging"][0, 3] = True
    flagged.posterior = xr.DataTree.from_dict({"posterior": nuts_fit.posterior["posterior"].to_dataset(),
                                               "sample_stats": stats})  # fmt: skip
    assert "NOT converged: divergences" in repr(flagged)


@pytest.mark.slow
def test_advi_summary_has_no_rhat(nuts_fit):
    advi = copy.copy(nuts_fit)
    advi.method = "advi"  # the same draws read as ADVI's: independent draws of an approximation
    assert list(posterior_table(advi).columns) == ["mean", "sd", "lower", "upper"]
    assert "R-hat" not in repr(advi)


def test_inla_summary_is_weighted(inla_fit):
    table = posterior_table(inla_fit)
    w = inla_fit.draw_weights
    for name in table.index:
        x = inla_fit.params[name].transpose("chain", "draw").values.ravel()
        mean = np.sum(w * x) / np.sum(w)
        np.testing.assert_allclose(table.at[name, "mean"], mean, rtol=1e-12)
        np.testing.assert_allclose(table.at[name, "sd"], np.sqrt(np.sum(w * (x - mean) ** 2) / np.sum(w)), rtol=1e-10)
    text = repr(inla_fit)
    assert "weighted design points" in text and "INLA:" in text
    assert re.search(r"^    ls_x += 1.5$", text, flags=re.M)  # fixed, no draws


def test_html_sections_and_values(map_fit):
    text = map_fit._repr_html_()
    page = Page(text)
    assert [t.split()[0] for t in page.titles] == ["Grid", "Kernels", "Parameters", "Report"]
    rows = page.table("Parameters")
    assert [r["name"] for r in rows] == list(map_fit.params.data_vars)
    for row in rows:
        var = map_fit.params[row["name"]]
        assert _close(row["value"], float(var)) and row["units"] == var.attrs["units"]
        assert map_fit.spec.priors[row["name"]].distribution in row["prior"]
        assert row["description"] == var.attrs["long_name"]
    grid = page.table("Grid")
    assert [(r["dim"], r["size"], r["coordinates"], r["units"]) for r in grid] == [
        ("x", "6", "0 … 1", "km"),
        ("time", "5", "0 … 4", "days"),
    ]
    assert "29 of 30 cells observed" in "".join(page.text)
    kernels = page.table("Kernels")
    assert [(r["factor"], r["kernel"], r["lengthscale units"]) for r in kernels] == [
        ("x", "ExpQuad", "x: km"),
        ("time", "Matern32", "time: days"),
    ]
    assert "<script" not in text and "http" not in text  # self-contained


def test_html_escapes_names_and_attributes():
    da = _data(name="<b>t&x</b>", units="<K>", long_name='a "quoted" <i>name</i>', x_units="<km>")
    fit = da.kron.fit(KERNELS, progressbar=False)
    text = fit._repr_html_()
    for raw in ("<b>", "<i>", "<K>", "<km>", "t&x"):
        assert raw not in text
    shown = "".join(Page(text).text)
    for given in ("<b>t&x</b> [<K>]", 'a "quoted" <i>name</i>', "<km>"):
        assert given in shown


@pytest.mark.slow
def test_html_of_a_nuts_fit(nuts_fit):
    import arviz_stats

    page = Page(nuts_fit._repr_html_())
    assert [t.split()[0] for t in page.titles] == ["Grid", "Kernels", "Parameters", "Posterior", "Report"]
    rhat = arviz_stats.rhat(nuts_fit.params)
    for row in page.table("Posterior"):
        draws = nuts_fit.params[row["name"]].values
        assert _close(row["mean"], draws.mean()) and row["R-hat"] == f"{float(rhat[row['name']]):.2f}"
        assert row["units"] == nuts_fit.params[row["name"]].attrs["units"]
    for row in page.table("Parameters"):
        mean, sd = row["value (mean ± sd)"].split(" ± ")
        draws = nuts_fit.params[row["name"]].values
        assert _close(mean, draws.mean()) and _close(sd, draws.std(ddof=1))
    assert any(line.startswith("NUTS:") for line in page.text)


def test_html_computes_no_dask_data(map_fit):
    import dask
    from dask.callbacks import Callback

    lazy = map_fit.condition(_data().fillna(0.0).chunk({"x": 3}))
    starts = []
    with Callback(start=lambda dsk: starts.append(1)), dask.config.set(scheduler="sync"):
        text = lazy._repr_html_()
        repr(lazy)
    assert not starts and "cells observed" not in text
    assert lazy.data.chunks is not None


@pytest.fixture(scope="module")
def batch():
    da = _data()
    members = xr.DataArray(["r1", "r<2>", "r3"], dims="member")
    ens = xr.concat([da, 1.5 * da, da.where(False)], dim=members).assign_coords(member=members)
    return ens.kron.fit(KERNELS, batch_dims="member", errors="record", progressbar=False)


def test_batch_html(batch):
    text = batch._repr_html_()
    assert "r<2>" not in text
    page = Page(text)
    assert [t.split()[0] for t in page.titles] == ["Batch", "Slices", "Failures", "First", "Grid", "Kernels",
                                                   "Parameters", "Report"]  # fmt: skip
    assert "2 fitted, 1 failed" in "".join(page.text)
    rows = page.table("Slices")
    assert [r["member"] for r in rows] == ["r1", "r<2>", "r3"]
    for row, idx in zip(rows[:2], [(0,), (1,)], strict=True):
        for name, var in batch.fits[idx].params.items():
            assert _close(row[f"{name} [{var.attrs['units']}]"], float(var))
        assert row["status"] == "fitted"
    assert rows[2]["status"] == "failed" and rows[2]["ls_x [km]"] == "–"
    (failure,) = page.table("Failures")
    assert failure["slice"] == "member='r3'" and "nothing to fit" in failure["error"]


def test_batch_html_truncates_many_slices(map_fit):
    n = 30
    many = BatchFit({(i,): map_fit for i in range(n)}, {}, {"member": np.arange(n)})
    rows = Page(many._repr_html_()).table("Slices")
    assert len(rows) == DISPLAY_MAX_SLICES + 1
    assert [r["member"] for r in rows][:2] == ["0", "1"] and rows[-1]["member"] == str(n - 1)
    assert rows[DISPLAY_MAX_SLICES // 2]["member"] == "…"
