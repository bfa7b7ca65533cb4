"""The README's "Validate your fit" example runs and prints what the README shows (so it cannot rot)."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest

import xkron
from xkron.datasets import load_air_temperature

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text()
    start = text.index("## Validate your fit")
    return text[start : text.index("\n## ", start + 1)]


def _strip(text: str) -> list[str]:
    return [line.rstrip() for line in text.strip().splitlines()]


def test_the_readme_example_prints_the_readme_table():
    section = _section()
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"```text\n(.*?)```", section, re.S).group(1)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert _strip(out.getvalue()) == _strip(shown)


def test_the_readme_block_numbers():
    """The blocks run the README quotes: GP RMSE 0.435 K, climatology 0.718 K on 2,145 cells."""
    da = load_air_temperature().isel(time=slice(-10, None), longitude=slice(0, 12))
    kernels = {"time": xkron.Matern12(), "latitude": xkron.Matern52(), "longitude": xkron.Matern52()}
    cv = xkron.cross_validate(da, kernels, "blocks", random_seed=0, progressbar=False)
    s = cv.summary
    assert cv.held_out.attrs["blocks"] == ["time=3", "latitude=5", "longitude=3"]
    assert float(s["rmse"].sel(model="gp")) == pytest.approx(0.435, abs=5e-4)
    assert float(s["rmse"].sel(model="climatology")) == pytest.approx(0.718, abs=5e-4)
    assert int(s["n"].sel(model="climatology")) == 2145
    assert "0.435 K against climatology's 0.718 K (on the 2,145 cells" in " ".join(_section().split())
