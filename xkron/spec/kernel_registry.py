"""Kernels by name: the registry, kernel expressions in text, and the saved form of kernels.

The CLI (``--kernel "time=Periodic(period=365.25)*Matern52+ExpQuad"``), ``fit(kernels={"time":
"Matern52+Linear"})`` and saved fits all name kernels in text; this module turns that text into
the kernels of :mod:`xkron.spec.kernels`, :mod:`xkron.spec.trend_kernels` and
:mod:`xkron.spec.kernel_base` and :mod:`xkron.spec.spectral_mixture`, with errors that say what is wrong.
"""

from __future__ import annotations

import ast
import difflib
from collections.abc import Mapping
from typing import Any

from xkron.spec.coregion import Coregion
from xkron.spec.kernel_base import Product, Scaled, Sum
from xkron.spec.kernels import (
    Cosine,
    ExpQuad,
    Independent,
    Kernel,
    Matern12,
    Matern32,
    Matern52,
    Periodic,
    RatQuad,
)
from xkron.spec.latitude_kernels import Meridional, PolarWeight
from xkron.spec.prior_types import spec_from_json
from xkron.spec.spectral_mixture import SpectralMixture, Wave
from xkron.spec.sphere_kernels import Circular, Spherical
from xkron.spec.trend_kernels import Linear, Polynomial, WhiteNoise

__all__ = ["KERNELS", "kernel_class", "kernel_from_dict", "parse_kernel_expression", "resolve_kernel"]

KERNELS: dict[str, type[Kernel]] = {
    cls.__name__: cls
    for cls in (
        ExpQuad, Matern12, Matern32, Matern52, RatQuad, Cosine, Periodic, Independent,
        Linear, Polynomial, WhiteNoise, SpectralMixture, Wave, Circular, Spherical, Meridional, PolarWeight, Coregion,
    )
}  # fmt: skip
"""The kernels a name can give (case-insensitively); combine them with ``+``, ``*`` and ``c *``."""


def kernel_class(name: str) -> type[Kernel] | None:
    """The kernel class of a name, case-insensitively (``"matern32"`` → :class:`Matern32`), or
    ``None`` if :data:`KERNELS` has no such kernel.

    Examples
    --------
    >>> kernel_class("expquad").__name__, kernel_class("nope")
    ('ExpQuad', None)
    """
    return {k.lower(): v for k, v in KERNELS.items()}.get(name.lower())


def kernel_from_dict(obj: Mapping[str, Any]) -> Kernel:
    """Inverse of :meth:`xkron.spec.kernels.Kernel.to_dict`, combinations included."""
    name = obj["kernel"]
    if name in ("Sum", "Product"):
        return (Sum if name == "Sum" else Product)([kernel_from_dict(p) for p in obj["parts"]])
    if name == "Scaled":
        return Scaled(kernel_from_dict(obj["part"]), spec_from_json(obj["scale"]))
    if name == "Coregion":
        W, kappa = spec_from_json(obj["W"]), spec_from_json(obj["kappa"])
        noise = obj.get("noise", False)
        return Coregion(
            obj["rank"], W, kappa, obj["labels"], noise if isinstance(noise, bool) else spec_from_json(noise)
        )
    if name == "SpectralMixture":
        return SpectralMixture(obj["q"], [kernel_from_dict(p) for p in obj["parts"]])
    if name in ("Circular", "Spherical", "Meridional"):
        shape = {k: obj[k] for k in ("period", "radius") if k in obj}
        params = {k: spec_from_json(v) for k, v in obj["params"].items()}
        inner = kernel_from_dict({**obj["part"], "params": {**obj["part"]["params"], **{k: v for k, v in params.items()
                                                                                       if k != "ls"}}})  # fmt: skip
        return KERNELS[name](inner, ls=params["ls"], **shape)
    extra = {k: obj[k] for k in ("d", "power", "hemisphere") if k in obj}
    return KERNELS[name](**extra, **{k: spec_from_json(v) for k, v in obj["params"].items()})


def _names() -> str:
    return ", ".join(KERNELS)


def parse_kernel_expression(text: str) -> Kernel:
    """The kernel of a text such as ``"Periodic(period=365.25)*Matern52+ExpQuad"``.

    Names are those of :data:`KERNELS`, case-insensitive, optionally called with hyperparameters
    fixed to literal values by name (``ExpQuad(ls=[5, 10])``, one per dim); ``+`` adds kernels,
    ``*`` multiplies them, and a number times a kernel (``0.5*ExpQuad``) fixes its variance weight.

    Raises
    ------
    ValueError
        Naming the part of the text that is not a kernel, with the known names.

    Examples
    --------
    >>> parse_kernel_expression("periodic(period=365.25)*Matern52 + ExpQuad").name
    'Periodic*Matern52 + c*ExpQuad'
    >>> parse_kernel_expression("Matern33")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: unknown kernel 'Matern33' in 'Matern33' (did you mean 'Matern32'?); kernels: ExpQuad, ...
    """
    try:
        node = ast.parse(text.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(
            f"{text!r} is not a kernel expression: write kernel names joined by + and *, e.g. "
            f"Periodic(period=365.25)*Matern52+ExpQuad; kernels: {_names()}"
        ) from None
    return _build(node, text)


def _build(node: ast.AST, text: str) -> Kernel:
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add | ast.Mult):
        number = _number(node.left) if isinstance(node.op, ast.Mult) else None
        if number is not None:
            return Scaled(_build(node.right, text), number)
        left, right = _build(node.left, text), _build(node.right, text)
        return left + right if isinstance(node.op, ast.Add) else left * right
    if isinstance(node, ast.Name):
        return _kernel_class(node.id, text)()
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call(_kernel_class(node.func.id, text), node, text)
    raise ValueError(
        f"{ast.unparse(node)!r} in {text!r} is not a kernel: write NAME or NAME(param=value, ...) joined by + and *, "
        f"e.g. Periodic(period=365.25)*Matern52+ExpQuad; kernels: {_names()}"
    )


