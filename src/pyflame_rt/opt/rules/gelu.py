"""GELU, as exporters write it out, ``==> pyflame.Gelu`` (EXTENDED level).

* erf form (BERT, ViT, ``F.gelu``): ``0.5 * x * (1 + erf(x / sqrt(2)))``
  ``==> Gelu(x, approximate="none")``;
* tanh form (GPT-2's ``gelu_new``, ``F.gelu(approximate="tanh")``):
  ``0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))``
  ``==> Gelu(x, approximate="tanh")``.

Every grouping of the three outer products is matched (``(x * a) * 0.5``, ``(x * 0.5) * a``,
``x * (a * 0.5)``), ``x / sqrt(2)`` or ``x * (1 / sqrt(2))``, and ``x^3`` as ``Pow(x, 3)`` or
``x * x * x``; the products commute. Constants match within float32 rounding.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ..pattern import Match, RewriteRule

__all__ = ["gelu_rules"]

PYFLAME = "pyflame"
_SQRT2 = math.sqrt(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)


def _erf_inner(div: bool) -> Callable:
    def inner(op, x):
        arg = op.Div(x, _SQRT2) if div else op.Mul(x, 1.0 / _SQRT2)
        return op.Add(op.Erf(arg), 1.0)
    return inner


def _tanh_inner(cube: str) -> Callable:
    def inner(op, x):
        if cube == "pow":
            x3 = op.Pow(x, 3.0)
        elif cube == "mul_left":
            x3 = op.Mul(op.Mul(x, x), x)
        else:
            x3 = op.Mul(x, op.Mul(x, x))
        return op.Add(op.Tanh(op.Mul(op.Add(x, op.Mul(x3, 0.044715)), _SQRT_2_PI)), 1.0)
    return inner


def _outer(kind: int, inner: Callable) -> Callable:
    def pattern(op, x):
        a = inner(op, x)
        if kind == 0:
            return op.Mul(op.Mul(x, a), 0.5)
        if kind == 1:
            return op.Mul(op.Mul(x, 0.5), a)
        return op.Mul(x, op.Mul(a, 0.5))
    return pattern


def _check(m: Match):
    x = m["x"]
    if x.dtype is not None and not x.dtype.is_float:
        return m.fail(f"GELU on {x.dtype.name}: float types only")
    return m.ok()


def _rewrite(approximate: str):
    def rewrite(op, m: Match):
        return op.Gelu(m["x"], _domain=PYFLAME, _name="gelu", approximate=approximate)
    return rewrite


def gelu_rules() -> list[RewriteRule]:
    rules = []
    for kind in range(3):
        for div in (True, False):
            rules.append(RewriteRule("fuse_gelu_erf", _outer(kind, _erf_inner(div)),
                                     _rewrite("none"), _check))
        for cube in ("pow", "mul_left", "mul_right"):
            rules.append(RewriteRule("fuse_gelu_tanh", _outer(kind, _tanh_inner(cube)),
                                     _rewrite("tanh"), _check))
    return rules
