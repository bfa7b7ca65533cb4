"""Item 12 of issue 11 (CLI, singleton dims): --squeeze and --sel DIM=VALUE, and error messages that
suggest only fixes the command has (each suggested option is checked against the command's options)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from click.testing import CliRunner

import xkron
from xkron.cli.app import main

KERNELS = ["--kernel", "time=ExpQuad", "--kernel", "x=Matern32"]
FIXED = {"time": xkron.ExpQuad(), "x": xkron.Matern32()}
FAST = ["--restarts", "0", "--seed", "0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """``v`` on (time, level=1, x, member=2), with a mask on (level, x)."""
    root = tmp_path_factory.mktemp("cli_select")
    rng = np.random.default_rng(5)
    ds = xr.Dataset(
        {
            "v": (("time", "level", "x"), rng.normal(size=(6, 1, 4)), {"units": "K"}),
            "ens": (("member", "time", "x"), rng.normal(size=(2, 6, 4))),
            "mask": (("level", "x"), np.array([[1, 1, 0, 1]], dtype="i1")),
        },
        coords={
            "time": pd.date_range("2001-01-01", periods=6, freq="D"),
            "level": [850.0],
            "x": np.linspace(0.0, 3.0, 4),
            "member": ["r1", "r2"],
        },
    )
    ds.to_netcdf(root / "data.nc")
    return root


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _options(command):
    return {opt for p in main.commands[command].params for opt in getattr(p, "opts", [])}


def _suggested_options(output):
    """The options an error message suggests (the text after click's 'Error:')."""
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", output.split("Error:", 1)[1]))


def test_singleton_dim_message_suggests_options_that_exist_and_work(data, tmp_path):
    result = _run("fit", data / "data.nc", "--var", "v", *KERNELS, *FAST, "--out", tmp_path / "f.nc")
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert (
        "['level'] have a single point, which a kernel cannot use: drop them with --squeeze, or --sel level=850.0"
        in message
    )
    assert "--kernel level=" not in message and "--batch-dim" not in message
    assert _suggested_options(message) <= _options("fit"), message

    squeezed = _run("fit", data / "data.nc", "--var", "v", *KERNELS, *FAST, "--squeeze", "--out", tmp_path / "s.nc")
    assert squeezed.exit_code == 0, squeezed.output
    selected = _run(
        "fit", data / "data.nc", "--var", "v", *KERNELS, *FAST, "--sel", "level=850", "--out", tmp_path / "l.nc"
    )
    assert selected.exit_code == 0, selected.output
    with xr.open_dataset(data / "data.nc") as ds:
        reference = xkron.fit(ds["v"].load().squeeze("level"), FIXED, restarts=0, random_seed=0, progressbar=False)
    for path in ("s.nc", "l.nc"):
        again = xkron.open_fit(tmp_path / path)
        assert again.dims == ("time", "x")
        assert float(again.data["level"]) == 850.0  # kept as a scalar coordinate
        xr.testing.assert_allclose(again.params, reference.params, rtol=1e-8)


def test_kernel_on_a_singleton_dim_points_at_squeeze_and_sel(data, tmp_path):
    result = _run(
        "fit", data / "data.nc", "--var", "v", *KERNELS, "--kernel", "level=Matern52", "--out", tmp_path / "f.nc"
    )
    assert result.exit_code == 2, result.output
    message = " ".join(result.output.split())
    assert "'level' (in 'level=Matern52') has 1 point(s); a kernel dim needs at least 2" in message
    assert "--squeeze, or --sel level=850.0" in message
    assert _suggested_options(message) <= _options("fit")


def test_missing_kernel_suggests_batch_only_where_it_is_an_option(data, tmp_path):
    fit = _run("fit", data / "data.nc", "--var", "ens", *KERNELS, "--out", tmp_path / "f.nc")
    assert fit.exit_code == 2
    message = " ".join(fit.output.split())
    assert "--kernel member=Matern52" in message and "`xkron batch ... --batch-dim member`" in message
    bare = _suggested_options(message.replace("`xkron batch ... --batch-dim member`", ""))
    assert bare <= _options("fit"), message
    batch = _run("batch", data / "data.nc", "--var", "ens", "--batch-dim", "time", "--kernel", "x=ExpQuad",
                 "--out", tmp_path / "b.nc")  # fmt: skip
    message = " ".join(batch.output.split())
    assert batch.exit_code == 2 and "--batch-dim member" in message
    assert _suggested_options(message) <= _options("batch"), message


def test_sel_picks_a_member_and_a_date(data, tmp_path):
    result = _run(
        "fit", data / "data.nc", "--var", "ens", "--sel", "member=r2", *KERNELS, *FAST, "--out", tmp_path / "m.nc"
    )
    assert result.exit_code == 0, result.output
    fit = xkron.open_fit(tmp_path / "m.nc")
    with xr.open_dataset(data / "data.nc") as ds:
        np.testing.assert_array_equal(fit.data.values, ds["ens"].sel(member="r2").values)
    by_date = _run("batch", data / "data.nc", "--var", "ens", "--sel", "time=2001-01-03", "--batch-dim", "member",
                   "--kernel", "x=ExpQuad(ls=1.0)", *FAST, "--out", tmp_path / "d.nc")  # fmt: skip
    assert by_date.exit_code == 0, by_date.output


@pytest.mark.parametrize(
    ("var", "sel", "message"),
    [
        ("v", "level=500", "level=500: no such point of 'level' (its values: 850.0)"),
        ("v", "depth=1", "'depth' is not a dim of 'v'"),
        ("ens", "member=r3", "member=r3: no such point of 'member' (its values: r1, r2)"),
        ("ens", "member=r1,time=yesterday", "'yesterday' is not a value of 'time'"),
        ("v", "level", "is not DIM=VALUE"),
        ("v", "x=1.0", "'x' is selected at one point by --sel but also named by --kernel"),
    ],
)
def test_bad_sel_is_refused_before_fitting(data, tmp_path, var, sel, message):
    sels = [arg for item in sel.split(",") for arg in ("--sel", item)]
    kernels = KERNELS if var == "v" else ["--kernel", "x=Matern32"]
    result = _run("fit", data / "data.nc", "--var", var, *kernels, *sels, "--squeeze", "--out", tmp_path / "f.nc")
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()), result.output
    assert not (tmp_path / "f.nc").exists()