def _number(node: ast.AST) -> float | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError):
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _kernel_class(name: str, text: str) -> type[Kernel]:
    cls = kernel_class(name)
    if cls is None:
        close = difflib.get_close_matches(name.lower(), [k.lower() for k in KERNELS], n=1)
        hint = f" (did you mean {kernel_class(close[0]).__name__!r}?)" if close else ""
        raise ValueError(f"unknown kernel {name!r} in {text!r}{hint}; kernels: {_names()}")
    return cls


def _call(cls: type[Kernel], call: ast.Call, text: str) -> Kernel:
    if cls is SpectralMixture:
        allowed = ["q"]
    elif cls is Coregion:
        allowed = ["rank", "W", "kappa", "noise"]
    elif cls in (Circular, Spherical, Meridional):
        allowed = ["kernel", "ls", "period" if cls is Circular else "radius"]
    else:
        fixed = {Polynomial: ["d"], PolarWeight: ["power", "hemisphere"]}.get(cls, [])
        allowed = [*cls().param_specs(), *fixed]
    if call.args or any(kw.arg is None for kw in call.keywords):
        raise ValueError(
            f"give {cls.__name__}'s hyperparameters by name in {text!r}, e.g. {cls.__name__}({allowed[0]}=2); "
            f"its hyperparameters: {', '.join(allowed) or 'none'}"
        )
    kwargs: dict[str, Any] = {}
    for kw in call.keywords:
        if kw.arg not in allowed:
            raise ValueError(
                f"{cls.__name__} has no hyperparameter {kw.arg!r} (in {text!r}); its hyperparameters: "
                f"{', '.join(allowed) or 'none'}"
            )
        try:
            kwargs[kw.arg] = ast.literal_eval(kw.value)
        except (ValueError, TypeError, SyntaxError):
            raise ValueError(
                f"{kw.arg}={ast.unparse(kw.value)} in {text!r} is not a literal value: give a number, a list of "
                "numbers (one per dim) or None (default prior)"
            ) from None
    if "kernel" in kwargs:
        inner = kernel_class(str(kwargs["kernel"]))
        if inner is None:
            raise ValueError(f"unknown kernel {kwargs['kernel']!r} in {text!r}; kernels: {_names()}")
        kwargs["kernel"] = inner()
    return cls(**kwargs)


def resolve_kernel(key: Any, value: Any) -> Kernel:
    """The kernel of a value of ``fit``'s ``kernels`` mapping: a kernel, a name or an expression of names.

    ``key`` is the mapping's key, named in errors (a class instead of an instance, PyMC's
    covariance objects, a misspelt name with the closest known one).
    """
    if isinstance(value, str):
        return _kernel_from_name(key, value)
    if isinstance(value, Kernel) and type(value) is not Kernel:
        return value
    if isinstance(value, type) and issubclass(value, Kernel) and value is not Kernel:
        raise TypeError(
            f"kernels[{key!r}] is the class {value.__name__}, not an instance; write {value.__name__}() "
            f"(optionally with hyperparameters, e.g. {value.__name__}(ls=1.0)). Available kernels: {_names()}."
        )
    module = type(value).__module__ or ""
    if module.split(".")[0] in ("pymc", "pymc3", "pytensor"):
        name = type(value).__name__
        suggestion = f"xkron.{name}(...)" if name in KERNELS else "an xkron kernel"
        raise TypeError(
            f"kernels[{key!r}] is a {module}.{name} object; xkron builds its own covariances, so use "
            f"{suggestion} instead (sums and products of them too: xkron.Periodic() * xkron.Matern52()). "
            f"Available kernels: {_names()}."
        )
    raise TypeError(
        f"kernels[{key!r}] is {value!r} ({type(value).__name__}), not a kernel; give a kernel instance such as "
        f"xkron.Matern52() or a kernel name such as 'Matern52'. Available kernels: {_names()}."
    )


def _kernel_from_name(key: Any, name: str) -> Kernel:
    cls = kernel_class(name)
    if cls is not None:
        return cls()
    if any(c in name for c in "+*("):
        try:
            return parse_kernel_expression(name)
        except (TypeError, ValueError) as err:
            raise ValueError(f"kernels[{key!r}]: {err}") from None
    close = difflib.get_close_matches(name.lower(), [k.lower() for k in KERNELS], n=1)
    hint = f" Did you mean {kernel_class(close[0]).__name__!r}?" if close else ""
    raise ValueError(f"kernels[{key!r}]: unknown kernel {name!r}.{hint} Available kernels: {_names()}.")
