"""What importing xkron costs: PyMC and PyTensor load with the first fit, not with the package.

``import xkron``, ``xkron --help`` and ``xkron info FIT.nc`` take seconds more when PyMC is
imported (issue 11, item 17), so each is run in a fresh interpreter and must leave PyMC and
PyTensor out of ``sys.modules``. Timings are not asserted (see ``python -X importtime``).
"""

from __future__ import annotations

import pkgutil
import subprocess
import sys

import numpy as np
import xarray as xr
from pymc_extras.prior import Prior

import xkron

HEAVY = ("pymc", "pytensor", "pymc_extras")


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _loaded_after(code: str) -> list[str]:
    out = _run(f"{code}\nimport sys\nprint(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    return eval(out.strip().splitlines()[-1])


def test_import_xkron_and_the_cli_leave_pymc_out():
    assert _loaded_after("import xkron, xkron.cli.app, xkron.cli.jobs") == []


def test_cli_help_leaves_pymc_out():
    code = (
        "from click.testing import CliRunner\nfrom xkron.cli.app import main\n"
        "for args in (['--help'], ['fit', '--help'], ['predict', '--help'], ['info', '--help']):\n"
        "    assert CliRunner().invoke(main, args).exit_code == 0, args"
    )
    assert _loaded_after(code) == []


def test_info_of_a_fit_with_priors_leaves_pymc_out(tmp_path):
    x = np.linspace(0.0, 1.0, 6)
    da = xr.DataArray(np.sin(4 * x)[:, None] + x[None, :5], coords={"a": x, "b": x[:5]}, dims=("a", "b"), name="t")
    fitted = xkron.fit(da, {"a": xkron.ExpQuad(ls=Prior("Gamma", alpha=2, beta=4)), "b": "Matern32"}, progressbar=False)
    path = tmp_path / "fit.nc"
    fitted.to_netcdf(path)
    code = f"from xkron.cli.info import describe_fit\nprint(describe_fit({str(path)!r}))"
    assert _loaded_after(code) == []
    assert "Gamma" in _run(code) and "ls_a" in _run(code)


def test_a_reloaded_prior_builds_the_same_model(tmp_path):
    """Priors read back lazily still build the model: its log density equals the original's."""
    x = np.linspace(0.0, 1.0, 5)
    da = xr.DataArray(np.cos(3 * x)[:, None] * x[None, :], coords={"a": x, "b": x}, dims=("a", "b"))
    fitted = xkron.fit(da, {"a": xkron.ExpQuad(ls=Prior("Gamma", alpha=2, beta=4)), "b": "ExpQuad"}, progressbar=False)
    fitted.to_netcdf(tmp_path / "fit.nc")
    again = xkron.open_fit(tmp_path / "fit.nc")
    point = fitted.model.initial_point()
    assert again.model.compile_logp()(point) == fitted.model.compile_logp()(point)
    assert again.spec.priors == fitted.spec.priors


def test_every_module_imports_in_a_fresh_interpreter_in_sorted_order():
    """No import cycle that only some orders of import survive."""
    names = sorted(m.name for m in pkgutil.walk_packages(xkron.__path__, "xkron.") if not m.name.endswith("__main__"))
    out = _run("import importlib\n" + "".join(f"importlib.import_module({n!r})\n" for n in names) + "print('ok')")
    assert len(names) > 50 and out.strip() == "ok"
